// The in-browser bench: every engine of the library and every tfjs / onnxruntime-web backend the
// browser has, on one ArcFace head at the bench's sizes S and M (bench/README.md), timed the same
// way: a prepared head, one warm-up run, then runs until a time budget; the median. A contender
// whose S time predicts more than a few seconds per M run is not run at M (the row says so).
import { arcFaceHead, type Engine, ENGINES, matrix } from "../mod.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import { tfjsCpuEngine, tfjsWasmEngine, tfjsWebgpuEngine } from "../adapters/tfjs.ts";
import { ortWasmEngine, ortWebgpuEngine } from "../adapters/onnxruntime.ts";

/** A size of the bench: N samples, D dims, C classes (bench/_config.ts's S and M). */
export interface Size {
  name: string;
  N: number;
  D: number;
  C: number;
}

/** The bench's S and M. */
export const SIZES: Size[] = [
  { name: "S", N: 64, D: 128, C: 1_000 },
  { name: "M", N: 128, D: 512, C: 10_000 },
];

/** Every contender the page knows: our engines, then the peers that run in a browser. */
export const CONTENDERS: Engine[] = [
  ...(Object.values(ENGINES) as Engine[]),
  tfjsCpuEngine,
  tfjsWasmEngine,
  tfjsWebgpuEngine,
  ortWasmEngine,
  ortWebgpuEngine,
];

/** One contender's row. */
export interface BenchRow {
  engine: string;
  kind: string;
  precision: string;
  /** Median milliseconds per run (forward and backward), by size name. */
  ms: Record<string, number>;
  /** Runs timed, by size name. */
  runs: Record<string, number>;
  /** Threads, the availability's detail, why it did not run, or why it skipped a size. */
  note: string;
}

/** Options of {@linkcode runBench}. */
export interface BenchOptions {
  /** Milliseconds of timed runs per contender and size (at least `minRuns` runs). */
  budgetMs: Record<string, number>;
  /** Timed runs at least, per size. */
  minRuns: Record<string, number>;
  /** A contender whose S median × (M's work / S's) exceeds this is not run at M. */
  maxPredictedMs: number;
  /** Called after each row changes. */
  onRow?: (row: BenchRow) => void;
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

function inputs(size: Size) {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  return {
    features: matrix(size.N, size.D, Float32Array.from({ length: size.N * size.D }, random)),
    weights: matrix(size.C, size.D, Float32Array.from({ length: size.C * size.D }, random)),
    labels: Array.from({ length: size.N }, (_, i) => (i * 7919) % size.C),
  };
}

async function timeSize(engine: Engine, size: Size, o: BenchOptions) {
  const head = arcFaceHead();
  const input = inputs(size);
  const shape = { samples: size.N, dims: size.D, classes: size.C };
  await using prepared = await prepareOn(engine, head, shape, {});
  await prepared.run(input); // warm-up: compiles, allocates, and loads what is lazy
  const times: number[] = [];
  const started = performance.now();
  while (
    times.length < o.minRuns[size.name] || performance.now() - started < o.budgetMs[size.name]
  ) {
    await pause();
    const t0 = performance.now();
    await prepared.run(input);
    times.push(performance.now() - t0);
    if (times.length >= 30) break;
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  return { median, runs: times.length, threads: prepared.threads };
}

const work = (s: Size) => s.N * s.D * s.C;

async function benchOne(engine: Engine, o: BenchOptions): Promise<BenchRow> {
  const row: BenchRow = {
    engine: engine.name,
    kind: engine.kind,
    precision: engine.precision,
    ms: {},
    runs: {},
    note: "",
  };
  const availability = await engine.availability();
  if (!availability.available) {
    row.note = `unavailable: ${availability.reason}`;
    return row;
  }
  const notes: string[] = availability.detail ? [availability.detail] : [];
  for (const size of SIZES) {
    const s = row.ms[SIZES[0].name];
    const predicted = s * work(size) / work(SIZES[0]);
    if (s !== undefined && predicted > o.maxPredictedMs) {
      notes.push(`${size.name} not run: ~${(predicted / 1000).toFixed(0)} s per run predicted`);
      continue;
    }
    try {
      const { median, runs, threads } = await timeSize(engine, size, o);
      row.ms[size.name] = median;
      row.runs[size.name] = runs;
      if (threads && !availability.detail && !notes.includes(`threads ${threads}`)) {
        notes.push(`threads ${threads}`);
      }
    } catch (error) {
      notes.push(`${size.name} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    o.onRow?.({ ...row, note: notes.join("; ") });
  }
  row.note = notes.join("; ");
  return row;
}

/** Benches every contender in turn; resolves with the rows. */
export async function runBench(o: BenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const engine of CONTENDERS) {
    const row = await benchOne(engine, o);
    rows.push(row);
    o.onRow?.(row);
    await pause();
  }
  return rows;
}

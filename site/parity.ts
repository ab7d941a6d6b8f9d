// Parity in the browser: each of our engines on a few fixture cases (fixtures/manifest.json and
// its float64 arrays, fetched from the server), measured as testing/parity.ts measures: per
// output, max |actual − expected| / max |expected|, against the same tolerances
// (testing/tolerances.ts: 1e-10 for float64, 1e-4 for float32).
import {
  type Engine,
  type EngineResult,
  ENGINES,
  HEAD_CATALOG,
  type HeadInput,
  matrix,
  type Reduction,
} from "../mod.ts";
import { prepareOn } from "../engines/prepare_head.ts";

/** The cases the page checks: one per structure (linear with bias, and three margins), S-sized. */
export const PARITY_CASES = [
  "softmax/small/bias/mean",
  "sphereFace/small/exact/mean",
  "cosFace/small/exact/sum",
  "arcFace/small/exact/none",
  "combinedMargin/small/exact/mean",
  "arcFace/large/exact/mean",
];

/** The tolerance per precision (testing/tolerances.ts). */
export const TOLERANCE = { float64: 1e-10, float32: 1e-4 } as const;

const OUTPUTS = ["loss", "losses", "gradFeatures", "gradWeights", "gradBias"] as const;

interface FixtureCase {
  name: string;
  loss: string;
  options: Record<string, unknown>;
  inputDtype: "float64" | "float32";
  N: number;
  D: number;
  C: number;
  arrays: Record<string, { file: string; offset: number; shape: number[] }>;
}

/** One engine on one case: the worst relative error over the outputs, or why it did not run. */
export interface ParityCell {
  engine: string;
  case: string;
  /** max over outputs of max |actual − expected| / max |expected|. */
  error?: number;
  /** The output with the largest error. */
  worst?: string;
  ok: boolean;
  note?: string;
}

/** The fixtures, fetched from `base` (the server's /fixtures/). */
export async function loadFixtures(base: URL) {
  const manifest = await (await fetch(new URL("manifest.json", base))).json();
  const cases = (manifest.cases as FixtureCase[]).filter((c) => PARITY_CASES.includes(c.name));
  const files = new Map<string, Float64Array>();
  for (const c of cases) {
    for (const ref of Object.values(c.arrays)) {
      if (!files.has(ref.file)) {
        const bytes = await (await fetch(new URL(ref.file, base))).arrayBuffer();
        files.set(ref.file, new Float64Array(bytes));
      }
    }
  }
  const array = (c: FixtureCase, name: string) => {
    const ref = c.arrays[name];
    const size = ref.shape.reduce((a, b) => a * b, 1);
    return files.get(ref.file)!.subarray(ref.offset, ref.offset + size);
  };
  return { cases, array };
}

function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let scale = 0, worst = 0;
  for (let k = 0; k < expected.length; k++) {
    scale = Math.max(scale, Math.abs(expected[k]));
    const a = actual[k];
    worst = Math.max(worst, Number.isFinite(a) ? Math.abs(a - expected[k]) : Infinity);
  }
  return worst / (scale || 1);
}

function output(result: EngineResult, name: typeof OUTPUTS[number]) {
  if (name === "loss") return [result.loss];
  if (name === "losses" || name === "gradBias") return result[name];
  return result[name].data;
}

async function checkOne(
  engine: Engine,
  c: FixtureCase,
  array: (c: FixtureCase, name: string) => Float64Array,
): Promise<ParityCell> {
  const cell: ParityCell = { engine: engine.name, case: c.name, ok: false };
  const head = HEAD_CATALOG.find((e) => e.name === c.loss)?.head(c.options);
  if (!head) return { ...cell, note: `${c.loss} is not in HEAD_CATALOG` };
  const typed = (name: string) =>
    c.inputDtype === "float32" ? Float32Array.from(array(c, name)) : array(c, name).slice();
  const input: HeadInput = {
    features: matrix(c.N, c.D, typed("features")),
    weights: matrix(c.C, c.D, typed("weights")),
    labels: Array.from(array(c, "labels")),
  };
  if (c.arrays.bias) input.bias = typed("bias");
  const shape = { samples: c.N, dims: c.D, classes: c.C };
  try {
    await using prepared = await prepareOn(engine, head, shape, {});
    const reduction = (c.options.reduction ?? "mean") as Reduction;
    const result = await prepared.run(input, { reduction });
    let error = 0, worst = "";
    for (const name of OUTPUTS) {
      if (!c.arrays[name]) continue;
      const actual = output(result, name);
      const e = actual ? relError(actual, array(c, name)) : Infinity;
      if (!(e <= error)) [error, worst] = [e, name];
    }
    return { ...cell, error, worst, ok: error <= TOLERANCE[engine.precision] };
  } catch (failure) {
    return { ...cell, note: failure instanceof Error ? failure.message : String(failure) };
  }
}

/** Runs each available engine of {@linkcode ENGINES} on each case of {@linkcode PARITY_CASES}. */
export async function runParity(
  base: URL,
  onCell?: (cell: ParityCell) => void,
): Promise<ParityCell[]> {
  const { cases, array } = await loadFixtures(base);
  const cells: ParityCell[] = [];
  for (const engine of Object.values(ENGINES) as Engine[]) {
    const availability = await engine.availability();
    for (const c of cases) {
      const cell = availability.available
        ? await checkOne(engine, c, array)
        : { engine: engine.name, case: c.name, ok: false, note: availability.reason };
      cells.push(cell);
      onCell?.(cell);
    }
  }
  return cells;
}

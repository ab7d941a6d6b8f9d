/**
 * The performance history: one line per run of the main or full job in
 * bench/results/history.jsonl (commit, time, machine, and each measured row's median and tracked
 * ratio), and its chart bench/results/history.svg / .png: engine-wasm's ArcFace M tracked ratio
 * (fastest iteration ÷ the machine probe's, bench/_results.ts) run by run, beside engine-webgpu's,
 * engine-native's and PyTorch's.
 *
 * `deno task bench:history` redraws the chart; `deno task bench:history add FILE.json [COMMIT]`
 * appends a results file (one of bench/results/runs/, say).
 *
 * @module
 */
import { renderSvg, svgToPng, type VegaLiteSpec } from "../charts/render.ts";
import { attachAnchors, type BenchResult } from "./_results.ts";
import { MACHINE_PROBE, PARALLEL_PROBE } from "./_machine_probe.ts";

const PROBES = [MACHINE_PROBE, PARALLEL_PROBE];

/** One run in the history. */
export interface HistoryEntry {
  timestamp: string;
  commit: string;
  profile: string;
  machine: string;
  /** backend, loss, size, median ms, anchor, ratio to the anchor. */
  rows: { b: string; l: string; s: string; ms: number; a?: string; r?: number }[];
}

/** What the chart follows: one loss and size, these backends. */
export const HISTORY_CHART = {
  loss: "arcFace",
  size: "M",
  backends: ["engine-wasm", "engine-webgpu", "engine-native", "pytorch-cpu"],
} as const;

const round = (v: number) => Number(v.toPrecision(4));

/** The history line of a results file. */
export function historyEntry(result: BenchResult, commit = result.commit ?? "?"): HistoryEntry {
  return {
    timestamp: result.timestamp,
    commit,
    profile: result.profile ?? "full",
    machine: `${result.machine?.cpu ?? "?"}, ${result.machine?.cores ?? "?"} cores`,
    rows: result.rows.filter((r) => r.medianMs !== undefined).map((r) => ({
      b: r.backend,
      l: r.loss,
      s: r.size,
      ms: round(r.medianMs!),
      ...(r.vsAnchor !== undefined ? { a: r.anchor, r: round(r.vsAnchor) } : {}),
    })),
  };
}

/** Parses history.jsonl. */
export function parseHistory(text: string): HistoryEntry[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** The chart's points: one per run and backend of {@linkcode HISTORY_CHART} with a tracked ratio. */
export function historyPoints(history: readonly HistoryEntry[]) {
  const { loss, size, backends } = HISTORY_CHART;
  return [...history].sort((a, b) => a.timestamp.localeCompare(b.timestamp)).flatMap(
    (entry, i) =>
      backends.flatMap((backend) => {
        const row = entry.rows.find((r) => r.b === backend && r.l === loss && r.s === size);
        return row?.r === undefined || !PROBES.includes(row.a ?? "") ? [] : [{
          run: `${String(i + 1).padStart(2, "0")} ${entry.commit} ${entry.timestamp.slice(5, 10)}`,
          backend,
          ratio: row.r,
          ms: row.ms,
          machine: entry.machine,
          job: entry.profile,
        }];
      }),
  );
}

/** The history chart as a Vega-Lite spec. */
export function historyChart(history: readonly HistoryEntry[]): VegaLiteSpec {
  const { loss, size } = HISTORY_CHART;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text:
        `${loss} at ${size}, run by run: fastest iteration ÷ the machine probe's (lower is faster)`,
      subtitle: "both measured in the same run, so most of a busy or different machine cancels out",
    },
    width: 520,
    height: 240,
    data: { values: historyPoints(history) },
    mark: { type: "line", point: { filled: true, size: 70 } },
    encoding: {
      x: { field: "run", type: "ordinal", title: "run (commit, date)", axis: { labelAngle: -30 } },
      y: {
        field: "ratio",
        type: "quantitative",
        scale: { type: "log" },
        title: "time ÷ machine probe's (log)",
      },
      color: { field: "backend", type: "nominal", title: null },
      tooltip: [
        { field: "backend" },
        { field: "ratio" },
        { field: "ms", title: "median ms" },
        { field: "machine" },
        { field: "job" },
      ],
    },
  } as VegaLiteSpec;
}

const resultsDir = new URL("results/", import.meta.url);
const historyFile = new URL("history.jsonl", resultsDir);

/** Reads the history; empty when there is none yet. */
export async function readHistory(): Promise<HistoryEntry[]> {
  try {
    return parseHistory(await Deno.readTextFile(historyFile));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** Appends a run to history.jsonl and redraws history.svg / .png. */
export async function recordHistory(entry: HistoryEntry): Promise<void> {
  await Deno.writeTextFile(historyFile, JSON.stringify(entry) + "\n", { append: true });
  await drawHistory();
}

/** Redraws history.svg / .png from history.jsonl. */
export async function drawHistory(): Promise<void> {
  const svg = await renderSvg(historyChart(await readHistory()));
  await Deno.writeTextFile(new URL("history.svg", resultsDir), svg);
  await Deno.writeFile(new URL("history.png", resultsDir), await svgToPng(svg));
}

if (import.meta.main) {
  const [command, file, commit] = Deno.args;
  if (command === "add" && file) {
    const result = JSON.parse(await Deno.readTextFile(file)) as BenchResult;
    if (!result.rows.some((r) => r.vsAnchor !== undefined)) attachAnchors(result);
    await recordHistory(historyEntry(result, commit));
    console.log(`Added ${file} to bench/results/history.jsonl; redrew history.svg and .png.`);
  } else if (!command) {
    await drawHistory();
    console.log("Redrew bench/results/history.svg and .png.");
  } else {
    console.error("usage: deno task bench:history [add RESULTS.json [COMMIT]]");
    Deno.exit(2);
  }
}

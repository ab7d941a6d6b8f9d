/**
 * A results file as one table (`deno task bench:summary [FILE]`, bench/results/latest.json by
 * default; the README's table is `deno task bench:summary bench/results/full.json`): one row
 * per (loss, size), one column per backend and PyTorch, median ms of forward + backward, then the
 * WebAssembly engine's speed-up over onnxruntime-web wasm and over PyTorch where both ran.
 *
 * @module
 */
import type { BenchRow } from "./_results.ts";

const PYTORCH = "pytorch-cpu";

/** The pivot table of `rows` as Markdown. */
export function summaryTable(rows: BenchRow[]): string {
  const backends = [...new Set(rows.map((r) => r.backend))];
  const keys = [...new Set(rows.map((r) => `${r.loss}|${r.size}`))];
  const cell = (r?: BenchRow) =>
    r?.medianMs === undefined
      ? "—"
      : r.medianMs >= 100
      ? r.medianMs.toFixed(0)
      : r.medianMs.toPrecision(3);
  const speedUp = (a?: BenchRow, b?: BenchRow) =>
    a?.medianMs && b?.medianMs ? `${(b.medianMs / a.medianMs).toFixed(2)}×` : "—";
  // The speed-up columns that have both sides somewhere.
  const pairs = [["engine-wasm", "ort-wasm"], ["engine-wasm", PYTORCH]].filter(([a, b]) =>
    backends.includes(a) && backends.includes(b)
  );
  const title = (b: string) => b === PYTORCH ? "PyTorch" : b;
  const lines = [
    `| loss | size | ${
      [...backends, ...pairs.map(([a, b]) => `${a} vs ${title(b)}`)].join(" | ")
    } |`,
    `|---|---|${[...backends, ...pairs].map(() => "---:").join("|")}|`,
  ];
  for (const key of keys) {
    const [loss, size] = key.split("|");
    const of = (b: string) =>
      rows.find((r) => r.backend === b && r.loss === loss && r.size === size);
    const cells = [
      ...backends.map((b) => cell(of(b))),
      ...pairs.map(([a, b]) => speedUp(of(a), of(b))),
    ];
    lines.push(`| ${loss} | ${size} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const path = Deno.args[0] ?? new URL("results/latest.json", import.meta.url).pathname;
  const { rows } = JSON.parse(await Deno.readTextFile(path)) as { rows: BenchRow[] };
  console.log(summaryTable(rows));
}

/**
 * The README's benchmark table from bench/results/latest.json (`deno task bench:summary`): one row
 * per (loss, size), one column per backend and PyTorch, median ms of forward + backward, then the
 * WebAssembly engine's speed-up over onnxruntime-web wasm and over PyTorch.
 *
 * @module
 */
import type { BenchRow } from "./run.ts";

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
  const lines = [
    `| loss | size | ${backends.join(" | ")} | engine-wasm vs ort-wasm | engine-wasm vs PyTorch |`,
    `|---|---|${backends.map(() => "---:").join("|")}|---:|---:|`,
  ];
  for (const key of keys) {
    const [loss, size] = key.split("|");
    const of = (b: string) =>
      rows.find((r) => r.backend === b && r.loss === loss && r.size === size);
    lines.push(
      `| ${loss} | ${size} | ${backends.map((b) => cell(of(b))).join(" | ")} | ` +
        `${speedUp(of("engine-wasm"), of("ort-wasm"))} | ${
          speedUp(of("engine-wasm"), of(PYTORCH))
        } |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const path = Deno.args[0] ?? new URL("results/latest.json", import.meta.url).pathname;
  const { rows } = JSON.parse(await Deno.readTextFile(path)) as { rows: BenchRow[] };
  console.log(summaryTable(rows));
}

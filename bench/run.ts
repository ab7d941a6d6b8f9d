/**
 * The benchmark driver (`deno task bench`): sets up OpenBLAS for the PyTorch anchor, runs
 * bench/pytorch_anchor.py and `deno bench --json bench/losses_bench.ts` one after the other, prints
 * progress and the Markdown table, writes bench/results/<timestamp>.json, latest.json, the table
 * as latest.md and the chart latest.svg / latest.png, and prints the change against the previous latest.json.
 *
 * Environment: BENCH_SIZES=S,M,L BENCH_BACKENDS=reference,… BENCH_LOSSES=arcFace,… (all by
 * default), BENCH_BUDGET_S (seconds per bench, 30), BENCH_PYTORCH=0 to leave PyTorch out.
 *
 * @module
 */
import { renderSvg, svgToPng, type VegaLiteSpec } from "../charts/render.ts";
import { CONTENDERS as BACKENDS } from "../adapters/registry.ts";
import { benchBudgetMs, benchSelection, flopsOf, median, SIZES } from "./_config.ts";
import type { BenchSidecar } from "./losses_bench.ts";
import { type Pytorch, runPytorch, setUpOpenBlas } from "./_pytorch.ts";
import { measurePeakMemory, memoryTable } from "./peak_memory.ts";

/** One row of the results: one backend, one loss, one size. */
export interface BenchRow {
  backend: string;
  /** Kind, precision, threads and BLAS: what the figure was measured with. */
  engine: string;
  precision: string;
  threads: number | null;
  loss: string;
  size: string;
  N: number;
  D: number;
  C: number;
  medianMs?: number;
  samples?: number;
  gflops?: number;
  vsReference?: number;
  vsPytorch?: number;
  skipped?: string;
  /** `deno bench`'s own statistics of the same bench, in ms, for cross-checking. */
  deno?: { n: number; avg: number; min: number; p75: number };
}

const PYTORCH = "pytorch-cpu";
const here = new URL(".", import.meta.url);
const resultsDir = new URL("results/", here);
const decoder = new TextDecoder();
const say = (line: string) => console.error(line);

async function runDenoBench() {
  const sidecar = await Deno.makeTempFile({ prefix: "bench-sidecar-", suffix: ".json" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["bench", "--json", "-A", new URL("losses_bench.ts", here).pathname],
    env: { BENCH_SIDECAR: sidecar },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = await child.output();
  if (!out.success) say("[bench] deno bench exited with an error (failed benches are marked)");
  const text = decoder.decode(out.stdout);
  // deno-lint-ignore no-explicit-any
  let json: any = { benches: [] };
  try {
    json = JSON.parse(text);
  } catch {
    say(`[bench] no JSON from deno bench: ${text.slice(0, 200)}`);
  }
  const side: BenchSidecar = JSON.parse(await Deno.readTextFile(sidecar).catch(() => "{}"));
  return { json, side };
}

const fmtMs = (v: number) => v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toPrecision(3)} ms`;
const ratio = (v?: number) => v === undefined ? "—" : `${v.toPrecision(3)}×`;

// deno-lint-ignore no-explicit-any
function denoStats(json: any, name: string): BenchRow["deno"] {
  // deno-lint-ignore no-explicit-any
  const ok = json.benches?.find((b: any) => b.name === name)?.results?.[0]?.ok;
  if (!ok) return undefined;
  return { n: ok.n, avg: ok.avg / 1e6, min: ok.min / 1e6, p75: ok.p75 / 1e6 };
}

function buildRows(
  // deno-lint-ignore no-explicit-any
  json: any,
  side: BenchSidecar,
  pytorch: Pytorch | string,
  startupFailures: Map<string, string>,
): BenchRow[] {
  const { sizes, backends, losses } = benchSelection();
  const rows: BenchRow[] = [];
  for (const size of sizes) {
    for (const { name: loss } of losses) {
      const base = { loss, size: size.name, N: size.N, D: size.D, C: size.C };
      const group: BenchRow[] = [];
      if (typeof pytorch === "string") {
        group.push({
          ...base,
          backend: PYTORCH,
          engine: "PyTorch CPU",
          precision: "float32",
          threads: null,
          skipped: pytorch,
        });
      } else {
        const r = pytorch.rows.find((r) => r.loss === loss && r.size === size.name);
        group.push({
          ...base,
          backend: PYTORCH,
          engine: `torch ${pytorch.torch}, ${pytorch.threads} threads, ${pytorch.blas.summary}`,
          precision: "float32",
          threads: pytorch.threads,
          medianMs: r?.medianMs,
          samples: r?.samplesMs?.length,
          skipped: r ? r.skipped : "not run",
        });
      }
      for (const backend of backends) {
        const threads = (backend as { threads?: number }).threads ?? null;
        const row: BenchRow = {
          ...base,
          backend: backend.name,
          engine: `${backend.kind}${threads ? `, ${threads} threads` : ""}`,
          precision: backend.precision,
          threads,
        };
        const bench = side.benches?.find((b) =>
          b.backend === backend.name && b.loss === loss && b.size === size.name
        );
        const skip = side.skipped?.find((s) =>
          s.backend === backend.name && s.loss === loss && s.size === size.name
        );
        if (bench?.error) row.skipped = `error: ${bench.error}`;
        else if (bench?.samplesMs.length) {
          row.medianMs = median(bench.samplesMs);
          row.samples = bench.samplesMs.length;
          row.deno = denoStats(json, bench.name);
        } else {row.skipped = skip?.reason ?? startupFailures.get(backend.name) ??
            "not run (deno bench stopped early?)";}
        group.push(row);
      }
      const ref = group.find((r) => r.backend === BACKENDS[0].name)?.medianMs;
      const torch = group.find((r) => r.backend === PYTORCH)?.medianMs;
      for (const r of group) {
        if (r.medianMs === undefined) continue;
        r.gflops = flopsOf(size) / r.medianMs / 1e6;
        if (ref) r.vsReference = ref / r.medianMs;
        if (torch) r.vsPytorch = torch / r.medianMs;
      }
      rows.push(...group);
    }
  }
  return rows;
}

function table(rows: BenchRow[], previous?: BenchRow[]): string {
  const lines = [
    "| backend | engine | precision | loss | size | median | speed-up vs reference | " +
    "vs PyTorch | GFLOP/s | change vs previous |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const before = previous?.find((p) =>
      p.backend === r.backend && p.loss === r.loss && p.size === r.size
    )?.medianMs;
    const change = before && r.medianMs
      ? `${r.medianMs > before ? "+" : ""}${((r.medianMs / before - 1) * 100).toFixed(1)} %`
      : "—";
    const figure = r.medianMs === undefined
      ? `skipped: ${r.skipped}`.replaceAll("|", "\\|")
      : `${fmtMs(r.medianMs)} (${r.samples})`;
    lines.push(
      `| ${r.backend} | ${r.engine} | ${r.precision} | ${r.loss} | ${r.size} | ${figure} | ` +
        `${ratio(r.vsReference)} | ${ratio(r.vsPytorch)} | ${r.gflops?.toFixed(2) ?? "—"} | ` +
        `${change} |`,
    );
  }
  return lines.join("\n");
}

function chart(rows: BenchRow[], title: string): VegaLiteSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: { text: "Loss heads, forward + backward, results read back", subtitle: title },
    data: { values: rows.filter((r) => r.medianMs !== undefined) },
    transform: [{
      calculate: "datum.size + ' (' + datum.N + '×' + datum.D + '×' + datum.C + ')'",
      as: "panel",
    }, { calculate: "datum.backend + ' (' + datum.precision + ')'", as: "series" }],
    facet: {
      column: { field: "panel", type: "ordinal", title: null, sort: { field: "C", op: "max" } },
    },
    resolve: { scale: { y: "independent" } },
    spec: {
      width: 360,
      height: 260,
      // Points, not bars: a log scale has no zero for bars to start from.
      mark: { type: "point", filled: true, size: 90 },
      encoding: {
        x: { field: "loss", type: "nominal", sort: null, title: null },
        xOffset: { field: "series", type: "nominal" },
        y: {
          field: "medianMs",
          type: "quantitative",
          scale: { type: "log" },
          title: "median ms (log)",
        },
        color: { field: "series", type: "nominal", title: "backend (precision)" },
        shape: { field: "series", type: "nominal", title: "backend (precision)" },
        tooltip: [{ field: "backend" }, { field: "medianMs" }, { field: "engine" }],
      },
    },
  } as VegaLiteSpec;
}

if (import.meta.main) {
  const started = performance.now();
  const selection = benchSelection();
  say(
    `[bench] sizes ${selection.sizes.map((s) => s.name).join(",")}; backends ${
      selection.backends.map((b) => b.name).join(",")
    }; losses ${selection.losses.map((l) => l.name).join(",")}; budget ${
      benchBudgetMs() / 1000
    } s per bench`,
  );
  let pytorch: Pytorch | string = "left out (BENCH_PYTORCH=0)";
  let setup = "";
  let coretype: string | undefined;
  if (Deno.env.get("BENCH_PYTORCH") !== "0") {
    const blas = await setUpOpenBlas();
    setup = blas.note;
    coretype = blas.coretype;
    say(`[setup] ${setup}`);
    pytorch = await runPytorch(blas.coretype);
  }
  const { json, side } = await runDenoBench();
  const largest = SIZES[SIZES.length - 1].name;
  const memory = benchSelection().sizes.some((s) => s.name === largest)
    ? await measurePeakMemory(coretype, say)
    : [];
  const startupFailures = new Map(
    (side.startup ?? []).filter((s) => !s.available).map((s) => [s.backend, s.reason ?? ""]),
  );
  const rows = buildRows(json, side, pytorch, startupFailures);
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1];
  const machine = {
    cpu: cpu ?? json.cpu,
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    runtime: json.runtime,
  };
  let previous: { rows: BenchRow[]; timestamp: string } | undefined;
  try {
    previous = JSON.parse(await Deno.readTextFile(new URL("latest.json", resultsDir)));
  } catch { /* first run */ }
  const timestamp = new Date().toISOString();
  const subtitle = `${machine.cpu}, ${machine.cores} cores, Deno ${machine.deno}; ` +
    `medians of one run, ${timestamp.slice(0, 16)}Z`;
  const result = {
    timestamp,
    machine,
    setup,
    budgetS: benchBudgetMs() / 1000,
    pytorch: typeof pytorch === "string" ? { skipped: pytorch } : { ...pytorch, rows: undefined },
    startup: side.startup ?? [],
    rows,
    peakMemory: memory,
  };
  await Deno.mkdir(resultsDir, { recursive: true });
  const json_ = JSON.stringify(result, null, 2) + "\n";
  await Deno.writeTextFile(new URL(`${timestamp.replace(/[:.]/g, "-")}.json`, resultsDir), json_);
  await Deno.writeTextFile(new URL("latest.json", resultsDir), json_);
  const svg = await renderSvg(chart(rows, subtitle));
  await Deno.writeTextFile(new URL("latest.svg", resultsDir), svg);
  await Deno.writeFile(new URL("latest.png", resultsDir), await svgToPng(svg));

  const startup = (side.startup ?? []).map((s) =>
    s.available
      ? `| ${s.backend} | ${s.availabilityMs!.toFixed(1)} ms | ${
        s.firstPrepareMs!.toFixed(1)
      } ms | ` +
        `${s.firstRunMs!.toFixed(1)} ms | ${s.warmRunMs!.toFixed(2)} ms |`
      : `| ${s.backend} | unavailable: ${s.reason} | | | |`
  );
  const report = [
    `## Benchmark, ${subtitle}`,
    "",
    `Each figure: median of one run (sample count in parentheses) of \`await prepared.run()\` ` +
    `(forward + backward, results read back); GFLOP/s at 6·N·D·C. Budget ${result.budgetS} s ` +
    `per bench. ${setup}`,
    "",
    table(rows, previous?.rows),
    "",
    "One-off start-up per backend (at S, first loss):",
    "",
    "| backend | availability() | first prepare | first run | warm run |",
    "|---|---|---|---|---|",
    ...startup,
    "",
    ...(memory.length
      ? [`Peak resident memory at ${largest}, one process per row:`, "", memoryTable(memory), ""]
      : []),
    previous ? `Change against ${previous.timestamp}.` : "No previous results to compare with.",
  ].join("\n");
  await Deno.writeTextFile(new URL("latest.md", resultsDir), report + "\n");
  console.log(report);
  console.log(
    `Wrote bench/results/latest.json, latest.md, latest.svg, latest.png in ${
      ((performance.now() - started) / 1000).toFixed(0)
    } s.`,
  );
}

/**
 * The benchmark driver: `deno task bench` (the main job), `bench:full` and `bench:ci` (see
 * bench/_profiles.ts). Checks what the PyTorch anchor needs (installs nothing: `deno task setup`
 * does), runs bench/pytorch_anchor.py and `deno bench --json bench/losses_bench.ts` one after the
 * other, prints progress and the Markdown tables, gives every row its ratio to the machine probe
 * measured in the same run (bench/_results.ts), compares with the job's previous results
 * (bench/compare.ts), and writes bench/results/<job>.json, .md, .svg, .png, <job>-tracker.json
 * (for CI benchmark trackers), runs/<job>-<timestamp>.json, and, for the main and full jobs, a
 * line of history.jsonl with its chart.
 *
 * Environment: BENCH_PROFILE=main|full|ci (main by default), and to change one choice of the job:
 * BENCH_SIZES=S,M,L BENCH_BACKENDS=reference,… BENCH_LOSSES=arcFace,… BENCH_BUDGET_S (seconds per
 * bench), BENCH_PYTORCH=0 or 1.
 *
 * @module
 */
import { renderSvg, svgToPng, type VegaLiteSpec } from "../charts/render.ts";
import { CONTENDERS as BACKENDS } from "../adapters/registry.ts";
import {
  benchBudgetMs,
  benchName,
  benchSelection,
  findBackend,
  flopsOf,
  isOurEngine,
  median,
  SIZES,
} from "./_config.ts";
import type { BenchSidecar } from "./losses_bench.ts";
import { type Pytorch, runPytorch, setUpOpenBlas } from "./_pytorch.ts";
import { measurePeakMemory, memoryTable } from "./peak_memory.ts";
import { activeProfile, outputOf } from "./_profiles.ts";
import { attachAnchors, type BenchResult, type BenchRow } from "./_results.ts";
import { compareRuns, type Comparison } from "./compare.ts";
import { trackerEntries } from "./tracker.ts";
import { historyEntry, recordHistory } from "./history.ts";
import { summaryTable } from "./summary.ts";
import { skipLines } from "./_skips.ts";
import { findBenchLoss, weightSize } from "./_successors.ts";

export type { BenchRow } from "./_results.ts";

const PYTORCH = "pytorch-cpu";
const here = new URL(".", import.meta.url);
const resultsDir = new URL("results/", here);
const decoder = new TextDecoder();
const say = (line: string) => console.error(line);

async function runDenoBench(env: Record<string, string>) {
  const sidecar = await Deno.makeTempFile({ prefix: "bench-sidecar-", suffix: ".json" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["bench", "--json", "-A", new URL("losses_bench.ts", here).pathname],
    env: { ...env, BENCH_SIDECAR: sidecar },
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
  const side: BenchSidecar = JSON.parse((await Deno.readTextFile(sidecar).catch(() => "")) || "{}");
  return { json, side, ok: out.success };
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
      if (typeof pytorch === "string" && pytorch.startsWith("left out")) {
        // Not asked for: no column.
      } else if (typeof pytorch === "string") {
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
          samplesMs: r?.samplesMs,
          skipped: r ? r.skipped : "not run",
        });
      }
      for (const backend of backends) {
        const threads = (backend as { threads?: number }).threads ??
          ((backend as { threaded?: boolean }).threaded ? navigator.hardwareConcurrency : null);
        const row: BenchRow = {
          ...base,
          backend: benchName(backend),
          ours: isOurEngine(backend),
          engine: `${backend.kind}${threads ? `, ${threads} threads` : ""}`,
          precision: backend.precision,
          threads,
        };
        // Every round of the bench (a job may interleave several), merged.
        const parts = (side.benches ?? []).filter((b) =>
          b.backend === backend.name && b.loss === loss && b.size === size.name
        );
        const bench = parts.length
          ? {
            ...parts[0],
            error: parts.find((b) => b.error)?.error,
            samplesMs: parts.flatMap((b) => b.samplesMs),
          }
          : undefined;
        const skip = side.skipped?.find((s) =>
          s.backend === backend.name && s.loss === loss && s.size === size.name
        );
        if (bench?.error) row.skipped = `error: ${bench.error}`;
        else if (bench?.samplesMs.length) {
          row.medianMs = median(bench.samplesMs);
          row.samples = bench.samplesMs.length;
          row.samplesMs = bench.samplesMs;
          row.deno = denoStats(json, bench.name);
        } else {row.skipped = skip?.reason ?? startupFailures.get(backend.name) ??
            "not run (deno bench stopped early?)";}
        group.push(row);
      }
      const ref = group.find((r) => r.backend === benchName(BACKENDS[0]))?.medianMs;
      const torch = group.find((r) => r.backend === PYTORCH)?.medianMs;
      for (const r of group) {
        if (r.medianMs === undefined) continue;
        // Sub-center ArcFace's matrix products are K times larger (C·K weight rows).
        r.gflops = flopsOf(weightSize(findBenchLoss(loss) ?? {}, size)) / r.medianMs / 1e6;
        if (ref) r.vsReference = ref / r.medianMs;
        if (torch) r.vsPytorch = torch / r.medianMs;
      }
      rows.push(...group);
    }
  }
  return rows;
}

const changeCell = (comparison: Comparison | undefined, r: BenchRow) => {
  const c = comparison?.rows.find((c) =>
    c.backend === r.backend && c.loss === r.loss && c.size === r.size
  );
  if (!c) return "—";
  if (c.change === undefined) return c.verdict;
  const verdict = c.verdict === "regression" ? "**regression**" : c.verdict;
  return `×${c.change.toFixed(2)} (${c.low!.toFixed(2)}–${c.high!.toFixed(2)}) ${verdict}`;
};

function table(rows: BenchRow[], comparison?: Comparison): string {
  const lines = [
    "| backend | engine | precision | loss | size | median | speed-up vs reference | " +
    "vs PyTorch | GFLOP/s | tracked ratio | its change vs previous (95 % band) |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const figure = r.medianMs === undefined
      ? `skipped: ${r.skipped}`.replaceAll("|", "\\|")
      : `${fmtMs(r.medianMs)} (${r.samples})`;
    const anchored = r.vsAnchor === undefined ? "—" : r.vsAnchor.toPrecision(3);
    lines.push(
      `| ${r.backend} | ${r.engine} | ${r.precision} | ${r.loss} | ${r.size} | ${figure} | ` +
        `${ratio(r.vsReference)} | ${ratio(r.vsPytorch)} | ${r.gflops?.toFixed(2) ?? "—"} | ` +
        `${anchored} | ${changeCell(comparison, r)} |`,
    );
  }
  return lines.join("\n");
}

/** `git rev-parse --short HEAD`, "+dirty" when tracked files changed; undefined without git. */
async function commitOf(): Promise<string | undefined> {
  const git = (...args: string[]) =>
    new Deno.Command("git", { args, cwd: new URL("..", here), stdout: "piped", stderr: "null" })
      .output();
  try {
    const head = await git("rev-parse", "--short", "HEAD");
    if (!head.success) return undefined;
    const status = await git("status", "--porcelain", "--untracked-files=no");
    const dirty = decoder.decode(status.stdout).trim() ? "+dirty" : "";
    return decoder.decode(head.stdout).trim() + dirty;
  } catch {
    return undefined;
  }
}

/** The 1-minute load average (/proc/loadavg); undefined where there is none. */
async function loadAverage(): Promise<number | undefined> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  const value = Number(text.split(" ")[0]);
  return text && Number.isFinite(value) ? value : undefined;
}

/** Says so when other work keeps the machine busy. */
function warnLoad(load: number | undefined, when: string) {
  const cores = navigator.hardwareConcurrency;
  if (load !== undefined && load > cores) {
    say(
      `[bench] load average ${load.toFixed(1)} on ${cores} cores ${when}: other work is running; ` +
        "times will be slower and noisier than on an idle machine (the tracked ratios less so)",
    );
  }
}

/** A private runtime folder for lavapipe (it warns on every start without one), when none is set. */
async function runtimeDir(): Promise<Record<string, string>> {
  if (Deno.env.get("XDG_RUNTIME_DIR")) return {};
  const dir = await Deno.makeTempDir({ prefix: "bench-xdg-" });
  await Deno.chmod(dir, 0o700);
  return { XDG_RUNTIME_DIR: dir };
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
        color: {
          field: "series",
          type: "nominal",
          title: "backend (precision)",
          legend: { labelLimit: 400 },
        },
        shape: { field: "series", type: "nominal", title: "backend (precision)" },
        tooltip: [{ field: "backend" }, { field: "medianMs" }, { field: "engine" }],
      },
    },
  } as VegaLiteSpec;
}

if (import.meta.main) {
  const started = performance.now();
  const loadBefore = await loadAverage();
  warnLoad(loadBefore, "before the run");
  const job = activeProfile();
  const { output, history, custom } = outputOf(job);
  const profile = { ...job, output, history };
  const selection = benchSelection();
  say(`[bench] job ${profile.name}: ${profile.about}`);
  if (custom.length) {
    say(
      `[bench] ${custom.join(", ")} set: a custom run, written to bench/results/${output}.* ` +
        "(the job's own results and the history stay as they are)",
    );
  }
  say(
    `[bench] sizes ${selection.sizes.map((s) => s.name).join(",")}; backends ${
      selection.backends.map(benchName).join(",")
    }; losses ${selection.losses.map((l) => l.name).join(",")}; budget ${
      benchBudgetMs() / 1000
    } s per bench`,
  );
  const wantPytorch = Deno.env.get("BENCH_PYTORCH")
    ? Deno.env.get("BENCH_PYTORCH") !== "0"
    : profile.pytorch;
  let pytorch: Pytorch | string = `left out (job ${profile.name}, BENCH_PYTORCH=1 adds it)`;
  let setup = "";
  const notes: string[] = [];
  // PyTorch and engine-native (in the deno bench process) get the same OpenBLAS kernels.
  const blas = await setUpOpenBlas();
  const coretype = blas.coretype;
  if (wantPytorch) {
    setup = blas.note;
    say(`[setup] ${setup}`);
    for (const line of blas.missing) say(`[setup] ${line}`);
    notes.push(...blas.missing);
    pytorch = await runPytorch(blas.coretype);
    if (typeof pytorch === "string") say(`[pytorch] ${pytorch}`);
  }
  const { json, side, ok } = await runDenoBench({
    BENCH_PROFILE: profile.name,
    ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}),
    ...await runtimeDir(),
  });
  if (!ok && !side.benches?.length) {
    say("[bench] deno bench measured nothing (see its error above): no results written");
    Deno.exit(1);
  }
  const largest = SIZES[SIZES.length - 1].name;
  const memory = profile.memory && selection.sizes.some((s) => s.name === largest)
    ? await measurePeakMemory(coretype, say)
    : [];
  const startupFailures = new Map(
    (side.startup ?? []).filter((s) => !s.available).map((s) => [s.backend, s.reason ?? ""]),
  );
  const rows = buildRows(json, side, pytorch, startupFailures);
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1];
  const loadAfter = await loadAverage();
  warnLoad(loadAfter, "after the run");
  const machine = {
    cpu: cpu ?? json.cpu,
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    runtime: json.runtime,
    /** The 1-minute load average before and after the run. */
    loadAverage: [loadBefore, loadAfter],
  };
  const resultPath = new URL(`${profile.output}.json`, resultsDir);
  let previous: BenchResult | undefined;
  try {
    previous = JSON.parse(await Deno.readTextFile(resultPath));
  } catch { /* first run */ }
  const timestamp = new Date().toISOString();
  const subtitle = `${machine.cpu}, ${machine.cores} cores, Deno ${machine.deno}; ` +
    `medians of one run, ${timestamp.slice(0, 16)}Z`;
  const probe = side.machineProbe?.samplesMs ?? [];
  const result = {
    timestamp,
    profile: profile.name,
    commit: await commitOf(),
    machine,
    setup,
    budgetS: benchBudgetMs() / 1000,
    pytorch: typeof pytorch === "string" ? { skipped: pytorch } : { ...pytorch, rows: undefined },
    machineProbe: probe.length
      ? {
        samplesMs: probe,
        medianMs: median(probe),
        parallelSamplesMs: side.machineProbe?.parallelSamplesMs,
      }
      : undefined,
    startup: side.startup ?? [],
    rows,
    peakMemory: memory,
  };
  const unanchored = attachAnchors(result);
  const comparison = previous?.rows.some((r) => r.samplesMs?.length)
    ? compareRuns(previous, result)
    : undefined;
  await Deno.mkdir(new URL("runs/", resultsDir), { recursive: true });
  const json_ = JSON.stringify(result, null, 2) + "\n";
  const stamp = timestamp.replace(/[:.]/g, "-");
  await Deno.writeTextFile(new URL(`runs/${profile.output}-${stamp}.json`, resultsDir), json_);
  await Deno.writeTextFile(resultPath, json_);
  await Deno.writeTextFile(
    new URL(`${profile.output}-tracker.json`, resultsDir),
    JSON.stringify(trackerEntries(result), null, 2) + "\n",
  );
  const svg = await renderSvg(chart(rows, subtitle));
  await Deno.writeTextFile(new URL(`${profile.output}.svg`, resultsDir), svg);
  await Deno.writeFile(new URL(`${profile.output}.png`, resultsDir), await svgToPng(svg));
  if (profile.history) await recordHistory(historyEntry(result));

  const shown = (name: string) => {
    const backend = findBackend(name);
    return backend ? benchName(backend) : name;
  };
  const startup = (side.startup ?? []).map((s) =>
    s.available
      ? `| ${shown(s.backend)} | ${s.availabilityMs!.toFixed(1)} ms | ${
        s.firstPrepareMs!.toFixed(1)
      } ms | ` +
        `${s.firstRunMs!.toFixed(1)} ms | ${s.warmRunMs!.toFixed(2)} ms |`
      : `| ${shown(s.backend)} | unavailable: ${s.reason} | | | |`
  );
  const skips = [
    ...notes,
    ...(typeof pytorch === "string" && wantPytorch ? [pytorch] : []),
    ...skipLines(
      rows,
      profile.name,
      selection.backends.map((b) => ({ name: benchName(b), kind: b.kind })),
    ),
    ...unanchored.map((r) =>
      `${r.backend} ${r.loss} ${r.size}: no machine probe in this run, so no tracked ratio`
    ),
  ];
  const report = [
    `## Benchmark (${profile.name} job), ${subtitle}`,
    "",
    `Each figure: median of one run (sample count in parentheses) of \`await prepared.run()\` ` +
    `(forward + backward, results read back; our engines write each run's gradients into the ` +
    `last run's arrays, \`{ into }\`, as a training loop does, a peer returns new arrays); ` +
    `GFLOP/s at 6·N·D·C. Budget ${result.budgetS} s ` +
    `per bench.${setup ? ` ${setup}.` : ""}${result.commit ? ` Commit ${result.commit}.` : ""}`,
    "",
    "Median ms per backend:",
    "",
    summaryTable(rows),
    "",
    ...(skips.length ? ["Not measured:", "", ...skips.map((l) => `- ${l}`), ""] : []),
    "Every row, with its tracked ratio (fastest iteration ÷ the machine probe's, both measured in " +
    "this run) and " +
    (comparison
      ? `the change of that ratio against the previous ${profile.output}.json (${
        previous!.timestamp
      }):`
      : "no change column (no previous run of this job with samples to compare with):"),
    "",
    table(rows, comparison),
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
    comparison
      ? (comparison.regressions.length
        ? `Against the previous run: ${comparison.regressions.length} regression(s) of ours ` +
          `beyond noise (\`deno task bench:compare\` for the detail).`
        : "Against the previous run: no regression of ours beyond noise.")
      : "No previous results to compare with.",
  ].join("\n");
  await Deno.writeTextFile(new URL(`${profile.output}.md`, resultsDir), report + "\n");
  console.log(report);
  console.log(
    `Wrote bench/results/${profile.output}.json, .md, .svg, .png, ${profile.output}-tracker.json` +
      `${profile.history ? ", history.jsonl, history.svg, history.png" : ""} in ${
        ((performance.now() - started) / 1000).toFixed(0)
      } s.`,
  );
}

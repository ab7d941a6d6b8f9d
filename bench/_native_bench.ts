/**
 * engine-native against its peers and its floor (issue 10), one interleaved run:
 * engine-native (its default: one thread per core, each with one-thread BLAS products; and with
 * `threads: 1`, the BLAS's own threads), onnxruntime-node (intra-op threads = cores), engine-wasm
 * (prepared, threads = cores) and the three-GEMM floor (cblas_sgemm of the head's three shapes,
 * N×C×D, through the same FFI and library, BLAS threads = cores), at M and L for arcFace, cosFace,
 * sphereFace and softmax; PyTorch after each head's rounds (bench/pytorch_anchor.py in its own
 * process: OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE=SkylakeX where the CPU has AVX-512); then
 * each contender's peak RSS at L (arcFace) in a process of its own. engine-wasm's GFLOP/s are also
 * given as a share of the 128-bit FMA peak WebAssembly reaches here (bench/_fma_peak.ts, measured
 * before and after the rounds).
 *
 * Every contender is prepared once and run on two alternating float32 input sets (new features
 * and weights every run, as training does); rounds go ABCD…, the order rotating each round, and
 * the load average is printed before each round. In a round each contender runs in a row (5 runs
 * at M, 1 at L), after a pause that lets the last one's idle BLAS threads stop spinning. Figures:
 * medians with min–max over every run.
 *
 *   deno run -A bench/_native_bench.ts [--rounds 5] [--sizes M,L]
 *     [--losses arcFace,cosFace,sphereFace,softmax] [--no-pytorch] [--no-rss] [--out FILE.json]
 *   deno run -A bench/_native_bench.ts --rss CONTENDER LOSS SIZE   (one process's peak, internal)
 *
 * @module
 */
import { HEAD_CATALOG, type HeadSpec } from "../mod.ts";
import type { Engine, EngineResult } from "../engines/engine.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import { nativeBlasInfo, nativeEngine } from "../engines/native/engine.ts";
import { findBlas, NO_TRANS, ROW_MAJOR, setBlasThreads, TRANS } from "../engines/native/blas.ts";
import { ortNodeEngine } from "../adapters/onnxruntime_node.ts";
import { benchInput } from "./_inputs.ts";
import { peakRssMiB } from "./_peak_rss.ts";
import { pytorchAllocator } from "./_pytorch.ts";
import { fmaPeak128 } from "./_fma_peak.ts";
import { median } from "./_config.ts";

interface Size {
  name: string;
  N: number;
  D: number;
  C: number;
}
const SIZES: Size[] = [
  { name: "M", N: 128, D: 512, C: 10_000 },
  { name: "L", N: 256, D: 512, C: 100_000 },
];
const CORES = navigator.hardwareConcurrency ?? 1;

interface BenchHead {
  run(): Promise<unknown>;
  dispose(): Promise<void> | void;
}

interface Contender {
  name: string;
  /** What configuration it runs in, for the table. */
  config: string;
  prepare(head: HeadSpec, size: Size, sets: ReturnType<typeof benchInput>[]): Promise<BenchHead>;
}

function engineContender(
  name: string,
  config: string,
  engine: () => Promise<Engine>,
  options: Record<string, unknown> = {},
): Contender {
  return {
    name,
    config,
    async prepare(head, size, sets) {
      const e = await engine();
      const available = await e.availability();
      if (!available.available) throw new Error(available.reason);
      const prepared = await prepareOn(e, head, {
        samples: size.N,
        dims: size.D,
        classes: size.C,
      }, options);
      let calls = 0, last: EngineResult | undefined;
      return {
        run: async () => {
          const into = e.writesInto ? last : undefined;
          last = await prepared.run(sets[calls++ % 2], { reduction: "mean", into });
          if (!Number.isFinite(last.loss)) throw new Error(`${name}: loss ${last.loss}`);
        },
        dispose: () => prepared.dispose(),
      };
    },
  };
}

/**
 * The three products of a head (S = X·Wᵀ, ∂X = S·W, ∂W = Sᵀ·X), nothing else; `fresh`: ∂W into a
 * new array each run, as every engine returns it (its pages are faulted in by the product).
 */
function floorContender(fresh: boolean): Contender {
  return {
    name: fresh ? "floor + new ∂W" : "3-GEMM floor",
    config: `cblas_sgemm ×3, BLAS threads ${CORES}${fresh ? ", ∂W a new array each run" : ""}`,
    prepare(_head, size, sets) {
      const { lib } = findBlas();
      const { N, D, C } = size;
      const S = new Float32Array(N * C), GX = new Float32Array(N * D);
      const kept = new Float32Array(C * D);
      const p = (a: Float32Array) => Deno.UnsafePointer.of(a);
      const sgemm = lib.symbols.cblas_sgemm;
      let calls = 0;
      return Promise.resolve({
        run() {
          const set = sets[calls++ % 2];
          const X = set.features.data as Float32Array, W = set.weights.data as Float32Array;
          const GW = fresh ? new Float32Array(C * D) : kept;
          setBlasThreads(lib, CORES);
          sgemm(ROW_MAJOR, NO_TRANS, TRANS, N, C, D, 1, p(X), D, p(W), D, 0, p(S), C);
          sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, N, D, C, 1, p(S), C, p(W), D, 0, p(GX), D);
          sgemm(ROW_MAJOR, TRANS, NO_TRANS, C, D, N, 1, p(S), C, p(X), D, 0, p(GW), D);
          return Promise.resolve();
        },
        dispose() {},
      });
    },
  };
}

const CONTENDERS: Contender[] = [
  engineContender(
    "engine-native",
    `threads ${CORES} × one-thread BLAS, wasm epilogue`,
    () => Promise.resolve(nativeEngine as Engine),
  ),
  engineContender(
    "engine-native t1",
    `threads 1, BLAS threads ${CORES}`,
    () => Promise.resolve(nativeEngine as Engine),
    { threads: 1 },
  ),
  engineContender("ort-node", `intra-op threads ${CORES}`, () => Promise.resolve(ortNodeEngine)),
  engineContender(
    "engine-wasm",
    `threads ${CORES}`,
    async () => (await import("../engines/wasm/engine.ts")).wasmEngine as Engine,
  ),
  floorContender(false),
  floorContender(true),
];

function arg(name: string): string | undefined {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Deno.args[at + 1] : undefined;
}

const quantile = (sorted: number[], q: number) => sorted[Math.floor(q * (sorted.length - 1))];

let clock:
  | Deno.DynamicLibrary<{
    clock_gettime: { parameters: ["i32", "buffer"]; result: "i32" };
  }>
  | undefined;
const timespec = new BigInt64Array(2);
/** CLOCK_PROCESS_CPUTIME_ID through libc, in ms (NaN where libc.so.6 is not there). */
function processCpuMs(): number {
  try {
    clock ??= Deno.dlopen("libc.so.6", {
      clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
    });
  } catch {
    return NaN;
  }
  clock.symbols.clock_gettime(2, timespec);
  return Number(timespec[0]) * 1e3 + Number(timespec[1]) / 1e6;
}

async function loadAverage(): Promise<string> {
  try {
    return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

function headOf(loss: string): HeadSpec {
  const entry = HEAD_CATALOG.find((e) => e.name === loss);
  if (!entry) throw new Error(`unknown loss ${loss}`);
  return entry.head();
}

// ── one process's peak RSS ───────────────────────────────────────────────────────────────────
if (Deno.args[0] === "--rss") {
  const [, contenderName, loss, sizeName] = Deno.args;
  const contender = CONTENDERS.find((c) => c.name === contenderName);
  const size = SIZES.find((s) => s.name === sizeName);
  if (!contender || !size) throw new Error("usage: --rss CONTENDER LOSS SIZE");
  const sets = [benchInput(size, 1), benchInput(size, 2)];
  const prepared = await contender.prepare(headOf(loss), size, sets);
  await prepared.run();
  const t = performance.now();
  await prepared.run();
  const warmRunMs = performance.now() - t;
  await prepared.dispose();
  console.log(JSON.stringify({ warmRunMs, peakRssMiB: await peakRssMiB() }));
  Deno.exit(0);
}

// ── PyTorch, in its own process (after each head's rounds, in the same window) ──────────────
interface PytorchRow {
  loss: string;
  size: string;
  medianMs?: number;
  samplesMs?: number[];
  skipped?: string;
}

async function runPytorch(sizes: Size[], losses: string[], budgetS: number) {
  const dir = await Deno.makeTempDir({ prefix: "native-bench-" });
  await Deno.writeTextFile(
    `${dir}/job.json`,
    JSON.stringify({ sizes, budgetS, heads: losses.map((loss) => ({ loss, head: headOf(loss) })) }),
  );
  const flags = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(
    /^flags\s*:(.*)$/m,
  )?.[1].split(/\s+/) ?? [];
  const env: Record<string, string> = { OMP_WAIT_POLICY: "PASSIVE", ...pytorchAllocator() };
  if (flags.includes("avx512f")) env.OPENBLAS_CORETYPE = "SkylakeX";
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      new URL("pytorch_anchor.py", import.meta.url).pathname,
      `${dir}/job.json`,
      `${dir}/out.json`,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr).trim().split("\n").pop();
    await Deno.remove(dir, { recursive: true });
    return `pytorch_anchor.py failed: ${text}`;
  }
  const result = JSON.parse(await Deno.readTextFile(`${dir}/out.json`));
  await Deno.remove(dir, { recursive: true });
  return {
    summary: `torch ${result.torch}, ${result.threads} threads, ${result.blas.summary}`,
    rows: result.rows as PytorchRow[],
    peakRssMiB: result.peakRssMiB as number | undefined,
  };
}

// ── the interleaved run ──────────────────────────────────────────────────────────────────────
/**
 * The pause before each timed run: OpenBLAS's idle threads spin for 2^28 cycles (its default
 * OPENBLAS_THREAD_TIMEOUT, about 0.1 s here) before they sleep.
 */
const SETTLE_MS = 250;
/**
 * Runs in a row per contender and round, as a training loop makes them (PyTorch's loop runs in a
 * row too): a single run after a pause pays for waking the machine, not for the head.
 */
const BURST: Record<string, number> = { M: 5, L: 1 };
const rounds = Number(arg("--rounds") ?? 5);
const sizes = (arg("--sizes") ?? "M,L").split(",").map((n) => SIZES.find((s) => s.name === n)!);
const losses = (arg("--losses") ?? "arcFace,cosFace,sphereFace,softmax").split(",");
const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(
  /^model name\s*:\s*(.*)$/m,
)?.[1] ?? "?";
const blas = nativeBlasInfo();
console.log(
  `# engine-native bench: ${cpu}, ${CORES} logical cores; ${blas.summary} (${blas.library}); ` +
    `float32; ${rounds} interleaved rounds; Deno ${Deno.version.deno}`,
);

interface Row {
  size: string;
  loss: string;
  contender: string;
  config: string;
  samples: number[];
  /** The process's CPU time per run (all threads), ms: robust to other load, unlike wall time. */
  cpu: number[];
  error?: string;
}
const rows: Row[] = [];
// engine-wasm's ceiling, measured before and after the rounds (the machine's clock may change).
const wasmPeaks = [await fmaPeak128(CORES)];
console.error(`[128-bit FMA peak, WebAssembly, ${CORES} cores] ${wasmPeaks[0].toFixed(1)} GFLOP/s`);
const withPytorch = !Deno.args.includes("--no-pytorch");
let pytorchSummary: string | undefined;
const pytorchRows: PytorchRow[] = [];
let pytorchPeak: number | string | undefined;

for (const size of sizes) {
  const sets = [benchInput(size, 1), benchInput(size, 2)];
  for (const loss of losses) {
    const head = headOf(loss);
    const live: { c: Contender; h: BenchHead; row: Row }[] = [];
    for (const c of CONTENDERS) {
      const row: Row = {
        size: size.name,
        loss,
        contender: c.name,
        config: c.config,
        samples: [],
        cpu: [],
      };
      rows.push(row);
      try {
        const h = await c.prepare(head, size, sets);
        await h.run(); // warm-up
        live.push({ c, h, row });
      } catch (error) {
        row.error = error instanceof Error ? error.message.split("\n")[0] : String(error);
        console.error(`[${size.name} ${loss}] ${c.name}: ${row.error}`);
      }
    }
    for (let r = 0; r < rounds; r++) {
      // Rotated each round and reversed every other: no contender always follows the same one.
      const order = live.map((_, k) => live[(k + r) % live.length]);
      if (r % 2) order.reverse();
      const load = await loadAverage();
      const line: string[] = [];
      for (const { c, h, row } of order) {
        // The last contender's threads (OpenBLAS's, ORT's) may still spin for their next job: wait
        // until they sleep, so that no contender runs beside another one's spinning threads.
        await new Promise((settled) => setTimeout(settled, SETTLE_MS));
        const times: string[] = [];
        for (let k = 0; k < BURST[size.name]; k++) {
          const c0 = processCpuMs(), t = performance.now();
          await h.run();
          const ms = performance.now() - t;
          row.samples.push(ms);
          row.cpu.push(processCpuMs() - c0);
          times.push(ms.toFixed(1));
        }
        line.push(`${c.name} ${times.join("/")}`);
      }
      console.error(`[${size.name} ${loss} round ${r + 1}, load ${load}] ${line.join(" · ")}`);
    }
    for (const { h } of live) await h.dispose();
    if (withPytorch) {
      const result = await runPytorch([size], [loss], size.name === "L" ? 20 : 8);
      if (typeof result === "string") {
        console.error(`[pytorch ${size.name} ${loss}] ${result}`);
      } else {
        pytorchSummary = result.summary;
        pytorchRows.push(...result.rows);
        const r = result.rows[0];
        console.error(
          `[pytorch ${size.name} ${loss}, load ${await loadAverage()}] ${
            r?.medianMs?.toFixed(1) ?? r?.skipped
          } ms`,
        );
      }
    }
  }
}
wasmPeaks.push(await fmaPeak128(CORES));
console.error(`[128-bit FMA peak, WebAssembly, ${CORES} cores] ${wasmPeaks[1].toFixed(1)} GFLOP/s`);
const wasmPeak = Math.max(...wasmPeaks);
if (withPytorch && !Deno.args.includes("--no-rss") && sizes.some((s) => s.name === "L")) {
  const peak = await runPytorch([SIZES[1]], ["arcFace"], 10);
  pytorchPeak = typeof peak === "string" ? peak : peak.peakRssMiB;
}

// ── peak RSS at L, each contender in its own process ─────────────────────────────────────────
const peaks = new Map<string, number | string>();
if (!Deno.args.includes("--no-rss") && sizes.some((s) => s.name === "L")) {
  for (const c of CONTENDERS) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--rss", c.name, "arcFace", "L"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const last = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
    peaks.set(
      c.name,
      out.success
        ? JSON.parse(last).peakRssMiB
        : new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "failed",
    );
    console.error(`[memory] ${c.name} arcFace L: ${peaks.get(c.name)}`);
  }
  if (pytorchPeak !== undefined) peaks.set("PyTorch", pytorchPeak);
}

// ── the table ────────────────────────────────────────────────────────────────────────────────
const fmt = (ms: number) => ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
console.log(
  "\n| size | loss | " + CONTENDERS.map((c) => c.name).join(" | ") +
    " | PyTorch | native vs ort-node | native vs PyTorch | native / floor | native GFLOP/s |" +
    " wasm GFLOP/s (% of 128-bit peak) |",
);
console.log("|" + " --- |".repeat(CONTENDERS.length + 8));
for (const size of sizes) {
  for (const loss of losses) {
    const cells: string[] = [];
    const med = new Map<string, number>();
    for (const c of CONTENDERS) {
      const row = rows.find((r) =>
        r.size === size.name && r.loss === loss && r.contender === c.name
      )!;
      if (row.error || !row.samples.length) {
        cells.push("—");
        continue;
      }
      const s = [...row.samples].sort((a, b) => a - b);
      const m = median(s);
      med.set(c.name, m);
      cells.push(`${fmt(m)} (${fmt(quantile(s, 0))}–${fmt(quantile(s, 1))})`);
    }
    const torch = pytorchRows.find((r) => r.loss === loss && r.size === size.name)?.medianMs;
    const native = med.get("engine-native");
    const ratio = (other?: number) =>
      native !== undefined && other !== undefined ? `${(other / native).toFixed(2)}×` : "—";
    const floorMs = med.get("3-GEMM floor");
    const gflopsOf = (ms?: number) =>
      ms === undefined ? undefined : 6 * size.N * size.D * size.C / ms / 1e6;
    const gflops = gflopsOf(native)?.toFixed(0) ?? "—";
    const wasm = gflopsOf(med.get("engine-wasm"));
    const wasmCell = wasm === undefined
      ? "—"
      : `${wasm.toFixed(0)} (${(100 * wasm / wasmPeak).toFixed(0)} %)`;
    console.log(
      `| ${size.name} | ${loss} | ${cells.join(" | ")} | ${
        torch !== undefined ? fmt(torch) : "—"
      } | ` +
        `${ratio(med.get("ort-node"))} | ${ratio(torch)} | ` +
        `${
          native !== undefined && floorMs !== undefined ? (native / floorMs).toFixed(2) : "—"
        } | ` +
        `${gflops} | ${wasmCell} |`,
    );
  }
}
console.log(
  "\nProcess CPU time per run (all threads, median ms; less sensitive to other load than wall " +
    "time):\n\n| size | loss | " + CONTENDERS.map((c) => c.name).join(" | ") + " |",
);
console.log("|" + " --- |".repeat(CONTENDERS.length + 2));
for (const size of sizes) {
  for (const loss of losses) {
    const cells = CONTENDERS.map((c) => {
      const row = rows.find((r) =>
        r.size === size.name && r.loss === loss && r.contender === c.name
      );
      return row?.cpu.length ? fmt(median(row.cpu)) : "—";
    });
    console.log(`| ${size.name} | ${loss} | ${cells.join(" | ")} |`);
  }
}
console.log(
  "\nConfigurations: " + CONTENDERS.map((c) => `${c.name}: ${c.config}`).join("; ") +
    (pytorchSummary ? `; PyTorch: ${pytorchSummary}, OMP_WAIT_POLICY=PASSIVE` : "") +
    ". Ratios: the peer's median over engine-native's (above 1: engine-native is faster). " +
    `128-bit FMA peak (bench/_fma_peak.ts: WebAssembly relaxed SIMD, ${CORES} cores, before and ` +
    `after the rounds): ${
      wasmPeaks.map((g) => g.toFixed(1)).join(" and ")
    } GFLOP/s; engine-wasm's ` +
    "share is of the larger.",
);
if (peaks.size) {
  console.log(
    "\nPeak RSS, arcFace L, each in its own process (two float32 input sets of 200 MB each " +
      "included): " +
      [...peaks].map(([k, v]) => `${k} ${typeof v === "number" ? `${v.toFixed(0)} MiB` : v}`)
        .join(" · "),
  );
}
const out = arg("--out");
if (out) {
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      {
        cpu,
        cores: CORES,
        blas,
        rounds,
        rows,
        pytorch: { summary: pytorchSummary, rows: pytorchRows },
        peaks: Object.fromEntries(peaks),
        wasmPeaks,
      },
      null,
      1,
    ),
  );
}

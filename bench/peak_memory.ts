/**
 * Peak memory at the largest size (`deno task bench:memory`, also the last step of
 * `deno task bench:full`): each backend runs one head (prepare, then two runs of
 * forward + backward) in a process of its own, PyTorch likewise, and each process reports its own
 * peak resident set size (VmHWM: what `/usr/bin/time -v` calls "Maximum resident set size").
 * Inputs alone are float32 X (N×D) and W (C×D); the rest is what a backend adds.
 *
 * Covers engine-wasm, engine-webgpu and ort-wasm with arcFace, cosFace, sphereFace and softmax,
 * narrowed by BENCH_BACKENDS and BENCH_LOSSES where they are set; BENCH_PYTORCH=0 leaves PyTorch out.
 *
 * @module
 */
import { HEAD_CATALOG } from "../mod.ts";
import { SIZES } from "./_config.ts";
import { runPytorch, setUpOpenBlas } from "./_pytorch.ts";

/** One process's peak, in MiB, or why it has none. */
export interface PeakMemoryRow {
  backend: string;
  loss: string;
  size: string;
  peakRssMiB?: number;
  warmRunMs?: number;
  error?: string;
}

const DEFAULT_BACKENDS = ["engine-wasm", "engine-webgpu", "ort-wasm"];
const DEFAULT_LOSSES = ["arcFace", "cosFace", "sphereFace", "softmax"];
const PYTORCH = "pytorch-cpu";

/** The defaults, narrowed to the environment's selection where it makes one. */
function selected(variable: string, defaults: string[]): string[] {
  const wanted = Deno.env.get(variable)?.split(",").map((s) => s.trim()).filter(Boolean);
  return wanted?.length ? defaults.filter((d) => wanted.includes(d)) : defaults;
}

async function probe(backend: string, loss: string, size: string): Promise<PeakMemoryRow> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("_probe.ts", import.meta.url).pathname, backend, loss, size],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (!out.success) {
    const reason = new TextDecoder().decode(out.stderr).trim().split("\n").find((l) =>
      /error/i.test(l)
    );
    return { backend, loss, size, error: reason ?? `exit code ${out.code}` };
  }
  return { backend, loss, size, ...JSON.parse(text) };
}

/** Measures the peak of every selected backend and of PyTorch at the largest size. */
export async function measurePeakMemory(
  coretype?: string,
  say: (line: string) => void = console.error,
): Promise<PeakMemoryRow[]> {
  const size = SIZES[SIZES.length - 1];
  const backends = selected("BENCH_BACKENDS", DEFAULT_BACKENDS);
  const losses = selected("BENCH_LOSSES", DEFAULT_LOSSES);
  const rows: PeakMemoryRow[] = [];
  for (const loss of losses) {
    const entry = HEAD_CATALOG.find((e) => e.name === loss);
    if (!entry) throw new Error(`BENCH_LOSSES: unknown ${loss}`);
    for (const backend of backends) {
      const row = await probe(backend, loss, size.name);
      say(`[memory] ${backend} ${loss} ${size.name}: ${describe(row)}`);
      rows.push(row);
    }
    if (Deno.env.get("BENCH_PYTORCH") !== "0") {
      // A budget of 10 s: the first run, then a few more while it fits.
      const result = await runPytorch(coretype, { sizes: [size], losses: [entry], budgetS: 10 });
      const row: PeakMemoryRow = typeof result === "string"
        ? { backend: PYTORCH, loss, size: size.name, error: result }
        : {
          backend: PYTORCH,
          loss,
          size: size.name,
          peakRssMiB: result.peakRssMiB,
          warmRunMs: result.rows[0]?.medianMs,
        };
      say(`[memory] ${PYTORCH} ${loss} ${size.name}: ${describe(row)}`);
      rows.push(row);
    }
  }
  return rows;
}

function describe(row: PeakMemoryRow): string {
  return row.error ?? `peak ${row.peakRssMiB?.toFixed(0)} MiB, run ${row.warmRunMs?.toFixed(0)} ms`;
}

/** The rows as a Markdown table, with each backend's peak relative to PyTorch's. */
export function memoryTable(rows: PeakMemoryRow[]): string {
  const pytorch = new Map(
    rows.filter((r) => r.backend === PYTORCH && r.peakRssMiB).map((r) => [r.loss, r.peakRssMiB!]),
  );
  return [
    "| backend | loss | size | peak RSS | vs PyTorch | run |",
    "|---|---|---|---|---|---|",
    ...rows.map((r) => {
      if (r.error) return `| ${r.backend} | ${r.loss} | ${r.size} | failed: ${r.error} | | |`;
      const base = pytorch.get(r.loss);
      const ratio = base && r.peakRssMiB ? `${(r.peakRssMiB / base).toFixed(2)}×` : "";
      return `| ${r.backend} | ${r.loss} | ${r.size} | ${
        r.peakRssMiB?.toFixed(0)
      } MiB | ${ratio} | ${r.warmRunMs?.toFixed(0)} ms |`;
    }),
  ].join("\n");
}

if (import.meta.main) {
  const blas = Deno.env.get("BENCH_PYTORCH") === "0" ? undefined : await setUpOpenBlas();
  const rows = await measurePeakMemory(blas?.coretype);
  const results = new URL("results/", import.meta.url);
  await Deno.mkdir(results, { recursive: true });
  await Deno.writeTextFile(
    new URL("memory.json", results),
    JSON.stringify({ timestamp: new Date().toISOString(), rows }, null, 2) + "\n",
  );
  console.log(memoryTable(rows));
  console.log("Wrote bench/results/memory.json.");
}

// The PyTorch anchor from Deno: what it needs (checked, never installed) and one run of
// bench/pytorch_anchor.py.
import type { HeadSpec, SuccessorHeadSpec } from "../mod.ts";
import { benchBudgetMs, benchSelection, type BenchSize } from "./_config.ts";

const here = new URL(".", import.meta.url);
/** Debian's Python, whose python3-torch the anchor uses. */
const PYTHON = "/usr/bin/python3";
/** pytorch_anchor.py's exit code when torch cannot be imported (it prints what to install). */
const MISSING_TORCH = 3;
const decoder = new TextDecoder();
const say = (line: string) => console.error(line);

async function command(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  return {
    ok: out.success,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** Whether a Debian package is installed; undefined where there is no dpkg. */
async function installed(pkg: string): Promise<boolean | undefined> {
  try {
    const out = await command("dpkg-query", ["-W", "-f=${Status}", pkg]);
    return out.stdout.includes("install ok installed");
  } catch {
    return undefined;
  }
}

/**
 * Checks (installs nothing) what the PyTorch anchor needs, and picks OpenBLAS's kernels from the
 * CPU flags (over a weaker OPENBLAS_CORETYPE of the environment; engine-native in the bench gets
 * the same): `note` says what was found; `missing` holds one line per missing piece, saying what to
 * install (`deno task setup` installs them all).
 */
export async function setUpOpenBlas(): Promise<
  { coretype?: string; note: string; missing: string[] }
> {
  const missing: string[] = [];
  const openblas = await installed("libopenblas0-pthread");
  if (openblas === false) {
    missing.push(
      "PyTorch runs on a generic BLAS, several times slower: install OpenBLAS with " +
        "`apt-get install -y libopenblas0-pthread` (or `deno task setup`)",
    );
  }
  const flags = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(
    /^flags\s*:(.*)$/m,
  )?.[1].split(/\s+/) ?? [];
  // OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to SSE3 kernels otherwise. The
  // CPU's best kernels replace a weaker OPENBLAS_CORETYPE of the environment (this machine's image
  // sets Haswell: PyTorch's 2048³ product 90 ms vs 48 ms with SkylakeX), so every peer that uses
  // OpenBLAS gets its best.
  const ambient = Deno.env.get("OPENBLAS_CORETYPE");
  const best = flags.includes("avx512f")
    ? "SkylakeX"
    : flags.includes("avx2")
    ? "Haswell"
    : undefined;
  const coretype = best ?? ambient;
  const replaced = ambient !== undefined && ambient !== coretype
    ? ` (the environment's ${ambient} replaced)`
    : "";
  const found = openblas
    ? "libopenblas0-pthread installed"
    : openblas === false
    ? "libopenblas0-pthread missing"
    : "no dpkg to ask for libopenblas0-pthread";
  const jemalloc = Object.keys(pytorchAllocator()).length > 0;
  if (!jemalloc) {
    missing.push(
      "PyTorch runs on glibc's malloc, several times slower on margin heads (fresh pages for every " +
        "large tensor): install jemalloc with `apt-get install -y libjemalloc2` (or `deno task setup`)",
    );
  }
  return {
    coretype,
    missing,
    note: `${found}; OPENBLAS_CORETYPE=${coretype ?? "(unset: no avx2)"}${replaced}, ` +
      `OMP_WAIT_POLICY=PASSIVE${jemalloc ? ", jemalloc preloaded (decay off)" : ""}`,
  };
}

/** What bench/pytorch_anchor.py writes. */
export type Pytorch = {
  threads: number;
  blas: { summary: string };
  torch: string;
  peakRssMiB?: number;
  // deno-lint-ignore no-explicit-any
  rows: any[];
};

/** What the anchor runs: sizes, heads and seconds per bench; the environment's selection by default. */
export interface PytorchJob {
  sizes: readonly BenchSize[];
  /** Each loss's name and head (a catalog entry or a successor loss of bench/_successors.ts). */
  losses: readonly { name: string; head(): HeadSpec | SuccessorHeadSpec }[];
  budgetS: number;
}

/** Debian's jemalloc (libjemalloc2), where the bench's PyTorch processes preload it. */
const JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

/**
 * The allocator a performance-minded PyTorch user on the CPU runs with: jemalloc, preloaded, its
 * freed pages kept (decay off). glibc's malloc hands every large tensor fresh pages from mmap, whose
 * first-touch faults dominate the elementwise ops of a margin head: PyTorch's ArcFace at M (N 128,
 * D 512, C 10 000) took 257 ms with glibc and 50.5 ms with this, measured on this machine (a 5 M-float
 * multiply 13.5 vs 0.8 ms). Empty where libjemalloc2 is not installed (`deno task setup` installs it).
 */
export function pytorchAllocator(): Record<string, string> {
  try {
    Deno.statSync(JEMALLOC);
  } catch {
    return {};
  }
  return { LD_PRELOAD: JEMALLOC, MALLOC_CONF: "dirty_decay_ms:-1,muzzy_decay_ms:-1" };
}

/** Runs bench/pytorch_anchor.py in its own process; a reason when it fails. */
export async function runPytorch(
  coretype: string | undefined,
  job: PytorchJob = { ...benchSelection(), budgetS: benchBudgetMs() / 1000 },
): Promise<Pytorch | string> {
  const { sizes, losses } = job;
  const dir = await Deno.makeTempDir({ prefix: "bench-pytorch-" });
  const jobPath = `${dir}/job.json`, out = `${dir}/out.json`;
  await Deno.writeTextFile(
    jobPath,
    JSON.stringify({
      sizes,
      budgetS: job.budgetS,
      heads: losses.map((e) => ({ loss: e.name, head: e.head() })),
    }),
  );
  const env: Record<string, string> = {
    OMP_WAIT_POLICY: Deno.env.get("OMP_WAIT_POLICY") ?? "PASSIVE",
    ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}),
    ...pytorchAllocator(),
  };
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(PYTHON, {
      args: [new URL("pytorch_anchor.py", here).pathname, jobPath, out],
      env,
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (e) {
    const reason = `PyTorch column skipped: cannot start ${PYTHON} (${
      e instanceof Error ? e.message : e
    }); install it with \`apt-get install -y python3 python3-torch\` (or \`deno task setup\`)`;
    say(reason);
    return reason;
  }
  const { success, code } = await child.status;
  if (code === MISSING_TORCH) {
    return "PyTorch column skipped: no torch for /usr/bin/python3; " +
      "install it with `apt-get install -y python3-torch` (or `deno task setup`)";
  }
  if (!success) return `bench/pytorch_anchor.py failed with exit code ${code} (see above)`;
  return JSON.parse(await Deno.readTextFile(out));
}

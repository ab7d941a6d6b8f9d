// The PyTorch anchor from Deno: OpenBLAS set-up and one run of bench/pytorch_anchor.py.
import type { CatalogEntry } from "../mod.ts";
import { benchBudgetMs, benchSelection, type BenchSize } from "./_config.ts";

const here = new URL(".", import.meta.url);
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

/** Installs Debian's OpenBLAS if missing (idempotent) and picks its kernels from the CPU flags. */
export async function setUpOpenBlas(): Promise<{ coretype?: string; note: string }> {
  const status = await command("dpkg-query", ["-W", "-f=${Status}", "libopenblas0-pthread"])
    .catch(() => ({ ok: false, stdout: "", stderr: "dpkg-query missing" }));
  let note: string;
  if (status.stdout.includes("install ok installed")) {
    note = "libopenblas0-pthread already installed";
  } else {
    say("[setup] installing libopenblas0-pthread (apt-get, needs root)…");
    let install = await command("apt-get", ["install", "-y", "libopenblas0-pthread"]);
    if (!install.ok) {
      await command("apt-get", ["update"]);
      install = await command("apt-get", ["install", "-y", "libopenblas0-pthread"]);
    }
    note = install.ok
      ? "libopenblas0-pthread installed now"
      : `libopenblas0-pthread could not be installed: ${install.stderr.trim().split("\n").pop()}`;
  }
  const flags = (await Deno.readTextFile("/proc/cpuinfo")).match(/^flags\s*:(.*)$/m)?.[1]
    .split(/\s+/) ?? [];
  // OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to SSE3 kernels otherwise.
  const coretype = flags.includes("avx512f")
    ? "SkylakeX"
    : flags.includes("avx2")
    ? "Haswell"
    : undefined;
  return { coretype, note: `${note}; OPENBLAS_CORETYPE=${coretype ?? "(unset: no avx2)"}` };
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
  losses: readonly CatalogEntry[];
  budgetS: number;
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
  const env: Record<string, string> = coretype ? { OPENBLAS_CORETYPE: coretype } : {};
  const child = new Deno.Command("/usr/bin/python3", {
    args: [new URL("pytorch_anchor.py", here).pathname, jobPath, out],
    env,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const { success } = await child.status;
  if (!success) return "bench/pytorch_anchor.py failed (see above)";
  return JSON.parse(await Deno.readTextFile(out));
}

// The report's "Not measured" lines: one per backend that skipped something, with where, why, and
// what to install or run to measure it.
import type { BenchRow } from "./_results.ts";

/** What a skip reason calls for, in a few words. */
function hint(reason: string, kind: string | undefined, job: string): string {
  if (
    kind === "WebGPU" && !reason.startsWith("does not support") &&
    /unavailable|adapter|webgpu|gpu/i.test(reason)
  ) {
    return "; for WebGPU on the CPU install lavapipe with `apt-get install -y mesa-vulkan-drivers` " +
      "(or `deno task setup`)";
  }
  if (/budget/.test(reason)) {
    return job === "main"
      ? "; `deno task bench:full` gives each bench 30 s"
      : "; a larger BENCH_BUDGET_S would run it";
  }
  return "";
}

/**
 * One line per backend with skipped rows (PyTorch's own failure to start is reported apart, so
 * its rows are left out when every one of them carries that reason).
 */
export function skipLines(
  rows: readonly BenchRow[],
  job: string,
  backends: readonly { name: string; kind: string }[],
): string[] {
  const lines: string[] = [];
  const byBackend = Map.groupBy(rows.filter((r) => r.skipped), (r) => r.backend);
  for (const [backend, skipped] of byBackend) {
    if (skipped.every((r) => r.skipped!.startsWith("PyTorch column skipped"))) continue;
    if (skipped.every((r) => r.skipped!.startsWith("left out"))) continue;
    const all = rows.filter((r) => r.backend === backend);
    const sizes = [...new Set(skipped.map((r) => r.size))];
    const where = "at " + sizes.map((size) => {
      const losses = skipped.filter((r) => r.size === size).map((r) => r.loss);
      const every = all.filter((r) => r.size === size).length === losses.length;
      return every ? `${size}` : `${size} (${losses.join(", ")})`;
    }).join(", ");
    const reasons = [...new Set(skipped.map((r) => r.skipped!))];
    const kind = backends.find((b) => b.name === backend)?.kind;
    const more = reasons.length > 1 ? ` (and ${reasons.length - 1} similar)` : "";
    lines.push(
      `${backend}: skipped ${where}: ${reasons[0]}${more}${hint(reasons[0], kind, job)}`,
    );
  }
  return lines;
}

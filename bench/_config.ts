// What a bench run covers and how long each bench may take: sizes, the selection from the
// job (bench/_profiles.ts) and the environment, and the one skip rule. Shared by losses_bench.ts
// and run.ts.
import { CONTENDERS as BACKENDS, PEERS } from "../adapters/registry.ts";
import { activeProfile } from "./_profiles.ts";
import { BENCH_LOSSES, type BenchLoss, SUCCESSOR_GROUP, SUCCESSOR_LOSSES } from "./_successors.ts";

/** Whether a contender is one of our engines (the reference first), not a peer's. */
export function isOurEngine(backend: { name: string }): boolean {
  return !PEERS.some((peer) => peer.name === backend.name);
}

/**
 * A contender's name in results, tables and BENCH_BACKENDS: our engines other than the reference
 * as `engine-<name>` ("engine-wasm"), the reference and peers by their own names.
 */
export function benchName(backend: { name: string }): string {
  return isOurEngine(backend) && backend.name !== "reference" && !backend.name.startsWith("engine-")
    ? `engine-${backend.name}`
    : backend.name;
}

/** The contender called `name` in results or in the registry. */
export function findBackend(name: string): (typeof BACKENDS)[number] | undefined {
  return BACKENDS.find((b) => b.name === name || benchName(b) === name);
}

/** A head size: N samples, D features, C classes. */
export interface BenchSize {
  name: string;
  N: number;
  D: number;
  C: number;
}

/** The sizes of the suite, smallest first (the skip rule extrapolates from the first). */
export const SIZES: readonly BenchSize[] = [
  { name: "S", N: 64, D: 128, C: 1_000 },
  { name: "M", N: 128, D: 512, C: 10_000 },
  { name: "L", N: 256, D: 512, C: 100_000 },
];

/** The work of a head, forward and backward: three N×D×C matrix products of 2 flops per term. */
export function flopsOf(size: BenchSize): number {
  return 6 * size.N * size.D * size.C;
}

/** `size` as "S (64×128×1000)". */
export function sizeLabel(size: BenchSize): string {
  return `${size.name} (${size.N}×${size.D}×${size.C})`;
}

function pick<T>(
  variable: string,
  all: readonly T[],
  nameOf: (t: T) => string,
  byDefault: (t: T) => boolean,
): T[] {
  const wanted = Deno.env.get(variable)?.split(",").map((s) => s.trim()).filter(Boolean);
  if (!wanted?.length) return all.filter(byDefault);
  const names = all.map(nameOf);
  const unknown = wanted.filter((w) => !names.includes(w));
  if (unknown.length) {
    throw new Error(`${variable}: unknown ${unknown.join(", ")}; known: ${names.join(", ")}`);
  }
  return all.filter((t) => wanted.includes(nameOf(t)));
}

/** Loss names with the group `successors` replaced by the six successor losses. */
function expandLosses(names: readonly string[]): string[] {
  return names.flatMap((n) => n === SUCCESSOR_GROUP ? SUCCESSOR_LOSSES.map((l) => l.name) : [n]);
}

/** BENCH_LOSSES's choice (`successors` selects the six successor losses), else the job's. */
function pickLosses(job: ReturnType<typeof activeProfile>): BenchLoss[] {
  const set = Deno.env.get("BENCH_LOSSES");
  const wanted = set ? expandLosses(set.split(",").map((s) => s.trim()).filter(Boolean)) : [];
  if (wanted.length) {
    const names = BENCH_LOSSES.map((l) => l.name);
    const unknown = wanted.filter((w) => !names.includes(w));
    if (unknown.length) {
      throw new Error(
        `BENCH_LOSSES: unknown ${unknown.join(", ")}; known: ${SUCCESSOR_GROUP}, ${
          names.join(", ")
        }`,
      );
    }
    return BENCH_LOSSES.filter((l) => wanted.includes(l.name));
  }
  // "all" is every head loss of the catalog; the successors only where a job names them.
  if (job.losses === "all") return BENCH_LOSSES.filter((l) => !SUCCESSOR_LOSSES.includes(l));
  const named = expandLosses(job.losses);
  return BENCH_LOSSES.filter((l) => named.includes(l.name));
}

/**
 * The sizes, backends and losses to run: the job's (BENCH_PROFILE, bench/_profiles.ts), or the
 * comma-separated names in BENCH_SIZES, BENCH_BACKENDS and BENCH_LOSSES (where `successors` names
 * the six successor losses of bench/_successors.ts).
 */
export function benchSelection() {
  const job = activeProfile();
  return {
    sizes: pick("BENCH_SIZES", SIZES, (s) => s.name, (s) => job.sizes.includes(s.name)),
    backends: pick(
      "BENCH_BACKENDS",
      BACKENDS,
      benchName,
      (b) => job.backends === "all" || isOurEngine(b),
    ),
    losses: pickLosses(job),
  };
}

/** Seconds one bench (warm-up and samples) may take: BENCH_BUDGET_S, else the job's. */
export function benchBudgetMs(): number {
  const seconds = Number(Deno.env.get("BENCH_BUDGET_S") || activeProfile().budgetS);
  if (!(seconds > 0)) throw new Error(`BENCH_BUDGET_S must be a positive number of seconds`);
  return seconds * 1000;
}

/** How a bench runs, or why it does not. */
export type BenchPlan =
  | { skip: false; n: number; warmup: number; estimateMs: number; plannedMs: number }
  | { skip: true; reason: string; estimateMs: number };

/**
 * Our warm-up runs untimed before the first timed call; `deno bench` (Deno 2.9, `warmup: 0`) then
 * times at least one call in its own warm-up and n + 1 in its measuring phase, all recorded as
 * samples: at least 3 with n = 1.
 */
const EXTRA_CALLS = 2, MIN_N = 1, MAX_N = 30;

/**
 * The one skip rule. The cost of a run is 6·N·D·C divided by the backend's measured throughput
 * (flops per ms of a warm run at the largest size probed so far); a bench runs when warm-up and
 * at least three samples fit in the budget, with as many samples as fit (up to 32, or the job's
 * `maxSamples` + 2).
 */
export function planBench(
  size: BenchSize,
  flopsPerMs: number,
  budgetMs: number,
  maxN = activeProfile().maxSamples ?? MAX_N,
): BenchPlan {
  const estimateMs = flopsOf(size) / flopsPerMs;
  // About a second of warm-up (JIT, shader compilation, caches), never more than a fifth of the budget.
  const warmup = Math.max(1, Math.min(20, Math.floor(Math.min(1000, budgetMs / 5) / estimateMs)));
  const fit = Math.floor(budgetMs / estimateMs) - warmup - EXTRA_CALLS;
  if (fit < MIN_N) {
    return {
      skip: true,
      estimateMs,
      reason: `estimated ${(estimateMs / 1000).toFixed(1)} s per run ` +
        `(at ${(flopsPerMs / 1e6).toFixed(2)} GFLOP/s measured): ` +
        `${warmup + MIN_N + EXTRA_CALLS} runs exceed the ${budgetMs / 1000} s budget`,
    };
  }
  const n = Math.min(maxN, fit);
  return { skip: false, n, warmup, estimateMs, plannedMs: (warmup + n + EXTRA_CALLS) * estimateMs };
}

/**
 * Whether start-up should measure a backend at `size` before planning: when the extrapolated run
 * fits the budget. Extrapolating linearly from a smaller size overestimates backends with a fixed
 * cost per call (GPU dispatch, read-back), which would otherwise be skipped wrongly.
 */
export function shouldProbe(size: BenchSize, flopsPerMs: number, budgetMs: number): boolean {
  return flopsOf(size) / flopsPerMs <= budgetMs;
}

/** The median of a sample (the mean of the two middle values for an even count). */
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

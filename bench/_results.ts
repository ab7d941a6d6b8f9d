// What bench/run.ts writes to bench/results/<job>.json, and what bench:compare, the tracker and
// the history read: the types, and the anchors every row is measured against.
import { MACHINE_PROBE, PARALLEL_PROBE } from "./_machine_probe.ts";

/** One row of the results: one backend, one loss, one size. */
export interface BenchRow {
  backend: string;
  /** Whether the backend is one of our engines (not a peer, not PyTorch). */
  ours?: boolean;
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
  /** Every timed iteration, in ms: what bench:compare's noise band is drawn from. */
  samplesMs?: number[];
  gflops?: number;
  vsReference?: number;
  vsPytorch?: number;
  /** The anchor of this row, measured in the same run: the machine probe, one thread or all. */
  anchor?: string;
  /** The fastest iteration ÷ the anchor's fastest ({@linkcode trackedOf}): what is tracked. */
  vsAnchor?: number;
  skipped?: string;
  /** `deno bench`'s own statistics of the same bench, in ms, for cross-checking. */
  deno?: { n: number; avg: number; min: number; p75: number };
}

/** The parts of a results file that bench:compare, the tracker and the history read. */
export interface BenchResult {
  timestamp: string;
  /** The job (bench/_profiles.ts) that wrote it. */
  profile?: string;
  /** `git describe` of the tree measured, "+dirty" when it had changes. */
  commit?: string;
  machine?: { cpu?: string; cores?: number; deno?: string; loadAverage?: (number | undefined)[] };
  /**
   * The fixed matrix product of bench/_machine_probe.ts, timed in the bench process: on one thread
   * (`samplesMs`) and on every core at once (`parallelSamplesMs`).
   */
  machineProbe?: { samplesMs: number[]; medianMs: number; parallelSamplesMs?: number[] };
  rows: BenchRow[];
}

/**
 * How a row's samples become the figure it is tracked by: their minimum. Load on a shared machine
 * only ever adds time, so the fastest iteration is the most repeatable estimate of what the code
 * costs (Chen & Revels, "Robust benchmarking in noisy environments", 2016); medians, which load
 * moves, are for the tables.
 */
export function trackedOf(samples: readonly number[]): number {
  return Math.min(...samples);
}

/** The timed iterations of a probe, or of `backend` at a row's loss and size. */
export function anchorSamples(
  result: BenchResult,
  name: string,
  at: { loss: string; size: string },
): number[] | undefined {
  const probe = name === MACHINE_PROBE
    ? result.machineProbe?.samplesMs
    : name === PARALLEL_PROBE
    ? result.machineProbe?.parallelSamplesMs
    : result.rows.find((r) => r.backend === name && r.loss === at.loss && r.size === at.size)
      ?.samplesMs;
  return probe?.length ? probe : undefined;
}

/**
 * The anchor of a row: the machine probe on every core for a backend that runs on several threads
 * (it slows down as they do when another process takes a core), on one thread otherwise.
 */
export function anchorOf(row: BenchRow): string {
  return row.threads !== null && row.threads > 1 ? PARALLEL_PROBE : MACHINE_PROBE;
}

/**
 * Sets `anchor` and `vsAnchor` on every measured row of `result`: its fastest iteration divided by
 * its probe's (see {@linkcode anchorOf}), both measured in the same run. Returns the rows left
 * without one (no probe).
 *
 * The anchor is fixed code on purpose: an anchor that is itself a contender (the float64
 * reference, engine-wasm) moves when its own code changes, and its long iterations (25 ms and more)
 * soak up more of a busy machine's load than a 3 ms probe does.
 */
export function attachAnchors(result: BenchResult): BenchRow[] {
  const missing: BenchRow[] = [];
  for (const row of result.rows) {
    if (!row.samplesMs?.length) continue;
    const anchor = anchorOf(row);
    const probe = anchorSamples(result, anchor, row);
    if (!probe) {
      missing.push(row);
      continue;
    }
    row.anchor = anchor;
    row.vsAnchor = trackedOf(row.samplesMs) / trackedOf(probe);
  }
  return missing;
}

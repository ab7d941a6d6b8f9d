/**
 * Per-sample losses and the target's 1 − p_y from each sample's non-target statistics and its
 * target logit, in float64, and their reduction: shared by engine-wasm and engine-native (and
 * engine-webgpu for a successor head).
 *
 * @module
 */
import type { Reduction } from "../../losses/types.ts";
import { reduce } from "../../losses/cross_entropy.ts";

/** Per-sample losses, the reduced loss, and rest_i = 1 − p_iy = Σ_{j≠y} p_ij. */
export interface Losses {
  /** The reduced loss. */
  loss: number;
  /** The per-sample losses. */
  losses: Float64Array;
  /** 1 − p_iy, per sample. */
  rest: Float64Array;
}

/**
 * Losses from each sample's non-target max M_i and Σ_{j≠y} e^(z_ij − M_i) (`stats`, pairs
 * (M_i, Σ_i)) and its target logit: loss_i = log(1 + q_i) with q_i = Σ_{j≠y} e^(z_ij − z_iy), which
 * keeps its relative precision when the target dominates (no log Σ − z_y cancellation);
 * 1 − p_y = q/(1 + q) likewise, so the target's gradient p_y − 1 = −Σ_{j≠y} p_j never cancels.
 * `extraLoss` (a successor head's per-sample term, MagFace's regulariser) is added to each loss.
 */
export function lossesOf(
  stats: ArrayLike<number>,
  zy: ArrayLike<number>,
  N: number,
  reduction: Reduction,
  extraLoss?: ArrayLike<number>,
): Losses {
  const losses = new Float64Array(N), rest = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const gap = stats[2 * i] - zy[i], sum = stats[2 * i + 1];
    const q = sum * Math.exp(gap);
    if (Number.isFinite(q)) {
      losses[i] = Math.log1p(q);
      rest[i] = q / (1 + q);
    } else {
      losses[i] = gap + Math.log(sum + Math.exp(-gap));
      rest[i] = 1 / (1 + Math.exp(-gap) / sum);
    }
    if (extraLoss) losses[i] += extraLoss[i];
  }
  return { loss: reduce(losses, reduction), losses, rest };
}

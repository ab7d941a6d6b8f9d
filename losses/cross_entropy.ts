import type { Reduction } from "./types.ts";

/** Per-sample losses, the reduced loss and ∂loss/∂logits. */
export interface CrossEntropy {
  losses: Float64Array;
  loss: number;
  gradLogits: Float64Array;
}

/** The factor each sample's gradient carries under a reduction. */
export function reductionWeight(reduction: Reduction, n: number): number {
  return reduction === "mean" ? 1 / n : 1;
}

/**
 * Reduces per-sample losses: the mean, or the sum for "sum" and "none". A mean whose sum overflows
 * float64 is summed again divided by N, so it is finite whenever every loss is.
 */
export function reduce(losses: Float64Array, reduction: Reduction): number {
  let total = 0;
  for (let i = 0; i < losses.length; i++) total += losses[i];
  const weight = reductionWeight(reduction, losses.length);
  if (Number.isFinite(total) || reduction !== "mean") return total * weight;
  let mean = 0;
  for (let i = 0; i < losses.length; i++) mean += losses[i] * weight;
  return mean;
}

/**
 * Softmax cross-entropy over N×C logits, shifted by each row's maximum so that large scales never
 * overflow: loss_i = log Σ_j exp(z_ij) − z_iy.
 *
 * A well-classified sample keeps its relative precision: when the target is the row's maximum,
 * loss_i = log1p(Σ_{j≠y} exp(z_ij − z_iy)) (log Σ − z_y would cancel to 0 below 1e-16), and the
 * target's gradient p_y − 1 is computed as −Σ_{j≠y} p_j, which never cancels.
 */
export function softmaxCrossEntropy(
  logits: Float64Array,
  labels: Int32Array,
  reduction: Reduction,
): CrossEntropy {
  const N = labels.length, C = logits.length / N;
  const weight = reductionWeight(reduction, N);
  const losses = new Float64Array(N);
  const gradLogits = new Float64Array(N * C);
  for (let i = 0; i < N; i++) {
    const row = i * C;
    const y = labels[i];
    let max = -Infinity;
    for (let j = 0; j < C; j++) max = Math.max(max, logits[row + j]);
    let rest = 0; // Σ_{j≠y} exp(z_j − max)
    for (let j = 0; j < C; j++) {
      const e = Math.exp(logits[row + j] - max);
      gradLogits[row + j] = e;
      if (j !== y) rest += e;
    }
    const target = logits[row + y] - max, sum = gradLogits[row + y] + rest;
    losses[i] = target === 0 ? Math.log1p(rest) : Math.log(sum) - target;
    const scale = weight / sum;
    for (let j = 0; j < C; j++) gradLogits[row + j] *= scale;
    gradLogits[row + y] = rest === 0 ? 0 : -rest * scale; // (p_y − 1)·weight, never −0
  }
  return { losses, loss: reduce(losses, reduction), gradLogits };
}

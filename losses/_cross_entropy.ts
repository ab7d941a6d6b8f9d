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

/** Reduces per-sample losses: the mean, or the sum for "sum" and "none". */
export function reduce(losses: Float64Array, reduction: Reduction): number {
  let total = 0;
  for (let i = 0; i < losses.length; i++) total += losses[i];
  return total * reductionWeight(reduction, losses.length);
}

/**
 * Softmax cross-entropy over N×C logits, shifted by each row's maximum so that large scales never
 * overflow: loss_i = log Σ_j exp(z_ij) − z_iy.
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
    let max = -Infinity;
    for (let j = 0; j < C; j++) max = Math.max(max, logits[row + j]);
    let sum = 0;
    for (let j = 0; j < C; j++) {
      const e = Math.exp(logits[row + j] - max);
      gradLogits[row + j] = e;
      sum += e;
    }
    const y = labels[i];
    losses[i] = -((logits[row + y] - max) - Math.log(sum));
    const scale = weight / sum;
    for (let j = 0; j < C; j++) gradLogits[row + j] *= scale;
    gradLogits[row + y] -= weight;
  }
  return { losses, loss: reduce(losses, reduction), gradLogits };
}

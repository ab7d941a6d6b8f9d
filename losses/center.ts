import type { Matrix } from "./matrix.ts";
import type { ReductionOptions } from "./types.ts";
import { reduce, reductionWeight } from "./cross_entropy.ts";
import { assertFiniteOutput, checkHeadInput, optionsObject, reductionOption } from "./_validate.ts";

/** The inputs of {@linkcode centerLoss}. */
export interface CenterInput {
  /** Features x, N×D. */
  features: Matrix;
  /** Class centers, C×D. */
  centers: Matrix;
  /** N integer labels in [0, C). */
  labels: ArrayLike<number>;
}

/** What {@linkcode centerLoss} returns. */
export interface CenterResult {
  /** The reduced loss; for `"none"` the sum of `losses`. */
  loss: number;
  /** Per-sample losses ½‖x_i − c_{y_i}‖², length N. */
  losses: Float64Array;
  /** ∂loss/∂features, N×D. */
  gradFeatures: Matrix;
  /** ∂loss/∂centers (the autograd gradient), C×D. */
  gradCenters: Matrix;
  /**
   * The paper's update direction Δc_j = Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j), C×D, zero for
   * classes without samples; independent of the reduction. Apply it with {@linkcode updateCenters}.
   */
  centerDelta: Matrix;
}

/** Options of {@linkcode centerLoss}. */
export type CenterOptions = ReductionOptions;

/**
 * Center loss (Wen et al., "A Discriminative Feature Learning Approach for Deep Face Recognition",
 * ECCV 2016).
 *
 * loss_i = ½‖x_i − c_{y_i}‖²; used with a softmax loss as L = L_S + λ·L_C.
 *
 * Returns both the autograd gradient of the centers and the paper's update
 * Δc_j = Σ_{y_i = j}(c_j − x_i) / (1 + n_j) (ydwen/caffe-face), which trains the centers instead.
 *
 * @example
 * ```ts
 * import { centerLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const r = centerLoss({
 *   features: matrix(2, 1, [1, 3]),
 *   centers: matrix(1, 1, [0]),
 *   labels: [0, 0],
 * });
 * assert.equal(r.loss, (0.5 + 4.5) / 2);
 * assert.equal(r.centerDelta.data[0], (-1 - 3) / 3);
 * ```
 *
 * @param input Features (N×D), centers (C×D) and labels.
 * @param options The reduction (default `"mean"`).
 * @returns The loss, per-sample losses, both gradients and the paper's center update direction.
 */
export function centerLoss(input: CenterInput, options?: CenterOptions): CenterResult {
  const where = "centerLoss";
  const reduction = reductionOption(where, optionsObject(where, options, ["reduction"]).reduction);
  const { N, D, C, x, w: centers, labels } = checkHeadInput(where, input, {
    classes: "centers",
    allowBias: false,
  });
  const weight = reductionWeight(reduction, N);
  const losses = new Float64Array(N);
  const gradFeatures = new Float64Array(N * D);
  const gradCenters = new Float64Array(C * D);
  const delta = new Float64Array(C * D);
  const counts = new Float64Array(C);
  for (let i = 0; i < N; i++) {
    const y = labels[i];
    counts[y]++;
    let half = 0; // ½‖x_i − c_{y_i}‖², as Σ (½·diff)·diff: the same bits, finite up to 1.8e308
    for (let k = 0; k < D; k++) {
      const diff = x[i * D + k] - centers[y * D + k];
      half += (0.5 * diff) * diff;
      gradFeatures[i * D + k] = weight * diff;
      gradCenters[y * D + k] -= weight * diff;
      delta[y * D + k] -= diff;
    }
    losses[i] = half;
  }
  for (let j = 0; j < C; j++) {
    for (let k = 0; k < D; k++) delta[j * D + k] /= 1 + counts[j];
  }
  const loss = reduce(losses, reduction);
  for (
    const [name, data] of [
      ["losses", losses],
      ["loss", [loss]],
      ["gradFeatures", gradFeatures],
      ["gradCenters", gradCenters],
      ["centerDelta", delta],
    ] as const
  ) assertFiniteOutput(where, name, data);
  return {
    loss,
    losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradCenters: { rows: C, cols: D, data: gradCenters },
    centerDelta: { rows: C, cols: D, data: delta },
  };
}

// Center loss for the engine paths of tfjsHeadLoss, touching only the rows of the batch's classes
// (C×D work per step would rival the head itself at 10 000 classes):
// - on the host (engine-wasm), in float64 with the very operations of losses/center.ts and
//   losses/update_centers.ts in the same order, so that the loss, ∂x and the moved centers are
//   bit for bit the reference's;
// - on tfjs-webgpu, as tfjs ops on a GPU copy of the centers, which `read` copies back.
import type { Reduction } from "../losses/types.ts";
import { reduce, reductionWeight } from "../losses/cross_entropy.ts";
import { tf } from "./tfjs_setup.ts";
import type { CheckedCenter } from "./_steps.ts";

/** One step of center loss on the host: its loss, added ∂x, and the move of the centers. */
export interface HostCenterStep {
  /** λ_c times the reduced center loss. */
  loss: number;
  /** Adds λ_c·∂(center loss)/∂x to ∂x (float32, N×D). */
  addGradient(gradFeatures: Float32Array): void;
  /** Moves the centers of the batch's classes by c ← c − α·Δc. */
  move(): void;
}

/** The center loss of features x (N×D, the float32 values tfjs holds) and their labels. */
export function hostCenterStep(
  where: string,
  center: CheckedCenter,
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
  size: { N: number; D: number },
  reduction: Reduction,
): HostCenterStep {
  const { N, D } = size, c = center.centers.data;
  const weight = reductionWeight(reduction, N);
  const losses = new Float64Array(N), grad = new Float64Array(N * D);
  const delta = new Map<number, Float64Array>(), counts = new Map<number, number>();
  for (let i = 0; i < N; i++) {
    const y = labels[i];
    counts.set(y, (counts.get(y) ?? 0) + 1);
    let row = delta.get(y);
    if (!row) delta.set(y, row = new Float64Array(D));
    let half = 0;
    for (let k = 0; k < D; k++) {
      const diff = x[i * D + k] - c[y * D + k];
      half += (0.5 * diff) * diff;
      grad[i * D + k] = weight * diff;
      row[k] -= diff;
    }
    losses[i] = half;
  }
  const loss = reduce(losses, reduction);
  if (!Number.isFinite(loss)) {
    throw new RangeError(`${where}: the center loss is not finite (centers or features too large)`);
  }
  return {
    loss: center.weight * loss,
    addGradient(gradFeatures) {
      for (let k = 0; k < gradFeatures.length; k++) gradFeatures[k] += center.weight * grad[k];
    },
    move() {
      for (const [y, row] of delta) {
        const n = counts.get(y)!;
        for (let k = 0; k < D; k++) c[y * D + k] = c[y * D + k] - center.alpha * (row[k] / (1 + n));
      }
    },
  };
}

/** The centers on tfjs-webgpu's device: created from the Matrix, moved there, read back on demand. */
export class GpuCenters {
  #centers?: tf.Tensor2D;
  constructor(readonly center: CheckedCenter) {}

  /** The GPU copy, made from the Matrix on first use. */
  tensor(): tf.Tensor2D {
    const { rows, cols, data } = this.center.centers;
    this.#centers ??= tf.keep(tf.tensor2d(Float32Array.from(data), [rows, cols]));
    return this.#centers;
  }

  /**
   * λ_c times the reduced center loss, λ_c·∂/∂x (N×D), and the tensors that {@linkcode move}
   * needs in the backward pass (to be saved across it).
   */
  forward(x: tf.Tensor2D, labels: tf.Tensor1D, reduction: Reduction) {
    const { weight } = this.center, N = x.shape[0];
    const cy = tf.gather(this.tensor(), labels) as tf.Tensor2D;
    const diff = tf.sub(x, cy) as tf.Tensor2D;
    const rw = reductionWeight(reduction, N);
    const loss = tf.mul(tf.sum(tf.square(diff)), 0.5 * rw * weight) as tf.Scalar;
    const gradient = tf.mul(diff, rw * weight) as tf.Tensor2D;
    return { loss, gradient, saved: [labels, cy, diff] };
  }

  /** Moves the centers of the batch's classes by the paper's rule, from `forward`'s `saved`. */
  move([labels, cy, diff]: tf.Tensor[]): void {
    const N = labels.shape[0], centers = this.tensor();
    const next = tf.tidy(() => {
      // Δc_y = Σ_{i: y_i = y} (c_y − x_i) / (1 + n_y), for each sample's class: same[i][i'] says
      // whether samples i and i' share a class (n_y is its row sum).
      const column = tf.reshape(labels, [N, 1]);
      const same = tf.cast(tf.equal(column, tf.reshape(labels, [1, N])), "float32") as tf.Tensor2D;
      const sums = tf.matMul(same, tf.neg(diff) as tf.Tensor2D);
      const counts = tf.reshape(tf.sum(same, 1), [N, 1]);
      const rows = tf.sub(cy, tf.mul(tf.div(sums, tf.add(counts, 1)), this.center.alpha));
      // Samples of one class write the same row, so duplicate indices agree.
      return tf.tensorScatterUpdate(centers, column, rows) as tf.Tensor2D;
    });
    this.#centers = tf.keep(next);
    centers.dispose();
  }

  /** Copies the GPU copy back into the Matrix (a read-back). */
  async read(): Promise<void> {
    if (!this.#centers) return;
    const values = await this.#centers.data();
    const out = this.center.centers.data;
    for (let k = 0; k < out.length; k++) out[k] = values[k];
  }

  /** Frees the GPU copy (the Matrix keeps what `read` last copied). */
  dispose(): void {
    this.#centers?.dispose();
    this.#centers = undefined;
  }
}

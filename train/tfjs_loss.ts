/**
 * A bridge from this library's analytic float64 head losses to TensorFlow.js training.
 *
 * @module
 */
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { centerLoss } from "../losses/center.ts";
import { updateCenters } from "../losses/update_centers.ts";
import type { HeadSpec } from "../losses/head_spec.ts";
import { type Matrix, matrix } from "../losses/matrix.ts";
import type { Reduction } from "../losses/types.ts";
import { tf } from "./tfjs_setup.ts";

export type { HeadSpec, Matrix, Reduction };

/** Options of {@linkcode tfjsHeadLoss}. */
export interface TfjsHeadLossOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /**
   * Adds the center loss λ_c·½‖x_i − c_{y_i}‖² with these centers (C×D), updated in place by the
   * paper's rule (α) after every call that computes gradients. Omit for no center loss.
   */
  center?: { centers: Matrix; weight: number; alpha?: number };
}

/** A tfjs loss: features N×D, weights C×D and labels N give a scalar whose gradient is analytic. */
export type TfjsHeadLoss = (
  features: tf.Tensor2D,
  weights: tf.Tensor2D,
  labels: tf.Tensor1D,
) => tf.Scalar;

type CustomGradient = Parameters<typeof tf.customGrad>[0];

/**
 * Whether this runtime has the 2-D canvas that tfjs-webgpu's synchronous read-back draws on: Deno
 * has an OffscreenCanvas whose 2-D context is null, where `dataSync` fails deep inside tfjs.
 */
export function hasSyncGpuReadBack(): boolean {
  const g = globalThis as { document?: unknown; OffscreenCanvas?: typeof OffscreenCanvas };
  if (g.document !== undefined) return true;
  try {
    return g.OffscreenCanvas !== undefined && new g.OffscreenCanvas(1, 1).getContext("2d") !== null;
  } catch {
    return false;
  }
}

function checkSyncReadBack() {
  if (tf.getBackend() === "webgpu" && !hasSyncGpuReadBack()) {
    throw new Error(
      "tfjsHeadLoss: the tfjs webgpu backend cannot read tensors back synchronously in this " +
        "runtime (no 2-D canvas); use the cpu or wasm backend here, or webgpu in a browser",
    );
  }
}

/**
 * Turns a head (any {@linkcode HeadSpec}, e.g. `arcFaceHead({ scale: 16, margin: 0.3 })`) into a
 * TensorFlow.js loss whose gradient is the library's analytic float64 gradient, through
 * `tf.customGrad`. The inputs are read back synchronously (`dataSync`), at the price of a round
 * trip per call: this works on the cpu and wasm backends everywhere and on webgpu in a browser
 * (Deno has no canvas for tfjs-webgpu's synchronous read-back: there it throws a clear error). `head` may be a function of nothing, read at
 * every call, so that a schedule (SphereFace's λ) can change between steps.
 *
 * @example
 * ```ts ignore
 * import { tf } from "./tfjs_setup.ts";

export type { HeadSpec, Matrix, Reduction };
 * import { arcFaceHead } from "../losses/arcface.ts";
 *
 * const loss = tfjsHeadLoss(arcFaceHead({ scale: 16, margin: 0.3 }));
 * const w = tf.variable(tf.randomNormal([10, 2]));
 * const optimizer = tf.train.adam(0.01);
 * optimizer.minimize(() => loss(model.apply(x) as tf.Tensor2D, w, y));
 * ```
 *
 * @param head The head, or a function returning the head of the current step.
 * @param options The reduction and an optional center loss.
 * @returns The loss function.
 */
export function tfjsHeadLoss(
  head: HeadSpec | (() => HeadSpec),
  options: TfjsHeadLossOptions = {},
): TfjsHeadLoss {
  const reduction = options.reduction ?? "mean";
  const op = tf.customGrad(
    ((features: tf.Tensor2D, weights: tf.Tensor2D, labels: tf.Tensor1D) => {
      checkSyncReadBack();
      const [N, D] = features.shape, C = weights.shape[0];
      const input = {
        features: matrix(N, D, Float64Array.from(features.dataSync())),
        weights: matrix(C, D, Float64Array.from(weights.dataSync())),
        labels: Array.from(labels.dataSync()),
      };
      const spec = typeof head === "function" ? head() : head;
      const result = marginSoftmaxLoss(input, spec, { reduction });
      let loss = result.loss;
      const gradFeatures = Float32Array.from(result.gradFeatures.data);
      const center = options.center;
      if (center) {
        const c = centerLoss({
          features: input.features,
          centers: center.centers,
          labels: input.labels,
        }, {
          reduction,
        });
        loss += center.weight * c.loss;
        for (let k = 0; k < gradFeatures.length; k++) {
          gradFeatures[k] += center.weight * c.gradFeatures.data[k];
        }
        // The paper's rule moves the centers once per mini-batch, outside the optimiser.
        const next = updateCenters(center.centers, c.centerDelta, { alpha: center.alpha });
        center.centers.data.set(next.data);
      }
      const gradWeights = Float32Array.from(result.gradWeights.data);
      return {
        value: tf.scalar(loss),
        gradFunc: (dy: tf.Scalar) => {
          const scale = dy.dataSync()[0];
          return [
            tf.mul(tf.tensor2d(gradFeatures, [N, D]), scale),
            tf.mul(tf.tensor2d(gradWeights, [C, D]), scale),
            tf.zerosLike(labels),
          ];
        },
      };
    }) as CustomGradient,
  ) as (f: tf.Tensor, w: tf.Tensor, l: tf.Tensor) => tf.Scalar;
  return (features, weights, labels) => op(features, weights, labels);
}

/**
 * A bridge from this library's analytic float64 head losses to TensorFlow.js training.
 *
 * @module
 */
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { centerLoss } from "../losses/center.ts";
import { updateCenters } from "../losses/update_centers.ts";
import type { HeadSpec } from "../losses/head_spec.ts";
import {
  checkHeadSpec,
  checkMatrix,
  numberOption,
  optionsObject,
  reductionOption,
} from "../losses/checks.ts";
import { type Matrix, matrix } from "../losses/matrix.ts";
import type { Reduction } from "../losses/types.ts";
import { tf } from "./tfjs_setup.ts";

export type { HeadSpec, Matrix, Reduction };

/** Options of {@linkcode tfjsHeadLoss}. */
export interface TfjsHeadLossOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /**
   * Adds the center loss λ_c·½‖x_i − c_{y_i}‖² (`weight` λ_c, a finite number ≥ 0) with these
   * centers (C×D, one per class). The centers move in place by the paper's rule, c ← c − α·Δc
   * (`alpha` in [0, 1], default 0.5), only when the gradient of the loss is taken (an optimizer's
   * `minimize`, `tf.grads`, `tf.valueAndGrads`): once per backward pass, with the Δc of that pass's
   * forward call. A call that only evaluates the loss leaves them as they are. Omit for no center
   * loss.
   */
  center?: { centers: Matrix; weight: number; alpha?: number };
}

/** The center-loss options, checked once. */
interface CheckedCenter {
  centers: Matrix;
  weight: number;
  alpha: number;
}

function checkCenterOptions(where: string, value: unknown): CheckedCenter | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object") {
    throw new TypeError(
      `${where}: options.center must be an object {centers, weight, alpha?}, got ${
        value === null ? "null" : typeof value
      }`,
    );
  }
  const center = value as Record<string, unknown>;
  for (const key of Object.keys(center)) {
    if (!["centers", "weight", "alpha"].includes(key)) {
      throw new TypeError(
        `${where}: unknown option "center.${key}"; options.center takes "centers", "weight", "alpha"`,
      );
    }
  }
  checkMatrix(where, "options.center.centers", center.centers as Matrix);
  if (center.weight === undefined) {
    throw new TypeError(
      `${where}: options.center.weight (λ_c) must be a finite number ≥ 0, got undefined`,
    );
  }
  return {
    centers: center.centers as Matrix,
    weight: numberOption(where, "center.weight", center.weight, 0, {
      min: 0,
      text: "a finite number ≥ 0",
    }),
    alpha: numberOption(where, "center.alpha", center.alpha, 0.5, {
      min: 0,
      max: 1,
      text: "in [0, 1]",
    }),
  };
}

function shapeOf(t: unknown): string {
  const shape = (t as { shape?: unknown })?.shape;
  return Array.isArray(shape) ? `[${shape.join(", ")}]` : "not a tensor";
}

/** Checks the three tensors' shapes in the adapter's words; returns N, D, C. */
function checkTensors(
  where: string,
  features: tf.Tensor,
  weights: tf.Tensor,
  labels: tf.Tensor,
): { N: number; D: number; C: number } {
  if (!(features instanceof tf.Tensor) || features.rank !== 2) {
    throw new TypeError(`${where}: features must be a 2-D tensor N×D, got ${shapeOf(features)}`);
  }
  const [N, D] = features.shape;
  if (!(weights instanceof tf.Tensor) || weights.rank !== 2 || weights.shape[1] !== D) {
    throw new RangeError(
      `${where}: weights must be a 2-D tensor C×D with D = ${D} (the columns of features), ` +
        `got ${shapeOf(weights)}`,
    );
  }
  if (!(labels instanceof tf.Tensor) || labels.rank !== 1 || labels.shape[0] !== N) {
    throw new RangeError(
      `${where}: labels must be a 1-D tensor of N = ${N} labels (one per row of features), ` +
        `got ${shapeOf(labels)}`,
    );
  }
  return { N, D, C: weights.shape[0] };
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
 * (Deno has no canvas for tfjs-webgpu's synchronous read-back: there it throws a clear error).
 * `head` may be a function of nothing, read at every call, so that a schedule (SphereFace's λ) can
 * change between steps.
 *
 * Everything is checked, with errors that name the argument: the head (see `checkHeadSpec`; a
 * head function's result at every call), the options (unknown keys included) when the loss is
 * made, the tensors' shapes and values at every call.
 *
 * @example
 * ```ts ignore
 * import { tf } from "./tfjs_setup.ts";
 * import { arcFaceHead } from "../losses/arcface.ts";
 *
 * const loss = tfjsHeadLoss(arcFaceHead({ scale: 16, margin: 0.3 }));
 * const w = tf.variable(tf.randomNormal([10, 2]));
 * const optimizer = tf.train.adam(0.01);
 * optimizer.minimize(() => loss(model.apply(x) as tf.Tensor2D, w, y));
 * ```
 *
 * @param head The head, or a function returning the head of the current step.
 * @param options The reduction and an optional center loss (see
 *   {@linkcode TfjsHeadLossOptions.center} for when the centers move).
 * @returns The loss function.
 */
export function tfjsHeadLoss(
  head: HeadSpec | (() => HeadSpec),
  options?: TfjsHeadLossOptions,
): TfjsHeadLoss {
  const where = "tfjsHeadLoss";
  if (typeof head !== "function") head = checkHeadSpec(where, head);
  const o = optionsObject(where, options, ["reduction", "center"]);
  const reduction = reductionOption(where, o.reduction);
  const center = checkCenterOptions(where, o.center);
  const op = tf.customGrad(
    ((features: tf.Tensor2D, weights: tf.Tensor2D, labels: tf.Tensor1D) => {
      const { N, D, C } = checkTensors(where, features, weights, labels);
      if (center && (center.centers.rows !== C || center.centers.cols !== D)) {
        throw new RangeError(
          `${where}: options.center.centers must be C×D = ${C}×${D} (one center per row of ` +
            `weights), got ${center.centers.rows}×${center.centers.cols}`,
        );
      }
      checkSyncReadBack();
      const input = {
        features: matrix(N, D, Float64Array.from(features.dataSync())),
        weights: matrix(C, D, Float64Array.from(weights.dataSync())),
        labels: Array.from(labels.dataSync()),
      };
      const spec = typeof head === "function" ? checkHeadSpec(where, head()) : head;
      const result = marginSoftmaxLoss(input, spec, { reduction });
      let loss = result.loss;
      const gradFeatures = Float32Array.from(result.gradFeatures.data);
      let moveCenters = () => {};
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
        // The paper's rule moves the centers once per mini-batch, outside the optimiser: only in a
        // backward pass, so that evaluating the loss leaves them alone.
        const next = updateCenters(center.centers, c.centerDelta, { alpha: center.alpha });
        moveCenters = () => center.centers.data.set(next.data);
      }
      const gradWeights = Float32Array.from(result.gradWeights.data);
      return {
        value: tf.scalar(loss),
        gradFunc: (dy: tf.Scalar) => {
          moveCenters();
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

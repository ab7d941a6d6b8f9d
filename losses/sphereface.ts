import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { angularHead, integerMarginOption, lambdaOption } from "./_head_options.ts";

/** Options of {@linkcode sphereFaceLoss}. */
export interface SphereFaceOptions extends MarginOptions {
  /** The angular multiplier m, an integer from 1 to 16. @default {4} */
  margin?: number;
  /** λ ≥ 0 blends the plain logit back in; anneal it with {@linkcode lambdaSchedule}. @default {0} */
  lambda?: number;
}

/**
 * The head description of {@linkcode sphereFaceLoss}, for backends.
 *
 * @example
 * ```ts
 * import { sphereFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = sphereFaceHead();
 * assert.ok(head.logits === "angular" && head.margin.kind === "psi" && head.margin.margin === 4);
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function sphereFaceHead(options?: SphereFaceOptions): HeadSpec {
  return angularHead("sphereFace", options, ["margin", "lambda", "marginGradient"], (o, where) => ({
    radius: { kind: "featureNorm" },
    margin: {
      kind: "psi",
      margin: integerMarginOption(where, o.margin, 4),
      lambda: lambdaOption(where, o.lambda),
    },
  }));
}

/**
 * A-Softmax, the loss of SphereFace (Liu et al., "SphereFace: Deep Hypersphere Embedding for Face
 * Recognition", CVPR 2017).
 *
 * Weights normalised, no bias, features keep their norm:
 * z_ij = ‖x_i‖·cos θ_ij for j ≠ y, and z_iy = ‖x_i‖·(λ·cos θ_iy + ψ_m(θ_iy)) / (1 + λ),
 * ψ_m(θ) = (−1)^k·cos(mθ) − 2k, k = ⌊mθ/π⌋.
 *
 * The gradient is the true gradient of this forward (as the PyTorch ports compute it), not the
 * original caffe backward. The caller's weights are never normalised in place.
 *
 * @example
 * ```ts
 * import { matrix, sphereFaceLoss } from "../mod.ts";
 * import assert from "node:assert";
 *
 * // θ = 90° and m = 4: k = 2, ψ = cos(2π) − 4 = −3, so the target logit is ‖x‖·(−3) = −6.
 * const { logits } = sphereFaceLoss({
 *   features: matrix(1, 2, [0, 2]),
 *   weights: matrix(2, 2, [5, 0, 0, 1]),
 *   labels: [0],
 * });
 * assert.ok(Math.abs(logits.data[0] + 6) < 1e-12);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The margin m, λ, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function sphereFaceLoss(input: HeadInput, options?: SphereFaceOptions): HeadResult {
  return marginSoftmaxLoss(input, sphereFaceHead(options), { reduction: options?.reduction });
}

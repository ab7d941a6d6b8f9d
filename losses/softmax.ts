import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, ReductionOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { optionsObject } from "./_validate.ts";

/** Options of {@linkcode softmaxLoss}. */
export type SoftmaxOptions = ReductionOptions;

/**
 * The head description of {@linkcode softmaxLoss}, for backends.
 *
 * @example
 * ```ts
 * import { softmaxHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * assert.equal(softmaxHead().logits, "linear");
 * ```
 *
 * @param options The options of the loss (only the reduction, which the head does not carry).
 * @returns The head description.
 */
export function softmaxHead(options?: SoftmaxOptions): HeadSpec {
  optionsObject("softmaxLoss", options, ["reduction"]);
  return { name: "softmax", logits: "linear" };
}

/**
 * Softmax cross-entropy of a linear classification head.
 *
 * z_ij = w_j·x_i + b_j,  loss_i = −log(exp(z_iy) / Σ_j exp(z_ij)).
 *
 * The plain baseline of the family; the bias is optional. Same as
 * `F.cross_entropy(F.linear(x, W, b), y)`.
 *
 * @example
 * ```ts
 * import { matrix, softmaxLoss } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const { loss, gradBias } = softmaxLoss({
 *   features: matrix(1, 2, [1, 0]),
 *   weights: matrix(2, 2, [0, 0, 0, 0]),
 *   labels: [0],
 *   bias: [0, 0],
 * });
 * assert.ok(Math.abs(loss - Math.log(2)) < 1e-15); // two equal logits
 * assert.deepEqual(Array.from(gradBias!), [-0.5, 0.5]);
 * ```
 *
 * @param input Features (N×D), weights (C×D), labels and an optional bias (C).
 * @param options The reduction (default `"mean"`).
 * @returns The loss, per-sample losses, logits and gradients (with `gradBias` when a bias is given).
 */
export function softmaxLoss(input: HeadInput, options?: SoftmaxOptions): HeadResult {
  return marginSoftmaxLoss(input, softmaxHead(options), { reduction: options?.reduction });
}

import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { angularHead, integerMarginOption, lambdaOption } from "./_head_options.ts";

/** Options of {@linkcode lSoftmaxLoss}. */
export interface LSoftmaxOptions extends MarginOptions {
  /** The angular multiplier m, an integer from 1 to 16 (1 is plain softmax). @default {4} */
  margin?: number;
  /** λ ≥ 0 blends the plain logit back in; anneal it with {@linkcode lambdaSchedule}. @default {0} */
  lambda?: number;
}

/**
 * The head description of {@linkcode lSoftmaxLoss}, for backends.
 *
 * @example
 * ```ts
 * import { lSoftmaxHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = lSoftmaxHead({ margin: 2 });
 * assert.ok(head.logits === "angular" && head.radius.kind === "normProduct");
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function lSoftmaxHead(options?: LSoftmaxOptions): HeadSpec {
  return angularHead("lSoftmax", options, ["margin", "lambda", "marginGradient"], (o, where) => ({
    radius: { kind: "normProduct" },
    margin: {
      kind: "psi",
      margin: integerMarginOption(where, o.margin, 4),
      lambda: lambdaOption(where, o.lambda),
    },
  }));
}

/**
 * L-Softmax, the large-margin softmax (Liu et al., "Large-Margin Softmax Loss for Convolutional
 * Neural Networks", ICML 2016).
 *
 * z_ij = w_j·x_i = ‖w_j‖‖x_i‖cos θ_ij for j ≠ y, and
 * z_iy = (λ·w_y·x_i + ‖w_y‖‖x_i‖·ψ_m(θ_iy)) / (1 + λ),
 * ψ_m(θ) = (−1)^k·cos(mθ) − 2k, k = ⌊mθ/π⌋.
 *
 * No bias. cos(mθ) is the Chebyshev polynomial T_m(cos θ), so the gradient stays finite at
 * cos θ = ±1; k is a step and contributes no gradient. λ = 0 is the paper's loss; the reference
 * trains with a large λ annealed towards a small one.
 *
 * @example
 * ```ts
 * import { lSoftmaxLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * // θ = 0 for the target: ψ(0) = 1, so the target logit is ‖w‖‖x‖ = 2.
 * const { logits } = lSoftmaxLoss(
 *   { features: matrix(1, 2, [2, 0]), weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0] },
 *   { margin: 2 },
 * );
 * assert.ok(Math.abs(logits.data[0] - 2) < 1e-12);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The margin m, λ, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function lSoftmaxLoss(input: HeadInput, options?: LSoftmaxOptions): HeadResult {
  return marginSoftmaxLoss(input, lSoftmaxHead(options), { reduction: options?.reduction });
}

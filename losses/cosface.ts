import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { angularHead, scaleOption } from "./_head_options.ts";
import { numberOption } from "./_validate.ts";

/** Options of {@linkcode cosFaceLoss}. */
export interface CosFaceOptions extends MarginOptions {
  /** Scale s. @default {64} */
  scale?: number;
  /** Additive cosine margin m, in [0, 1]. @default {0.35} */
  margin?: number;
}

/**
 * The head description of {@linkcode cosFaceLoss}, for backends.
 *
 * @example
 * ```ts
 * import { cosFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = cosFaceHead();
 * assert.ok(head.logits === "angular" && head.margin.kind === "angular" && head.margin.m3 === 0.35);
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function cosFaceHead(options?: CosFaceOptions): HeadSpec {
  return angularHead("cosFace", options, ["scale", "margin", "marginGradient"], (o, where) => ({
    radius: { kind: "scale", scale: scaleOption(where, o.scale, 64) },
    margin: {
      kind: "angular",
      m1: 1,
      m2: 0,
      m3: numberOption(where, "margin", o.margin, 0.35, { min: 0, max: 1, text: "in [0, 1]" }),
      fallback: "none",
    },
  }));
}

/**
 * CosFace, the large-margin cosine loss (Wang et al., "CosFace: Large Margin Cosine Loss for Deep
 * Face Recognition", CVPR 2018), also AM-Softmax (Wang et al., "Additive Margin Softmax for Face
 * Verification", 2018).
 *
 * z_ij = s·cos θ_ij for j ≠ y, and z_iy = s·(cos θ_iy − m).
 *
 * Defaults s = 64, m = 0.35 (insightface); AM-Softmax uses s = 30, m = 0.4. The margin is a
 * constant, so both margin-gradient modes give the same gradient.
 *
 * @example
 * ```ts
 * import { cosFaceLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const { logits } = cosFaceLoss(
 *   { features: matrix(1, 2, [1, 0]), weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0] },
 *   { scale: 30, margin: 0.4 },
 * );
 * assert.ok(Math.abs(logits.data[0] - 18) < 1e-12); // 30·(1 − 0.4)
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The scale, the margin, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function cosFaceLoss(input: HeadInput, options?: CosFaceOptions): HeadResult {
  return marginSoftmaxLoss(input, cosFaceHead(options), { reduction: options?.reduction });
}

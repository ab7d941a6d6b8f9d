import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { angularHead, integerMarginOption, scaleOption } from "./_head_options.ts";

/** Options of {@linkcode fNormSphereFaceLoss}. */
export interface FNormSphereFaceOptions extends MarginOptions {
  /** Scale s that replaces the feature norm. @default {30} */
  scale?: number;
  /** The angular multiplier m, an integer from 1 to 16. @default {4} */
  margin?: number;
}

/**
 * The head description of {@linkcode fNormSphereFaceLoss}, for backends.
 *
 * @example
 * ```ts
 * import { fNormSphereFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = fNormSphereFaceHead({ scale: 64 });
 * assert.ok(head.logits === "angular" && head.radius.kind === "scale");
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function fNormSphereFaceHead(options?: FNormSphereFaceOptions): HeadSpec {
  return angularHead(
    "fNormSphereFace",
    options,
    ["scale", "margin", "marginGradient"],
    (o, where) => ({
      radius: { kind: "scale", scale: scaleOption(where, o.scale, 30) },
      margin: { kind: "psi", margin: integerMarginOption(where, o.margin, 4), lambda: 0 },
    }),
  );
}

/**
 * SphereFace with normalised features, F-Norm SphereFace (Liu et al., "SphereFace Revived:
 * Unifying Hyperspherical Face Recognition", TPAMI 2022).
 *
 * z_ij = s·cos θ_ij for j ≠ y, and z_iy = s·ψ_m(θ_iy), ψ_m(θ) = (−1)^k·cos(mθ) − 2k,
 * k = ⌊mθ/π⌋.
 *
 * Default s = 30 (opensphere).
 *
 * @example
 * ```ts
 * import { fNormSphereFaceLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * // θ = 60° and m = 4: k = 1, ψ = −cos(240°) − 2 = −1.5, target logit s·ψ = −15.
 * const { logits } = fNormSphereFaceLoss(
 *   { features: matrix(1, 2, [1, Math.sqrt(3)]), weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0] },
 *   { scale: 10 },
 * );
 * assert.ok(Math.abs(logits.data[0] + 15) < 1e-9);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The scale, the margin m, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function fNormSphereFaceLoss(
  input: HeadInput,
  options?: FNormSphereFaceOptions,
): HeadResult {
  return marginSoftmaxLoss(input, fNormSphereFaceHead(options), { reduction: options?.reduction });
}

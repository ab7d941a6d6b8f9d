import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, ReductionOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { angularHead, scaleOption } from "./_head_options.ts";

/** Options of {@linkcode normFaceLoss}. */
export interface NormFaceOptions extends ReductionOptions {
  /** Scale s applied to every cosine. @default {30} */
  scale?: number;
}

/**
 * The head description of {@linkcode normFaceLoss}, for backends.
 *
 * @example
 * ```ts
 * import { normFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = normFaceHead({ scale: 16 });
 * assert.ok(head.logits === "angular" && head.radius.kind === "scale" && head.radius.scale === 16);
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function normFaceHead(options?: NormFaceOptions): HeadSpec {
  return angularHead("normFace", options, ["scale"], (o, where) => ({
    radius: { kind: "scale", scale: scaleOption(where, o.scale, 30) },
    margin: { kind: "none" },
  }));
}

/**
 * NormFace, the normalised softmax (Wang et al., "NormFace: L2 Hypersphere Embedding for Face
 * Verification", ACM MM 2017).
 *
 * z_ij = s·cos θ_ij = s·x̂_i·ŵ_j, no margin.
 *
 * Default s = 30 (opensphere); insightface uses 64 and pytorch-metric-learning 20 (its 1/T).
 *
 * @example
 * ```ts
 * import { matrix, normFaceLoss } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const { logits } = normFaceLoss(
 *   { features: matrix(1, 2, [3, 4]), weights: matrix(2, 2, [1, 0, 0, 2]), labels: [1] },
 *   { scale: 10 },
 * );
 * assert.deepEqual(Array.from(logits.data).map((z) => Math.round(z * 1e9) / 1e9), [6, 8]);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The scale and the reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function normFaceLoss(input: HeadInput, options?: NormFaceOptions): HeadResult {
  return marginSoftmaxLoss(input, normFaceHead(options), { reduction: options?.reduction });
}

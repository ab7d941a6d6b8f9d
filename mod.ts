/**
 * Reference implementations of the softmax family of losses used in face recognition and metric
 * learning, in pure TypeScript: softmax cross-entropy, NormFace, L-Softmax, SphereFace (A-Softmax)
 * and F-Norm SphereFace, CosFace (AM-Softmax), ArcFace, insightface's combined margin, and center
 * loss. Each returns the loss, the per-sample losses, the logits and analytic gradients, computed
 * in float64 and checked against PyTorch autograd.
 *
 * Every margin loss is one shared machine ({@linkcode marginSoftmaxLoss}) with one hook changed:
 * how the target cosine becomes the target logit. Each loss's `…Head` function returns that
 * description ({@linkcode HeadSpec}), which backends compute without knowing the loss.
 *
 * @example ArcFace on a batch of two samples
 * ```ts
 * import { arcFaceLoss, matrix } from "./mod.ts";
 * import assert from "node:assert";
 *
 * const features = matrix(2, 3, [0.9, 0.1, 0.2, -0.3, 1.2, 0.4]);
 * const weights = matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5, 0.5, 0.5]);
 * const result = arcFaceLoss({ features, weights, labels: [0, 1] }, { scale: 64, margin: 0.5 });
 *
 * assert.equal(result.losses.length, 2);
 * assert.equal(result.gradWeights.rows, 4);
 * assert.ok(Number.isFinite(result.loss));
 * ```
 *
 * @module
 */
export * from "./losses/matrix.ts";
export * from "./losses/types.ts";
export * from "./losses/head_spec.ts";
export * from "./losses/margin_softmax.ts";
export * from "./losses/softmax.ts";
export * from "./losses/normface.ts";
export * from "./losses/lsoftmax.ts";
export * from "./losses/sphereface.ts";
export * from "./losses/fnorm_sphereface.ts";
export * from "./losses/cosface.ts";
export * from "./losses/arcface.ts";
export * from "./losses/combined_margin.ts";
export * from "./losses/curricularface.ts";
export * from "./losses/adaface.ts";
export * from "./losses/subcenter_arcface.ts";
export * from "./losses/subcenter_cleaning.ts";
export * from "./losses/magface.ts";
export * from "./losses/adacos.ts";
export * from "./losses/elasticface.ts";
export * from "./losses/center.ts";
export * from "./losses/update_centers.ts";
export * from "./losses/lambda_schedule.ts";
export * from "./losses/catalog.ts";
export * from "./losses/boundaries.ts";
export * from "./engines/engine.ts";
export { type PreparedHead, prepareHead, type PrepareHeadOptions } from "./engines/prepare_head.ts";
export { ENGINE_NAMES, type EngineName, ENGINES } from "./engines/registry.ts";
export * from "./engines/head_loss.ts";
export {
  partialFc,
  partialFcClasses,
  partialFcInput,
  type PartialFcInputOptions,
  type PartialFcOptions,
  type PartialFcSampleOptions,
  partialFcSize,
  type PartialFcSpec,
} from "./losses/partial_fc.ts";
export {
  partialFcLoss,
  type PartialFcLossOptions,
  type PartialFcResult,
  type PartialFcRunOptions,
  type PreparedPartialFc,
  preparePartialFc,
} from "./engines/partial_fc.ts";

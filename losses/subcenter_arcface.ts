import type { SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { successorLoss } from "./_successor.ts";
import { reductionOf } from "./_successor_options.ts";
import { angleMarginOption, scaleOption } from "./_head_options.ts";
import { booleanOption, marginGradientOption, numberOption, optionsObject } from "./_validate.ts";

/** Options of {@linkcode subCenterArcFaceLoss}. */
export interface SubCenterArcFaceOptions extends MarginOptions {
  /** Scale s. @default {64} */
  scale?: number;
  /** Additive angular margin m in radians, in [0, π). @default {0.5} */
  margin?: number;
  /** K, sub-centers per class: the weights have C·K rows, row c·K + k for sub-center k of c. @default {3} */
  subCenters?: number;
  /** Apply the margin only where cos θ > 0, as ArcFace's `easyMargin`. @default {false} */
  easyMargin?: boolean;
}

const WHERE = "subCenterArcFaceLoss";
const KNOWN = [
  "scale",
  "margin",
  "subCenters",
  "easyMargin",
  "marginGradient",
  "reduction",
] as const;

/**
 * The head description of {@linkcode subCenterArcFaceLoss}; `prepareHead` computes it on the
 * reference engine, engine-wasm, engine-native and engine-webgpu (their kernels take each class's
 * largest sub-center cosine over the C·K rows, the host the target's in float64). Prepare it for
 * `classes` = C·K, the rows of W.
 *
 * @example
 * ```ts
 * import { subCenterArcFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = subCenterArcFaceHead({ subCenters: 2 });
 * assert.ok(head.successor.kind === "subCenter" && head.successor.subCenters === 2);
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function subCenterArcFaceHead(options?: SubCenterArcFaceOptions): SuccessorHeadSpec {
  const o = optionsObject(WHERE, options, KNOWN);
  return {
    name: "subCenterArcFace",
    logits: "angular",
    marginGradient: marginGradientOption(WHERE, o.marginGradient),
    successor: {
      kind: "subCenter",
      scale: scaleOption(WHERE, o.scale, 64),
      margin: angleMarginOption(WHERE, "margin", o.margin, 0.5),
      subCenters: numberOption(WHERE, "subCenters", o.subCenters, 3, {
        min: 1,
        integer: true,
        text: "an integer ≥ 1",
      }),
      fallback: booleanOption(WHERE, "easyMargin", o.easyMargin, false) ? "easy" : "insightface",
    },
  };
}

/**
 * Sub-center ArcFace (Deng et al., "Sub-center ArcFace: Boosting Face Recognition by Large-Scale
 * Noisy Web Faces", ECCV 2020; insightface recognition/subcenter_arcface, pytorch-metric-learning
 * SubCenterArcFaceLoss).
 *
 * The weights hold K sub-centers per class, row c·K + k for sub-center k of class c. Every class's
 * cosine is the largest of its K: c_ic = max_k x̂_i·ŵ_{cK+k}; ArcFace follows on those class
 * cosines: z_ij = s·c_ij for j ≠ y, z_iy = s·cos(θ_iy + m) while c_iy > cos(π − m), else
 * s·(c_iy − m·sin m) (the library's ArcFace fallback; the official MXNet code has none, PML has
 * this one), or with `easyMargin` the margin only where c_iy > 0. Each class's gradient goes to its
 * arg-max sub-center (the first of equal ones); the other rows get none from that sample.
 * `subCenterCleaning` is the paper's cleaning step. Defaults s = 64, m = 0.5, K = 3.
 *
 * @example Two classes with two sub-centers each
 * ```ts
 * import { arcFaceLoss, matrix, subCenterArcFaceLoss } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const features = matrix(1, 2, [1, 0.3]);
 * const weights = matrix(4, 2, [1, 0, -1, 0.2, 0, 1, 0, -1]);
 * const r = subCenterArcFaceLoss({ features, weights, labels: [0] }, { subCenters: 2 });
 * // the same as ArcFace on each class's closest sub-center (rows 0 and 2)
 * const a = arcFaceLoss({ features, weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0] });
 * assert.ok(Math.abs(r.loss - a.loss) < 1e-12);
 * assert.deepEqual(Array.from(r.gradWeights.data.slice(2, 4)), [0, 0]);
 * ```
 *
 * @param input Features (N×D), weights (C·K×D) and labels in [0, C); no bias.
 * @param options Scale, margin, sub-centers, easy margin, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, the N×C class logits and the gradients (∂W is C·K×D).
 */
export function subCenterArcFaceLoss(
  input: HeadInput,
  options?: SubCenterArcFaceOptions,
): HeadResult {
  const out = successorLoss(
    WHERE,
    input,
    subCenterArcFaceHead(options),
    reductionOf(WHERE, options),
  );
  const { state: _state, ...result } = out;
  return result;
}

import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { angleMarginOption, angularHead, scaleOption } from "./_head_options.ts";
import { booleanOption } from "./_validate.ts";

/** Options of {@linkcode arcFaceLoss}. */
export interface ArcFaceOptions extends MarginOptions {
  /** Scale s. @default {64} */
  scale?: number;
  /** Additive angular margin m in radians, in [0, π). @default {0.5} */
  margin?: number;
  /** Apply the margin only where cos θ > 0 (arcface-pytorch's `easy_margin`). @default {false} */
  easyMargin?: boolean;
}

/**
 * The head description of {@linkcode arcFaceLoss}, for backends.
 *
 * @example
 * ```ts
 * import { arcFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = arcFaceHead({ easyMargin: true });
 * assert.ok(head.logits === "angular" && head.margin.kind === "angular");
 * assert.equal(head.margin.fallback, "easy");
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function arcFaceHead(options?: ArcFaceOptions): HeadSpec {
  return angularHead(
    "arcFace",
    options,
    ["scale", "margin", "easyMargin", "marginGradient"],
    (o, where) => ({
      radius: { kind: "scale", scale: scaleOption(where, o.scale, 64) },
      margin: {
        kind: "angular",
        m1: 1,
        m2: angleMarginOption(where, "margin", o.margin, 0.5),
        m3: 0,
        fallback: booleanOption(where, "easyMargin", o.easyMargin, false) ? "easy" : "insightface",
      },
    }),
  );
}

/**
 * ArcFace, the additive angular margin loss (Deng et al., "ArcFace: Additive Angular Margin Loss for
 * Deep Face Recognition", CVPR 2019).
 *
 * z_ij = s·cos θ_ij for j ≠ y, and z_iy = s·cos(θ_iy + m) while cos θ_iy > cos(π − m), else
 * s·(cos θ_iy − m·sin m) (insightface's fallback, which keeps the target monotone past θ = π − m).
 * With `easyMargin` the margin applies only where cos θ_iy > 0 and the target is s·cos θ elsewhere.
 *
 * Defaults s = 64, m = 0.5 (insightface). The margin is in radians (pytorch-metric-learning takes
 * degrees). `marginGradient: "detached"` reproduces insightface's arcface_torch, where ∂z/∂c = s.
 *
 * @example
 * ```ts
 * import { arcFaceLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const { logits } = arcFaceLoss(
 *   { features: matrix(1, 2, [1, 1]), weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0] },
 *   { scale: 10, margin: Math.PI / 12 },
 * );
 * assert.ok(Math.abs(logits.data[0] - 10 * Math.cos(Math.PI / 4 + Math.PI / 12)) < 1e-12);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The scale, the margin, easy margin, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function arcFaceLoss(input: HeadInput, options?: ArcFaceOptions): HeadResult {
  return marginSoftmaxLoss(input, arcFaceHead(options), { reduction: options?.reduction });
}

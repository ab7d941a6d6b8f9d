import type { HeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { angleMarginOption, angularHead, scaleOption } from "./_head_options.ts";
import { numberOption } from "./_validate.ts";

/** Options of {@linkcode combinedMarginLoss}. */
export interface CombinedMarginOptions extends MarginOptions {
  /** Scale s. @default {64} */
  scale?: number;
  /** Multiplicative angular margin m1 > 0 (SphereFace-like). @default {1} */
  m1?: number;
  /** Additive angular margin m2 in radians, in [0, π) (ArcFace-like). @default {0.5} */
  m2?: number;
  /** Additive cosine margin m3, in [0, 1] (CosFace-like). @default {0} */
  m3?: number;
}

/**
 * The head description of {@linkcode combinedMarginLoss}, for backends.
 *
 * @example
 * ```ts
 * import { combinedMarginHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = combinedMarginHead({ m1: 0.9, m2: 0.4, m3: 0.15 });
 * assert.ok(head.logits === "angular" && head.margin.kind === "angular");
 * assert.equal(head.margin.fallback, "none");
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function combinedMarginHead(options?: CombinedMarginOptions): HeadSpec {
  return angularHead(
    "combinedMargin",
    options,
    ["scale", "m1", "m2", "m3", "marginGradient"],
    (o, where) => ({
      radius: { kind: "scale", scale: scaleOption(where, o.scale, 64) },
      margin: {
        kind: "angular",
        m1: numberOption(where, "m1", o.m1, 1, {
          min: 0,
          minOpen: true,
          text: "a finite number > 0",
        }),
        m2: angleMarginOption(where, "m2", o.m2, 0.5),
        m3: numberOption(where, "m3", o.m3, 0, { min: 0, max: 1, text: "in [0, 1]" }),
        fallback: "none",
      },
    }),
  );
}

/**
 * The combined margin of insightface (Deng et al., ArcFace, CVPR 2019, section 3.3; insightface
 * loss type 5).
 *
 * z_ij = s·cos θ_ij for j ≠ y, and z_iy = s·(cos(m1·θ_iy + m2) − m3).
 *
 * m1 = 1, m2 = 0.5, m3 = 0 is ArcFace without its fallback; m1 = 1, m2 = 0 is CosFace. As in
 * insightface there is no guard where m1·θ + m2 passes π.
 *
 * @example
 * ```ts
 * import { combinedMarginLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const { logits } = combinedMarginLoss(
 *   { features: matrix(1, 2, [1, 0]), weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0] },
 *   { scale: 10, m1: 1, m2: 0, m3: 0.2 },
 * );
 * assert.ok(Math.abs(logits.data[0] - 8) < 1e-12);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The scale, m1, m2, m3, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function combinedMarginLoss(input: HeadInput, options?: CombinedMarginOptions): HeadResult {
  return marginSoftmaxLoss(input, combinedMarginHead(options), { reduction: options?.reduction });
}

import type { SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, ReductionOptions } from "./types.ts";
import { successorLoss } from "./_successor.ts";
import { reductionOf } from "./_successor_options.ts";
import { scaleOption } from "./_head_options.ts";
import { booleanOption, numberOption, optionsObject } from "./_validate.ts";

/** Options of {@linkcode magFaceLoss}. */
export interface MagFaceOptions extends ReductionOptions {
  /** Scale s. @default {64} */
  scale?: number;
  /** l_m, the margin at the lower norm, radians in [0, π). @default {0.45} */
  lowerMargin?: number;
  /** u_m, the margin at the upper norm, radians in [l_m, π). @default {0.8} */
  upperMargin?: number;
  /** l_a, the lower clip of the feature norm, > 0. @default {10} */
  lowerNorm?: number;
  /** u_a, the upper clip of the feature norm, > l_a. @default {110} */
  upperNorm?: number;
  /** λ_g, the weight of the norm regulariser, ≥ 0 (run/run.sh's 35; trainer.py's default is 20). @default {35} */
  regularization?: number;
  /** The margin only where cos θ > 0 (MagLinear's default); false: ArcFace's fallback. @default {true} */
  easyMargin?: boolean;
}

const WHERE = "magFaceLoss";
const KNOWN = [
  "scale",
  "lowerMargin",
  "upperMargin",
  "lowerNorm",
  "upperNorm",
  "regularization",
  "easyMargin",
  "reduction",
] as const;

/**
 * The head description of {@linkcode magFaceLoss}; `prepareHead` runs it on the reference,
 * engine-wasm, engine-native and engine-webgpu.
 *
 * @example
 * ```ts
 * import { magFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = magFaceHead({ regularization: 20 });
 * assert.ok(head.successor.kind === "magFace" && head.successor.fallback === "easy");
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function magFaceHead(options?: MagFaceOptions): SuccessorHeadSpec {
  const o = optionsObject(WHERE, options, KNOWN);
  const angle = (name: string, value: unknown, fallback: number, min: number) =>
    numberOption(WHERE, name, value, fallback, {
      min,
      max: Math.PI,
      maxOpen: true,
      text: `an angle in radians in [${min === 0 ? "0" : "lowerMargin"}, π)`,
    });
  const lowerMargin = angle("lowerMargin", o.lowerMargin, 0.45, 0);
  const upperMargin = angle("upperMargin", o.upperMargin, 0.8, lowerMargin);
  const lowerNorm = numberOption(WHERE, "lowerNorm", o.lowerNorm, 10, {
    min: 0,
    minOpen: true,
    text: "a finite number > 0",
  });
  const upperNorm = numberOption(WHERE, "upperNorm", o.upperNorm, 110, {
    min: lowerNorm,
    minOpen: true,
    text: "a finite number > lowerNorm",
  });
  return {
    name: "magFace",
    logits: "angular",
    marginGradient: "exact",
    successor: {
      kind: "magFace",
      scale: scaleOption(WHERE, o.scale, 64),
      lowerMargin,
      upperMargin,
      lowerNorm,
      upperNorm,
      regularization: numberOption(WHERE, "regularization", o.regularization, 35, {
        min: 0,
        text: "a finite number ≥ 0",
      }),
      fallback: booleanOption(WHERE, "easyMargin", o.easyMargin, true) ? "easy" : "insightface",
    },
  };
}

/**
 * MagFace, magnitude-aware margin (Meng et al., "MagFace: A Universal Representation for Face
 * Recognition and Quality Assessment", CVPR 2021; IrvingMeng/MagFace models/magface.py).
 *
 * With a_i = clip(‖x_i‖, l_a, u_a) and m_i = (u_m − l_m)/(u_a − l_a)·(a_i − l_a) + l_m:
 * z_ij = s·c_ij, z_iy = s·cos(θ_iy + m_i) where c_iy > 0 (easy margin, MagLinear's default) and
 * s·c_iy elsewhere; with `easyMargin: false`, s·cos(θ + m_i) while c_iy > cos(π − m_i), else
 * s·(c_iy − m_i·sin m_i). Per sample, loss_i = CE_i + λ_g·(a_i/u_a² + 1/a_i); the mean of these is
 * the official CE + λ_g·loss_g. As in the official code the gradient flows through ‖x_i‖ (the
 * margin and the regulariser) where l_a ≤ ‖x_i‖ ≤ u_a, and not where the clip binds.
 *
 * Defaults s = 64, l_m = 0.45, u_m = 0.8, l_a = 10, u_a = 110, λ_g = 35 (run/run.sh, the script
 * the released models were trained with; trainer.py's argparse default is 20).
 *
 * @example
 * ```ts
 * import { magFaceLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(1, 2, [30, 40]), // ‖x‖ = 50: m = 0.45 + 0.35·0.4 = 0.59
 *   weights: matrix(2, 2, [1, 0, 0, 1]),
 *   labels: [0],
 * };
 * const { logits, losses } = magFaceLoss(input, { regularization: 0 });
 * assert.ok(Math.abs(logits.data[0] - 64 * Math.cos(Math.acos(0.6) + 0.59)) < 1e-9);
 * assert.ok(losses[0] > 0);
 * ```
 *
 * @param input Features (N×D, not normalised: their norms matter), weights (C×D) and labels.
 * @param options Scale, margins, norm bounds, λ_g, easy margin and the reduction.
 * @returns The loss (cross-entropy plus the regulariser), per-sample losses, logits and gradients.
 */
export function magFaceLoss(input: HeadInput, options?: MagFaceOptions): HeadResult {
  const out = successorLoss(WHERE, input, magFaceHead(options), reductionOf(WHERE, options));
  const { state: _state, ...result } = out;
  return result;
}

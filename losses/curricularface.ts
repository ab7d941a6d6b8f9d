import type { SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { successorLoss } from "./_successor.ts";
import { RATE, reductionOf, stateOption } from "./_successor_options.ts";
import { angleMarginOption, scaleOption } from "./_head_options.ts";
import { marginGradientOption, numberOption, optionsObject } from "./_validate.ts";

/** The running statistic of CurricularFace: t, an EMA of the batches' mean target cosine. */
export interface CurricularFaceState {
  /** t in [−1, 1]; 0 before the first batch. */
  t: number;
}

/** Options of {@linkcode curricularFaceLoss}. */
export interface CurricularFaceOptions extends MarginOptions {
  /** Scale s. @default {64} */
  scale?: number;
  /** Additive angular margin m in radians, in [0, π). @default {0.5} */
  margin?: number;
  /** The state before this batch. @default {{ t: 0 }} */
  state?: CurricularFaceState;
  /**
   * The EMA rate of t: t ← alpha·mean(cos θ_y) + (1 − alpha)·t. 0 keeps `state.t` as given (for
   * evaluation). @default {0.01}
   */
  alpha?: number;
}

/** What {@linkcode curricularFaceLoss} returns: a head result and the state after this batch. */
export interface CurricularFaceResult extends HeadResult {
  /** The state after this batch, to pass as `options.state` with the next one. */
  state: CurricularFaceState;
}

const WHERE = "curricularFaceLoss";
const KNOWN = ["scale", "margin", "state", "alpha", "marginGradient", "reduction"] as const;

/**
 * CurricularFace's state before the first batch: t = 0 (HuangYG123/CurricularFace registers a
 * zero buffer).
 *
 * @example
 * ```ts
 * import { curricularFaceInitialState } from "../mod.ts";
 * import assert from "node:assert";
 *
 * assert.deepEqual(curricularFaceInitialState(), { t: 0 });
 * ```
 *
 * @returns `{ t: 0 }`.
 */
export function curricularFaceInitialState(): CurricularFaceState {
  return { t: 0 };
}

/**
 * The head description of {@linkcode curricularFaceLoss} for one step (its t is `options.state`'s);
 * `prepareHead` computes it on the reference engine, engine-wasm, engine-native and engine-webgpu
 * (their kernels change the hard negatives, above thresholds and with t from the host).
 *
 * @example
 * ```ts
 * import { curricularFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = curricularFaceHead({ state: { t: 0.2 } });
 * assert.ok(head.successor.kind === "curricular" && head.successor.t === 0.2);
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function curricularFaceHead(options?: CurricularFaceOptions): SuccessorHeadSpec {
  const o = optionsObject(WHERE, options, KNOWN);
  const state = stateOption(WHERE, o.state, curricularFaceInitialState(), {
    t: { min: -1, max: 1, text: "a finite number in [−1, 1]" },
  });
  return {
    name: "curricularFace",
    logits: "angular",
    marginGradient: marginGradientOption(WHERE, o.marginGradient),
    successor: {
      kind: "curricular",
      scale: scaleOption(WHERE, o.scale, 64),
      margin: angleMarginOption(WHERE, "margin", o.margin, 0.5),
      t: state.t,
      alpha: numberOption(WHERE, "alpha", o.alpha, 0.01, RATE),
    },
  };
}

/**
 * CurricularFace, adaptive curriculum learning loss (Huang et al., "CurricularFace: Adaptive
 * Curriculum Learning Loss for Deep Face Recognition", CVPR 2020; HuangYG123/CurricularFace
 * head/metrics.py).
 *
 * Per batch, before use: t ← α·mean_i(cos θ_iy) + (1 − α)·t (α = 0.01, t₀ = 0, no gradient). Then
 * z_iy = s·cos(θ_iy + m) while cos θ_iy > cos(π − m), else s·(cos θ_iy − m·sin m) (ArcFace's
 * fallback); a non-target is hard when cos θ_ij > cos(θ_iy + m) (the plain formula, not the
 * fallback, as the official code compares) and becomes z_ij = s·cos θ_ij·(t + cos θ_ij); the others
 * stay z_ij = s·cos θ_ij. The gradient of a hard negative is s·(t + 2·cos θ_ij), t held constant.
 *
 * The state is pure data: `options.state` in, `result.state` out (t after this batch, the value
 * this batch used). Defaults s = 64, m = 0.5. `marginGradient: "detached"` holds the target's
 * margin constant (∂z_y/∂c = s); the hard negatives' modulation keeps its gradient.
 *
 * @example Two steps, the state passed along
 * ```ts
 * import { curricularFaceLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 2, [1, 0.2, 0.1, 1]),
 *   weights: matrix(3, 2, [1, 0, 0, 1, -1, 0]),
 *   labels: [0, 1],
 * };
 * const first = curricularFaceLoss(input);
 * const second = curricularFaceLoss(input, { state: first.state });
 * assert.ok(first.state.t > 0 && second.state.t > first.state.t);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options Scale, margin, the state, its EMA rate, the margin gradient and the reduction.
 * @returns The loss, per-sample losses, logits, gradients and the state after this batch.
 */
export function curricularFaceLoss(
  input: HeadInput,
  options?: CurricularFaceOptions,
): CurricularFaceResult {
  const head = curricularFaceHead(options);
  const out = successorLoss(WHERE, input, head, reductionOf(WHERE, options));
  return { ...out, state: { t: out.state.t } };
}

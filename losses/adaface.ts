import type { SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, ReductionOptions } from "./types.ts";
import { successorLoss } from "./_successor.ts";
import { RATE, reductionOf, stateOption } from "./_successor_options.ts";
import { scaleOption } from "./_head_options.ts";
import { numberOption, optionsObject } from "./_validate.ts";

/** AdaFace's running statistics of the (clipped) feature norms. */
export interface AdaFaceState {
  /** μ, the EMA of the batches' mean norm; 20 before the first batch. */
  mean: number;
  /** σ, the EMA of the batches' (unbiased) norm std; 100 before the first batch. */
  std: number;
}

/** Options of {@linkcode adaFaceLoss}. */
export interface AdaFaceOptions extends ReductionOptions {
  /** Scale s. @default {64} */
  scale?: number;
  /** Margin m, in [0, 1]. @default {0.4} */
  margin?: number;
  /** h, how far the norm's z-score moves the margin, ≥ 0. @default {0.333} */
  h?: number;
  /**
   * The EMA rate of the norm statistics (head.py's `t_alpha`; the run scripts' 0.01, the class's
   * default is 1). 0 keeps `state` as given. @default {0.01}
   */
  alpha?: number;
  /** The statistics before this batch. @default {{ mean: 20, std: 100 }} */
  state?: AdaFaceState;
}

/** What {@linkcode adaFaceLoss} returns: a head result and the statistics after this batch. */
export interface AdaFaceResult extends HeadResult {
  /** The statistics after this batch (the ones this batch used), for the next call. */
  state: AdaFaceState;
}

const WHERE = "adaFaceLoss";
const KNOWN = ["scale", "margin", "h", "alpha", "state", "reduction"] as const;

/**
 * AdaFace's statistics before the first batch: μ = 20, σ = 100 (mk-minchul/AdaFace head.py's
 * buffers).
 *
 * @example
 * ```ts
 * import { adaFaceInitialState } from "../mod.ts";
 * import assert from "node:assert";
 *
 * assert.deepEqual(adaFaceInitialState(), { mean: 20, std: 100 });
 * ```
 *
 * @returns `{ mean: 20, std: 100 }`.
 */
export function adaFaceInitialState(): AdaFaceState {
  return { mean: 20, std: 100 };
}

/**
 * The head description of {@linkcode adaFaceLoss} for one step (with `options.state`'s
 * statistics); `prepareHead` runs it on the reference engine (the next state in `result.state`),
 * and the float32 engines refuse it, naming the hook.
 *
 * @example
 * ```ts
 * import { adaFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = adaFaceHead({ h: 0.5 });
 * assert.ok(head.successor.kind === "adaFace" && head.successor.mean === 20);
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function adaFaceHead(options?: AdaFaceOptions): SuccessorHeadSpec {
  const o = optionsObject(WHERE, options, KNOWN);
  const state = stateOption(WHERE, o.state, adaFaceInitialState(), {
    mean: { min: 0, text: "a finite number ≥ 0" },
    std: { min: 0, text: "a finite number ≥ 0" },
  });
  return {
    name: "adaFace",
    logits: "angular",
    marginGradient: "exact",
    successor: {
      kind: "adaFace",
      scale: scaleOption(WHERE, o.scale, 64),
      margin: numberOption(WHERE, "margin", o.margin, 0.4, {
        min: 0,
        max: 1,
        text: "a finite number in [0, 1]",
      }),
      h: numberOption(WHERE, "h", o.h, 0.333, { min: 0, text: "a finite number ≥ 0" }),
      alpha: numberOption(WHERE, "alpha", o.alpha, 0.01, RATE),
      mean: state.mean,
      std: state.std,
    },
  };
}

/**
 * AdaFace, quality-adaptive margin (Kim et al., "AdaFace: Quality Adaptive Margin for Face
 * Recognition", CVPR 2022; mk-minchul/AdaFace head.py).
 *
 * With n_i = clip(‖x_i‖, 0.001, 100) (no gradient), before use: μ ← α·mean(n) + (1 − α)·μ and
 * σ ← α·std(n) + (1 − α)·σ (unbiased std, α = 0.01, μ₀ = 20, σ₀ = 100); then
 * z_i = clip(h·(n_i − μ)/(σ + ε), −1, 1) and, with every cosine clamped to [−1 + ε, 1 − ε] (ε = 1e-3):
 * z_iy = s·(cos(clip(θ_iy − m·z_i, ε, π − ε)) − m − m·z_i), z_ij = s·c_ij. The gradient flows
 * through the cosines only (x̂ = x/‖x‖): the norms, the statistics and z_i are constants, and the
 * clamps and clips give zero slope where they bind.
 *
 * A batch of one has no unbiased std (PyTorch gives NaN and poisons σ): there σ keeps its previous
 * value and only μ moves. Defaults m = 0.4, h = 0.333, s = 64 (head.py), α = 0.01 (the run scripts).
 *
 * @example Two steps, the statistics passed along
 * ```ts
 * import { adaFaceLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 2, [30, 4, 1, 12]),
 *   weights: matrix(3, 2, [1, 0, 0, 1, -1, 0]),
 *   labels: [0, 1],
 * };
 * const first = adaFaceLoss(input);
 * const second = adaFaceLoss(input, { state: first.state });
 * assert.ok(Math.abs(first.state.mean - (0.01 * (Math.hypot(30, 4) + Math.hypot(1, 12)) / 2 + 0.99 * 20)) < 1e-12);
 * assert.ok(second.state.std < first.state.std);
 * ```
 *
 * @param input Features (N×D, not normalised: their norms are the quality), weights (C×D) and
 *   labels; no bias.
 * @param options Scale, margin, h, the EMA rate, the state and the reduction.
 * @returns The loss, per-sample losses, logits, gradients and the statistics after this batch.
 */
export function adaFaceLoss(input: HeadInput, options?: AdaFaceOptions): AdaFaceResult {
  const out = successorLoss(WHERE, input, adaFaceHead(options), reductionOf(WHERE, options));
  return { ...out, state: { mean: out.state.mean, std: out.state.std } };
}

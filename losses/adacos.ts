import type { SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, ReductionOptions } from "./types.ts";
import { successorLoss } from "./_successor.ts";
import { reductionOf, stateOption } from "./_successor_options.ts";
import { booleanOption, optionsObject } from "./_validate.ts";

/** AdaCos's running statistic: the scale s, recomputed from every batch. */
export interface AdaCosState {
  /** s > 0; √2·ln(C − 1) before the first batch ({@linkcode adaCosInitialState}). */
  scale: number;
}

/** Options of {@linkcode adaCosLoss}. */
export interface AdaCosOptions extends ReductionOptions {
  /**
   * The scale before this batch. Absent: √2·ln(C − 1) from the weights' C (at least 3 classes: at
   * C = 2 it is 0, so a two-class head must give it). @default {adaCosInitialState(C)}
   */
  state?: AdaCosState;
  /**
   * Recompute the scale from this batch before use (the official behaviour). false keeps
   * `state.scale` as given, for evaluation or a frozen scale. @default {true}
   */
  updateScale?: boolean;
}

/** What {@linkcode adaCosLoss} returns: a head result and the scale after this batch. */
export interface AdaCosResult extends HeadResult {
  /** The scale after this batch (the one this batch used), for the next call. */
  state: AdaCosState;
}

const WHERE = "adaCosLoss";
const KNOWN = ["state", "updateScale", "reduction"] as const;

/**
 * AdaCos's scale before the first batch: s₀ = √2·ln(C − 1) (the paper's fixed scale; FaceX-Zoo
 * head/AdaCos.py's initial value).
 *
 * @example
 * ```ts
 * import { adaCosInitialState } from "../mod.ts";
 * import assert from "node:assert";
 *
 * assert.equal(adaCosInitialState(11).scale, Math.SQRT2 * Math.log(10));
 * ```
 *
 * @param classes C, the number of classes: an integer ≥ 3 (s₀ is 0 at C = 2).
 * @returns `{ scale: √2·ln(C − 1) }`.
 */
export function adaCosInitialState(classes: number): AdaCosState {
  if (typeof classes !== "number" || !Number.isInteger(classes) || classes < 3) {
    throw new RangeError(
      `adaCosInitialState: classes must be an integer ≥ 3 (√2·ln(C − 1) is 0 at C = 2), got ${
        String(classes)
      }`,
    );
  }
  return { scale: Math.SQRT2 * Math.log(classes - 1) };
}

/**
 * The head description of {@linkcode adaCosLoss} for one step (its scale is `options.state`'s,
 * `null` for √2·ln(C − 1) from the batch's C); `prepareHead` computes it on every engine (the
 * float32 ones as two runs of the scale-only head: the first at the old scale for B, the second at
 * the new one).
 *
 * @example
 * ```ts
 * import { adaCosHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = adaCosHead({ state: { scale: 12 } });
 * assert.ok(head.successor.kind === "adaCos" && head.successor.scale === 12);
 * assert.ok(adaCosHead().successor.kind === "adaCos");
 * ```
 *
 * @param options The loss's options.
 * @returns The head description.
 */
export function adaCosHead(options?: AdaCosOptions): SuccessorHeadSpec {
  const o = optionsObject(WHERE, options, KNOWN);
  const state = o.state === undefined ? null : stateOption(WHERE, o.state, { scale: 1 }, {
    scale: { min: 0, minOpen: true, text: "a finite number > 0" },
  });
  return {
    name: "adaCos",
    logits: "angular",
    marginGradient: "exact",
    successor: {
      kind: "adaCos",
      scale: state === null ? null : state.scale,
      updateScale: booleanOption(WHERE, "updateScale", o.updateScale, true),
    },
  };
}

/**
 * AdaCos, adaptively scaled cosine logits (Zhang et al., "AdaCos: Adaptively Scaling Cosine Logits
 * for Effectively Learning Deep Face Representations", CVPR 2019; FaceX-Zoo head/AdaCos.py after
 * 4uiiurz1/pytorch-adacos).
 *
 * z_ij = s·cos θ_ij for every class (no margin), cos θ_ij = x̂_i·ŵ_j. Per batch, under no gradient
 * and with the old scale s (s₀ = √2·ln(C − 1)):
 * B = (1/N)·Σ_i Σ_{j≠y_i} exp(s·cos θ_ij), θ_med = the median of the target angles
 * θ_iy = acos(clamp(cos θ_iy, ±(1 − 1e-7))) (for an even N the lower of the two middle values, as
 * `torch.median`), and s ← ln B / cos(min(π/4, θ_med)); the loss of this batch uses the new s.
 * The gradient holds s constant (it is computed under `torch.no_grad` in the official code).
 *
 * The state is pure data: `options.state` in, `result.state` out. Choices where the official code
 * is silent or unsafe: the features are normalised (the paper and 4uiiurz1's code; FaceX-Zoo
 * takes them as the backbone gives them); where ln B ≤ 0 or the new value is not finite (few
 * classes whose non-target cosines are mostly negative; C = 1) the old scale is kept instead of a
 * scale ≤ 0; ln B is summed as a log-sum-exp, so no exp overflows; at C = 2 without a given state
 * (s₀ = 0) the loss throws. `updateScale: false` freezes s at the given (or initial) value.
 *
 * @example Two steps, the scale passed along
 * ```ts
 * import { adaCosLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 2, [1, 0.2, 0.1, 1]),
 *   weights: matrix(4, 2, [1, 0, 0, 1, -1, 0, 0.6, 0.8]),
 *   labels: [0, 1],
 * };
 * const first = adaCosLoss(input); // from s₀ = √2·ln 3
 * const second = adaCosLoss(input, { state: first.state });
 * assert.ok(first.state.scale > 0 && second.state.scale > 0);
 * const frozen = adaCosLoss(input, { state: { scale: 8 }, updateScale: false });
 * assert.equal(frozen.state.scale, 8);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options The state, whether to update it, and the reduction.
 * @returns The loss, per-sample losses, logits, gradients and the scale after this batch.
 */
export function adaCosLoss(input: HeadInput, options?: AdaCosOptions): AdaCosResult {
  const out = successorLoss(WHERE, input, adaCosHead(options), reductionOf(WHERE, options));
  return { ...out, state: { scale: out.state.scale } };
}

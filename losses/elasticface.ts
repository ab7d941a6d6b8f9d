import type { SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginOptions } from "./types.ts";
import { successorLoss } from "./_successor.ts";
import { reductionOf } from "./_successor_options.ts";
import { scaleOption } from "./_head_options.ts";
import { booleanOption, marginGradientOption, numberOption, optionsObject } from "./_validate.ts";
import { isSeed, seededNormals } from "./_seeded_random.ts";

/** ElasticFace's two margins: additive angular (ElasticArcFace) or additive cosine (ElasticCosFace). */
export type ElasticVariant = "arc" | "cos";

/** Options of {@linkcode elasticFaceLoss}. */
export interface ElasticFaceOptions extends MarginOptions {
  /** "arc": z_y = s·cos(θ_y + m_i); "cos": z_y = s·(cos θ_y − m_i). @default {"arc"} */
  variant?: ElasticVariant;
  /** Scale s. @default {64} */
  scale?: number;
  /**
   * Required: the margin of each sample (N finite numbers, radians for "arc"), as the official
   * code draws them from N(m, σ) every step; {@linkcode elasticFaceMargins} draws them from a seed.
   */
  margins?: ArrayLike<number>;
  /**
   * ElasticFace+: reorder the margins against the target cosines as the official code does (see
   * {@linkcode elasticFaceLoss}). @default {false}
   */
  plus?: boolean;
}

/** What {@linkcode elasticFaceLoss} returns: a head result and the margins as applied. */
export interface ElasticFaceResult extends HeadResult {
  /** The margin each sample got (after the "+" reordering; else a copy of `options.margins`). */
  margins: Float64Array;
}

/** Options of {@linkcode elasticFaceMargins}. */
export interface ElasticFaceMarginOptions {
  /** Whose default mean: 0.5 for "arc", 0.35 for "cos". @default {"arc"} */
  variant?: ElasticVariant;
  /** The mean m of the normal distribution. @default {0.5 (arc) or 0.35 (cos)} */
  mean?: number;
  /** Its standard deviation σ, ≥ 0 (the official configs' 0.05; the classes' default is 0.0125). @default {0.05} */
  std?: number;
  /** Required: an integer in [0, 2³²); draw each step's margins with a new seed. */
  seed: number;
}

const WHERE = "elasticFaceLoss";
const KNOWN = ["variant", "scale", "margins", "plus", "marginGradient", "reduction"] as const;
const DEFAULT_MEAN: Record<ElasticVariant, number> = { arc: 0.5, cos: 0.35 };

function variantOption(where: string, value: unknown): ElasticVariant {
  if (value === undefined) return "arc";
  if (value !== "arc" && value !== "cos") {
    throw new RangeError(
      `${where}: options.variant must be one of "arc", "cos", got ${
        typeof value === "string" ? JSON.stringify(value) : String(value)
      }`,
    );
  }
  return value;
}

function marginsOption(value: unknown): number[] {
  if (value === undefined) {
    throw new TypeError(
      `${WHERE}: options.margins is required: one margin per sample (drawn by ` +
        `elasticFaceMargins(N, { variant, seed }) or your own N(m, σ))`,
    );
  }
  const list = value as ArrayLike<unknown>;
  if (
    value === null || typeof value !== "object" || typeof list.length !== "number" ||
    !Number.isInteger(list.length)
  ) {
    throw new TypeError(
      `${WHERE}: options.margins must be an array of finite numbers, one per sample, got ${
        value === null ? "null" : typeof value
      }`,
    );
  }
  const out: number[] = [];
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(
        `${WHERE}: options.margins must be finite numbers, got ${String(v)} at ${i}`,
      );
    }
    out.push(v);
  }
  return out;
}

/**
 * Draws ElasticFace's per-sample margins m_i ~ N(mean, std²) from a seed, reproducibly (the
 * official code calls `torch.normal` every step). The generator is xoshiro128** seeded by SplitMix32,
 * with Box–Muller normals, the same numbers on every platform for the same seed (the algorithm is
 * spelled out in losses/_seeded_random.ts). The margins are not clipped, as in the official code.
 *
 * @example One step's margins for a batch of 4
 * ```ts
 * import { elasticFaceMargins } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const margins = elasticFaceMargins(4, { variant: "cos", seed: 7 });
 * assert.equal(margins.length, 4);
 * assert.deepEqual(margins, elasticFaceMargins(4, { variant: "cos", seed: 7 }));
 * assert.ok(margins.every((m) => Math.abs(m - 0.35) < 0.35));
 * ```
 *
 * @param samples N, how many margins: an integer ≥ 1.
 * @param options The variant (for the default mean), mean, std and the seed.
 * @returns N margins.
 */
export function elasticFaceMargins(
  samples: number,
  options: ElasticFaceMarginOptions,
): Float64Array {
  const where = "elasticFaceMargins";
  if (typeof samples !== "number" || !Number.isInteger(samples) || samples < 1) {
    throw new RangeError(`${where}: samples must be an integer ≥ 1, got ${String(samples)}`);
  }
  const o = optionsObject(where, options, ["variant", "mean", "std", "seed"]);
  if (!isSeed(o.seed)) {
    throw new RangeError(
      `${where}: options.seed must be an integer in [0, 2³²) (required: a new one each step), got ${
        String(o.seed)
      }`,
    );
  }
  const variant = variantOption(where, o.variant);
  const mean = numberOption(where, "mean", o.mean, DEFAULT_MEAN[variant], {
    text: "a finite number",
  });
  const std = numberOption(where, "std", o.std, 0.05, { min: 0, text: "a finite number ≥ 0" });
  return seededNormals(o.seed, samples).map((z) => mean + std * z);
}

/**
 * The head description of {@linkcode elasticFaceLoss} for one step (with this step's margins);
 * `prepareHead` runs it on the reference, engine-wasm, engine-native and engine-webgpu, the
 * margins as applied in `result.margins`.
 *
 * @example
 * ```ts
 * import { elasticFaceHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const head = elasticFaceHead({ variant: "cos", margins: [0.3, 0.4] });
 * assert.ok(head.successor.kind === "elastic" && head.successor.variant === "cos");
 * ```
 *
 * @param options The loss's options (`margins` required).
 * @returns The head description.
 */
export function elasticFaceHead(options?: ElasticFaceOptions): SuccessorHeadSpec {
  const o = optionsObject(WHERE, options, KNOWN);
  return {
    name: "elasticFace",
    logits: "angular",
    marginGradient: marginGradientOption(WHERE, o.marginGradient),
    successor: {
      kind: "elastic",
      variant: variantOption(WHERE, o.variant),
      scale: scaleOption(WHERE, o.scale, 64),
      margins: marginsOption(o.margins),
      plus: booleanOption(WHERE, "plus", o.plus, false),
    },
  };
}

/**
 * ElasticFace, elastic margin loss (Boutros et al., "ElasticFace: Elastic Margin Loss for Deep Face
 * Recognition", CVPR Workshops 2022; fdbtrs/ElasticFace utils/losses.py ElasticArcFace,
 * ElasticCosFace and their `plus` variants).
 *
 * Each sample i has its own margin m_i (official: m_i ~ N(m, σ) drawn every step, m = 0.5 for arc,
 * 0.35 for cos, σ = 0.05 in config.py; here an explicit input, see {@linkcode elasticFaceMargins}).
 * z_ij = s·cos θ_ij for j ≠ y_i; "arc": z_iy = s·cos(θ_iy + m_i) with no fallback (past θ + m = π
 * the target turns back up, as in the official code); "cos": z_iy = s·(cos θ_iy − m_i). Cosines are
 * clamped to [−1, 1]; at |cos θ| = 1 the arc slope uses sin θ ≥ 1e-8 (the official acos gives NaN).
 * `marginGradient: "detached"` holds the arc margin constant (∂z_y/∂c = s); it changes nothing for
 * "cos", whose slope is s either way.
 *
 * `plus` (ElasticFace+): the official code sorts the target cosines descending (order = argsort) and
 * the margins ascending, then gives sample i the margin sorted[order[i]], a gather by the argsort
 * rather than a scatter by rank. That equals "the k-th most similar sample gets the k-th smallest
 * margin" only when the argsort is its own inverse (always for N ≤ 2); otherwise it is a different
 * permutation, reproduced here as written (ties in the target cosine keep the sample order;
 * `torch.sort` leaves them unspecified). The margins as applied are `result.margins`. The official
 * code also skips samples labelled −1; here every label must be a class.
 *
 * @example ElasticArcFace on a batch of two, the margins drawn from a seed
 * ```ts
 * import { elasticFaceLoss, elasticFaceMargins, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 2, [1, 0.2, 0.1, 1]),
 *   weights: matrix(3, 2, [1, 0, 0, 1, -1, 0]),
 *   labels: [0, 1],
 * };
 * const margins = elasticFaceMargins(2, { variant: "arc", seed: 1 });
 * const r = elasticFaceLoss(input, { variant: "arc", margins });
 * assert.deepEqual(r.margins, margins);
 * const plus = elasticFaceLoss(input, { variant: "cos", margins: [0.3, 0.4], plus: true });
 * assert.deepEqual(Array.from(plus.margins), [0.4, 0.3]);
 * ```
 *
 * @param input Features (N×D), weights (C×D) and labels; no bias.
 * @param options Variant, scale, the per-sample margins (required), plus, the margin gradient and the
 *   reduction.
 * @returns The loss, per-sample losses, logits, gradients and the margins as applied.
 */
export function elasticFaceLoss(input: HeadInput, options?: ElasticFaceOptions): ElasticFaceResult {
  const out = successorLoss(WHERE, input, elasticFaceHead(options), reductionOf(WHERE, options));
  return { ...out, margins: out.margins! };
}

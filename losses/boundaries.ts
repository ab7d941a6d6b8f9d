import type { HeadSpec, SuccessorHeadSpec, SuccessorHook } from "./head_spec.ts";
import { targetFunction } from "./target.ts";
import { numberOption, optionsObject } from "./_validate.ts";
import { checkSuccessorHead, isSuccessorHead } from "./successor_head.ts";
import { ADAFACE_EPS, ADAFACE_NORM_CLIP } from "./_successor.ts";

/** Options of {@linkcode decisionBoundaries}. */
export interface BoundaryOptions {
  /** Points per curve. @default {181} */
  samples?: number;
  /** ‖W₁‖ and ‖W₂‖ (linear heads and L-Softmax's normProduct radius). @default {[1, 1]} */
  weightNorms?: readonly [number, number];
  /**
   * ‖x‖, where it does not cancel: a linear head with a bias, MagFace (its margin m(‖x‖)) and
   * AdaFace (z from ‖x‖ and the head's μ, σ, unless `z` is given). @default {1}
   */
  featureNorm?: number;
  /**
   * AdaFace's z in [−1, 1], the feature's normalised norm: −1 gives ArcFace's cos(θ + m), 0
   * CosFace's cos θ − m, 1 cos(θ − m) − 2m. @default {from featureNorm and the head's μ, σ}
   */
  z?: number;
  /** ElasticFace's margin of the sample drawn (one draw of N(m, σ)). @default {the mean of the head's margins} */
  margin?: number;
  /** b₁ and b₂ of a linear head. @default {[0, 0]} */
  bias?: readonly [number, number];
}

/** One point of a boundary: x is θ₁ (or cos θ₁), y is θ₂ (or cos θ₂). */
export interface BoundaryPoint {
  /** θ₁ or cos θ₁. */
  x: number;
  /** θ₂ or cos θ₂. */
  y: number;
}

/** The boundaries of one space: where each class starts winning, and the gap between. */
export interface BoundaryCurves {
  /** Where class 1's target logit equals class 2's plain logit; class 1 wins on the far side. */
  class1: BoundaryPoint[];
  /** Where class 2's target logit equals class 1's plain logit. */
  class2: BoundaryPoint[];
  /** The margin gap: at each x, the two boundaries' y (y ≤ y2), clamped to the square. */
  gap: { x: number; y: number; y2: number }[];
}

/** What {@linkcode decisionBoundaries} returns: the boundaries in angle and in cosine space. */
export interface Boundaries {
  /** The head's name. */
  name: string;
  /** x = θ₁, y = θ₂, both in [0, π]. */
  angle: BoundaryCurves;
  /** x = cos θ₁, y = cos θ₂, both in [−1, 1]. */
  cosine: BoundaryCurves;
}

/**
 * The binary decision boundaries (class 1 against class 2) of a head, sampled for plotting.
 *
 * Each boundary is "target logit of class k = plain logit of the other class", computed from the
 * same {@linkcode HeadSpec} and target function f(c) the loss uses, so boundaries cannot drift from
 * the losses: for an angular head R_k·f(cos θ_k) = R_j·cos θ_j, where the radius R cancels except
 * for L-Softmax's ‖x‖·‖W_k‖ (weightNorms); for a linear head ‖x‖(‖W₁‖cos θ₁ − ‖W₂‖cos θ₂) + b₁ − b₂
 * = 0, one boundary twice. A margin makes two boundaries with a gap between them; without margin
 * the two coincide. Points without a solution inside [0, π] (or [−1, 1]) are left out.
 *
 * The successor heads (issue 13), where their papers draw a binary boundary, for one sample:
 * - sub-center ArcFace: ArcFace's boundary between the two classes' dominant sub-centers (the class
 *   cosine is the largest of its K), with the head's margin and fallback;
 * - MagFace: ArcFace's with the margin m(a) of the feature norm a = clip(`featureNorm`, l_a, u_a)
 *   and MagFace's fallback (the regulariser adds the same to both classes' scores);
 * - ElasticFace: the boundary of one drawn margin (`margin`, default the mean of the head's
 *   margins); draw m − σ and m + σ for its band;
 * - CurricularFace: for the head's t, a non-target is hard where cos θ_j > cos(θ_y + m) and its
 *   logit is cos θ_j·(t + cos θ_j): the boundary is cos(θ_y + m) = cos θ_j·(t + cos θ_j) there,
 *   cos θ_j = cos(θ_y + m) at the jump where the modulated logit already exceeds the target;
 * - AdaFace: cos(clip(θ_y − m·z, ε, π − ε)) − m − m·z = cos θ_j (cosines clamped to ±(1 − ε)) for
 *   the normalised norm z (`z`, or from `featureNorm` and the head's μ, σ): z = −1 is ArcFace's,
 *   z = 0 CosFace's;
 * - AdaCos has no margin: NormFace's diagonal, whatever its scale.
 *
 * @example
 * ```ts
 * import { arcFaceHead, decisionBoundaries } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const { angle } = decisionBoundaries(arcFaceHead({ margin: 0.5 }), { samples: 5 });
 * // ArcFace: class 1 wins where θ₂ > θ₁ + m.
 * const p = angle.class1[1];
 * assert.ok(Math.abs(p.y - (p.x + 0.5)) < 1e-12);
 * ```
 *
 * @example AdaFace at z = −1 draws ArcFace's boundary (inside its ε-clamps)
 * ```ts
 * import { adaFaceHead, decisionBoundaries } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const { angle } = decisionBoundaries(adaFaceHead({ margin: 0.4 }), { z: -1, samples: 5 });
 * const p = angle.class1[1]; // θ₁ = π/4
 * assert.ok(Math.abs(p.y - (p.x + 0.4)) < 1e-9);
 * ```
 *
 * @param head The head, e.g. from a loss's head builder or the catalog, or a successor head.
 * @param options Samples, the norms and biases that do not cancel, AdaFace's z, ElasticFace's margin.
 * @returns The boundaries in angle and in cosine space.
 */
export function decisionBoundaries(
  head: HeadSpec | SuccessorHeadSpec,
  options?: BoundaryOptions,
): Boundaries {
  const where = "decisionBoundaries";
  const o = optionsObject(where, options, [
    "samples",
    "weightNorms",
    "featureNorm",
    "bias",
    "z",
    "margin",
  ]);
  const samples = numberOption(where, "samples", o.samples, 181, {
    min: 2,
    integer: true,
    text: "an integer ≥ 2",
  });
  const pair = (name: string, value: unknown, fallback: number, positive: boolean) => {
    if (value === undefined) return [fallback, fallback];
    const v = value as number[];
    if (
      !Array.isArray(v) || v.length !== 2 ||
      !v.every((e) => Number.isFinite(e) && (!positive || e > 0))
    ) {
      throw new RangeError(`${where}: ${name} must be two finite numbers${positive ? " > 0" : ""}`);
    }
    return v;
  };
  const [w1, w2] = pair("weightNorms", o.weightNorms, 1, true);
  const [b1, b2] = pair("bias", o.bias, 0, false);
  const featureNorm = numberOption(where, "featureNorm", o.featureNorm, 1, {
    min: 0,
    minOpen: true,
    text: "a finite number > 0",
  });

  const hook = isSuccessorHead(head) ? checkSuccessorHead(where, head).successor : undefined;
  if (o.z !== undefined && hook?.kind !== "adaFace") {
    throw new TypeError(`${where}: options.z applies only to an AdaFace head`);
  }
  if (o.margin !== undefined && hook?.kind !== "elastic") {
    throw new TypeError(`${where}: options.margin applies only to an ElasticFace head`);
  }
  const spec = hook ? successorAsHead(where, head.name, hook, featureNorm, o.margin) : head;
  if (spec === undefined || isSuccessorHead(spec)) {
    const logits = successorLogits(where, hook!, featureNorm, o.z);
    return {
      name: head.name,
      angle: scanCurves(logits, samples, Math.cos, Math.acos, [0, Math.PI]),
      cosine: scanCurves(logits, samples, (c) => c, (c) => c, [-1, 1]),
    };
  }

  // target(k, c) is class k's logit over ‖x‖ at cosine c, other(k, c) the plain one's.
  let target: (k: 0 | 1, c: number) => number;
  let plain: (k: 0 | 1, c: number) => number;
  if (spec.logits === "linear") {
    const norms = [w1, w2], bias = [b1, b2];
    target = plain = (k, c) => norms[k] * c + bias[k] / featureNorm;
  } else {
    const f = targetFunction(spec.margin, "exact");
    const norms = spec.radius.kind === "normProduct" ? [w1, w2] : [1, 1];
    target = (k, c) => norms[k] * f(c).value;
    plain = (k, c) => norms[k] * c;
  }
  // Given the cosine u of class k, the other class's cosine v on class k's boundary:
  // target(k, u) = plain(other, v), plain being linear and increasing in v.
  const solve = (k: 0 | 1, u: number): number => {
    const other = k === 0 ? 1 : 0;
    const slope = plain(other, 1) - plain(other, 0), offset = plain(other, 0);
    return (target(k, u) - offset) / slope;
  };
  // Class 2's boundary as a function of cos θ₁: invert u ↦ target(1, u) by bisection (monotone);
  // beyond [−1, 1] it returns ±2, a marker of "outside" that only the gap clamps.
  const solveInverse = (c1: number): number => {
    const goal = plain(0, c1);
    const g = (u: number) => target(1, u) - goal;
    let lo = -1, hi = 1;
    if (g(lo) > 0) return -2;
    if (g(hi) < 0) return 2;
    for (let i = 0; i < 80; i++) {
      const mid = (lo + hi) / 2;
      if (g(mid) < 0) lo = mid;
      else hi = mid;
    }
    return (lo + hi) / 2;
  };
  const inside = (v: number) => v >= -1 && v <= 1;
  const clamp = (v: number) => Math.min(1, Math.max(-1, v));

  const curves = (
    toCosine: (x: number) => number,
    fromCosine: (c: number) => number,
    a: number,
    b: number,
  ): BoundaryCurves => {
    const result: BoundaryCurves = { class1: [], class2: [], gap: [] };
    for (let i = 0; i < samples; i++) {
      const x = a + (b - a) * i / (samples - 1);
      const c1 = toCosine(x);
      const v1 = solve(0, c1), v2 = solveInverse(c1);
      if (inside(v1)) result.class1.push({ x, y: fromCosine(v1) });
      if (inside(v2)) result.class2.push({ x, y: fromCosine(v2) });
      // Where a boundary leaves the square, the gap runs to the square's edge.
      const y1 = fromCosine(clamp(v1)), y2 = fromCosine(clamp(v2));
      result.gap.push({ x, y: Math.min(y1, y2), y2: Math.max(y1, y2) });
    }
    return result;
  };
  return {
    name: head.name,
    angle: curves(Math.cos, Math.acos, 0, Math.PI),
    cosine: curves((c) => c, (c) => c, -1, 1),
  };
}

/**
 * The successor hooks whose boundary is a margin head's: sub-center ArcFace (ArcFace's), MagFace
 * (ArcFace's at m(a)), ElasticFace (one margin), AdaCos (NormFace's); undefined for the others.
 */
function successorAsHead(
  where: string,
  name: string,
  hook: SuccessorHook,
  featureNorm: number,
  margin: unknown,
): HeadSpec | undefined {
  const radius = { kind: "scale", scale: 1 } as const;
  const angular = (
    m2: number,
    m3: number,
    fallback: "none" | "insightface" | "easy",
  ): HeadSpec => ({
    name,
    logits: "angular",
    radius,
    margin: { kind: "angular", m1: 1, m2, m3, fallback },
    marginGradient: "exact",
  });
  switch (hook.kind) {
    case "subCenter":
      return angular(hook.margin, 0, hook.fallback);
    case "magFace": {
      const { lowerNorm: la, upperNorm: ua, lowerMargin: lm, upperMargin: um } = hook;
      const a = Math.min(ua, Math.max(la, featureNorm));
      return angular((um - lm) / (ua - la) * (a - la) + lm, 0, hook.fallback);
    }
    case "elastic": {
      const mean = hook.margins.reduce((sum, v) => sum + v, 0) / hook.margins.length;
      const m = numberOption(where, "margin", margin, mean, {
        min: 0,
        max: Math.PI,
        maxOpen: true,
        text: "a margin in [0, π)",
      });
      // The official arc variant has no fallback past θ + m > π.
      return hook.variant === "arc" ? angular(m, 0, "none") : angular(0, m, "none");
    }
    case "adaCos":
      return { name, logits: "angular", radius, margin: { kind: "none" }, marginGradient: "exact" };
    default:
      return undefined;
  }
}

/** A binary head's logits over the scale: class k's target at its cosine, the other's logit. */
interface BinaryLogits {
  /** The label's logit at its cosine c. */
  target: (c: number) => number;
  /** The other class's logit at its cosine c, when the label's cosine is `label`. */
  other: (c: number, label: number) => number;
}

function successorLogits(
  where: string,
  hook: SuccessorHook,
  featureNorm: number,
  z: unknown,
): BinaryLogits {
  if (hook.kind === "curricular") {
    const f = targetFunction(
      { kind: "angular", m1: 1, m2: hook.margin, m3: 0, fallback: "insightface" },
      "exact",
    );
    const border = targetFunction(
      { kind: "angular", m1: 1, m2: hook.margin, m3: 0, fallback: "none" },
      "exact",
    );
    const t = hook.t;
    return {
      target: (c) => f(c).value,
      other: (c, label) => c > border(label).value ? c * (t + c) : c,
    };
  }
  if (hook.kind !== "adaFace") throw new Error(`unreachable successor hook ${hook.kind}`);
  const eps = ADAFACE_EPS, [lo, hi] = ADAFACE_NORM_CLIP, m = hook.margin;
  const clip = (v: number, a: number, b: number) => Math.min(b, Math.max(a, v));
  const n = clip(featureNorm, lo, hi);
  const fromNorm = clip(hook.h * (n - hook.mean) / (hook.std + eps), -1, 1);
  const score = numberOption(where, "z", z, fromNorm, {
    min: -1,
    max: 1,
    text: "a finite number in [−1, 1]",
  });
  return {
    target: (c) => {
      const theta = clip(Math.acos(clip(c, -1 + eps, 1 - eps)) - m * score, eps, Math.PI - eps);
      return Math.cos(theta) - m - m * score;
    },
    other: (c) => clip(c, -1 + eps, 1 - eps),
  };
}

/** Grid points per scan of {@linkcode scanCurves}, before bisection. */
const SCAN = 4000;

/**
 * The first c in [−1, 1] where `g` turns from ≤ 0 to > 0 (by a grid, then bisection); −2 where it
 * is > 0 at −1 already, 2 where it never is: the markers of "outside" that the gap clamps.
 */
function firstRise(g: (c: number) => number): number {
  if (g(-1) > 0) return -2;
  let lo = -1;
  for (let k = 1; k <= SCAN; k++) {
    const hi = -1 + 2 * k / SCAN;
    if (g(hi) > 0) {
      let a = lo, b = hi;
      for (let i = 0; i < 60; i++) {
        const mid = (a + b) / 2;
        if (g(mid) > 0) b = mid;
        else a = mid;
      }
      return (a + b) / 2;
    }
    lo = hi;
  }
  return 2;
}

/**
 * The boundaries of logits that are not a margin head's, by scanning: class 1's at cos θ₁ = u is
 * the cos θ₂ where class 1 stops winning, class 2's the cos θ₂ where class 2 starts to.
 */
function scanCurves(
  logits: BinaryLogits,
  samples: number,
  toCosine: (x: number) => number,
  fromCosine: (c: number) => number,
  [a, b]: [number, number],
): BoundaryCurves {
  const { target, other } = logits;
  const result: BoundaryCurves = { class1: [], class2: [], gap: [] };
  const inside = (v: number) => v >= -1 && v <= 1;
  const clamp = (v: number) => Math.min(1, Math.max(-1, v));
  for (let i = 0; i < samples; i++) {
    const x = a + (b - a) * i / (samples - 1);
    const u = toCosine(x);
    const v1 = firstRise((v) => other(v, u) - target(u));
    const v2 = firstRise((v) => target(v) - other(u, v));
    if (inside(v1)) result.class1.push({ x, y: fromCosine(v1) });
    if (inside(v2)) result.class2.push({ x, y: fromCosine(v2) });
    const y1 = fromCosine(clamp(v1)), y2 = fromCosine(clamp(v2));
    result.gap.push({ x, y: Math.min(y1, y2), y2: Math.max(y1, y2) });
  }
  return result;
}

import type { HeadSpec } from "./head_spec.ts";
import { targetFunction } from "./target.ts";
import { numberOption, optionsObject } from "./_validate.ts";

/** Options of {@linkcode decisionBoundaries}. */
export interface BoundaryOptions {
  /** Points per curve. @default {181} */
  samples?: number;
  /** ‖W₁‖ and ‖W₂‖ (linear heads and L-Softmax's normProduct radius). @default {[1, 1]} */
  weightNorms?: readonly [number, number];
  /** ‖x‖, for a linear head with a bias (the only place it does not cancel). @default {1} */
  featureNorm?: number;
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
 * @param head The head, e.g. from a loss's head builder or the catalog.
 * @param options Samples, and the norms and biases that do not cancel.
 * @returns The boundaries in angle and in cosine space.
 */
export function decisionBoundaries(head: HeadSpec, options?: BoundaryOptions): Boundaries {
  const where = "decisionBoundaries";
  const o = optionsObject(where, options, ["samples", "weightNorms", "featureNorm", "bias"]);
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

  // target(k, c) is class k's logit over ‖x‖ at cosine c, other(k, c) the plain one's.
  let target: (k: 0 | 1, c: number) => number;
  let plain: (k: 0 | 1, c: number) => number;
  if (head.logits === "linear") {
    const norms = [w1, w2], bias = [b1, b2];
    target = plain = (k, c) => norms[k] * c + bias[k] / featureNorm;
  } else {
    const f = targetFunction(head.margin, "exact");
    const norms = head.radius.kind === "normProduct" ? [w1, w2] : [1, 1];
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

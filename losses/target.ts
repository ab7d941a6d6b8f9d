// The one hook that distinguishes margin losses: the target function f(c) and its slope f'(c).
import type { TargetMargin } from "./head_spec.ts";
import type { MarginGradient } from "./types.ts";
import { type TargetMarginParams, targetMarginParams } from "./margin_params.ts";

/** f(c) and f'(c) for one target cosine. */
export type TargetFunction = (cosine: number) => { value: number; slope: number };

/**
 * sin θ never drops below this in a denominator. Any cosine that float64 can tell apart from ±1 has
 * sin θ ≥ 1.49e-8, so only |c| = 1 exactly is affected, where ∂c/∂x = 0 and the product stays
 * finite instead of inf·0 = NaN.
 */
const SIN_FLOOR = 1e-8;

function clampCosine(c: number): number {
  return c > 1 ? 1 : c < -1 ? -1 : c;
}

/** sin θ for θ = acos(c), as √(max(0, 1 − c²)). */
export function sinFromCos(c: number): number {
  return Math.sqrt(Math.max(0, 1 - c * c));
}

/** T_m(c) = cos(m·acos c) and its derivative m·U_{m−1}(c), by the Chebyshev recurrences. */
export function chebyshev(m: number, c: number): { value: number; slope: number } {
  let t0 = 1, t1 = c; // T_0, T_1
  let u0 = 0, u1 = 1; // U_{-1}, U_0
  if (m === 0) return { value: 1, slope: 0 };
  for (let n = 1; n < m; n++) {
    [t0, t1] = [t1, 2 * c * t1 - t0];
    [u0, u1] = [u1, 2 * c * u1 - u0];
  }
  return { value: t1, slope: m * u1 };
}

/**
 * ψ_m(θ) = (−1)^k·cos(mθ) − 2k with k = ⌊mθ/π⌋, as a function of c = cos θ, and its derivative
 * with k held constant (it is a step function). Monotone decreasing on [0, π].
 */
export function psi(margin: number, cosine: number): { value: number; slope: number } {
  const c = clampCosine(cosine);
  const k = Math.floor(margin * Math.acos(c) / Math.PI);
  const sign = k % 2 === 0 ? 1 : -1;
  const t = chebyshev(margin, c);
  return { value: sign * t.value - 2 * k, slope: sign * t.slope };
}

function angularTarget(
  { m1, m2, m3, cosM2: cosM, sinM2: sinM }: TargetMarginParams,
): TargetFunction {
  if (m1 === 1) {
    // cos(θ + m2) = c·cos m2 − sin θ·sin m2: no acos, as insightface and arcface-pytorch write it.
    return (cosine) => {
      const c = clampCosine(cosine), sin = sinFromCos(c);
      return {
        value: c * cosM - sin * sinM - m3,
        slope: cosM + c * sinM / Math.max(sin, SIN_FLOOR),
      };
    };
  }
  return (cosine) => {
    const c = clampCosine(cosine), theta = Math.acos(c);
    return {
      value: Math.cos(m1 * theta + m2) - m3,
      slope: m1 * Math.sin(m1 * theta + m2) / Math.max(sinFromCos(c), SIN_FLOOR),
    };
  };
}

function exactTarget(margin: TargetMargin): TargetFunction {
  switch (margin.kind) {
    case "none":
      return (c) => ({ value: c, slope: 1 });
    case "psi": {
      const { margin: m, lambda } = margin;
      return (c) => {
        const p = psi(m, c);
        return {
          value: (lambda * c + p.value) / (1 + lambda),
          slope: (lambda + p.slope) / (1 + lambda),
        };
      };
    }
    case "angular": {
      const params = targetMarginParams(margin);
      const f = angularTarget(params);
      switch (margin.fallback) {
        case "none":
          return f;
        case "easy":
          return (c) => c > 0 ? f(c) : { value: c, slope: 1 };
        case "insightface": {
          // insightface: past θ = π − m2 the margin would help; use the linear extension instead.
          const { threshold, shift } = params;
          return (c) => c > threshold ? f(c) : { value: c - shift, slope: 1 };
        }
        default: {
          const unreachable: never = margin.fallback;
          throw new Error(`unreachable fallback ${unreachable}`);
        }
      }
    }
    default: {
      const unreachable: never = margin;
      throw new Error(`unreachable margin ${JSON.stringify(unreachable)}`);
    }
  }
}

/** The target function of a margin, with its exact slope or with the margin term held constant. */
export function targetFunction(margin: TargetMargin, gradient: MarginGradient): TargetFunction {
  const f = exactTarget(margin);
  if (gradient === "exact") return f;
  return (c) => ({ value: f(c).value, slope: 1 });
}

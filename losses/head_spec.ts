import type { MarginGradient } from "./types.ts";

/**
 * How the cosines of the non-target classes become logits: multiplied by a fixed scale s
 * (NormFace, CosFace, ArcFace…), by the feature norm ‖x_i‖ (SphereFace), or by ‖x_i‖·‖w_j‖
 * (L-Softmax, where the plain logit is the inner product).
 */
export type Radius =
  | { kind: "scale"; scale: number }
  | { kind: "featureNorm" }
  | { kind: "normProduct" };

/**
 * How the target cosine c = cos θ is turned into the target's f(c); the target logit is then
 * radius × f(c).
 *
 * - `none`: f(c) = c.
 * - `angular`: f(c) = cos(m1·θ + m2) − m3, the insightface combined margin (CosFace is m2 = 0,
 *   ArcFace m3 = 0). `fallback` says what happens where the margin would stop being monotone:
 *   `"none"` keeps the formula, `"insightface"` uses c − m2·sin m2 − m3 where c ≤ cos(π − m2), and
 *   `"easy"` uses c where c ≤ 0.
 * - `psi`: f(c) = (λ·c + ψ_m(θ)) / (1 + λ) with ψ_m(θ) = (−1)^k·cos(mθ) − 2k, k = ⌊mθ/π⌋ (L-Softmax,
 *   SphereFace).
 */
export type TargetMargin =
  | { kind: "none" }
  | {
    kind: "angular";
    m1: number;
    m2: number;
    m3: number;
    fallback: "none" | "insightface" | "easy";
  }
  | { kind: "psi"; margin: number; lambda: number };

/**
 * A complete description of a classification head: what a backend needs to compute any loss of the
 * softmax family without knowing which one it is.
 *
 * - `linear`: z = x·Wᵀ + b, plain softmax cross-entropy.
 * - `angular`: c_ij = x̂_i·ŵ_j; z_ij = R_ij·c_ij for j ≠ y_i and z_iy = R_iy·f(c_iy), with R from
 *   `radius` and f from `margin`.
 */
export type HeadSpec =
  | { name: string; logits: "linear" }
  | {
    name: string;
    logits: "angular";
    radius: Radius;
    margin: TargetMargin;
    marginGradient: MarginGradient;
  };

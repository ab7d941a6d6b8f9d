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

/**
 * The hook of a successor loss (issue 13), the data that the one margin-softmax machine grows for
 * the losses after ArcFace (see the design note "The one machine, grown for the successors"): a
 * class reduction before the margin (`subCenter`), a non-target modification (`curricular`), and
 * per-sample or per-batch parameters (`adaFace`, `magFace`, `elastic`, `adaCos`). State that a loss
 * carries from batch to batch (CurricularFace's t, AdaFace's norm statistics, AdaCos's scale) is
 * part of the hook: the head describes one step.
 *
 * - `subCenter`: weights hold K rows per class (row c·K + k is sub-center k of class c); the class
 *   cosine is the largest of its K, then ArcFace's target with `fallback`.
 * - `curricular`: ArcFace's target (insightface fallback); a non-target with c_j > cos(θ_y + m)
 *   becomes c_j·(t + c_j), t ← alpha·mean(c_y) + (1 − alpha)·t before use.
 * - `adaFace`: target cos(clip(θ − m·z, ε, π − ε)) − m − m·z, z from the norm statistics.
 * - `magFace`: ArcFace with a margin linear in the clipped feature norm, plus a norm regulariser.
 * - `adaCos`: NormFace whose scale is recomputed from the batch (`scale: null`: √2·ln(C − 1)).
 * - `elastic`: one margin per sample (`arc`: cos(θ + m_i), `cos`: c − m_i), `plus` ordering.
 */
export type SuccessorHook =
  | {
    kind: "subCenter";
    scale: number;
    margin: number;
    subCenters: number;
    fallback: "insightface" | "easy";
  }
  | { kind: "curricular"; scale: number; margin: number; t: number; alpha: number }
  | {
    kind: "adaFace";
    scale: number;
    margin: number;
    h: number;
    alpha: number;
    mean: number;
    std: number;
  }
  | {
    kind: "magFace";
    scale: number;
    lowerMargin: number;
    upperMargin: number;
    lowerNorm: number;
    upperNorm: number;
    regularization: number;
    fallback: "insightface" | "easy";
  }
  | { kind: "adaCos"; scale: number | null; updateScale: boolean }
  | {
    kind: "elastic";
    variant: "arc" | "cos";
    scale: number;
    margins: readonly number[];
    plus: boolean;
  };

/**
 * The head description of a successor loss: an angular head whose logits follow its
 * {@linkcode SuccessorHook}. It is not a {@linkcode HeadSpec}: `prepareHead` and `headLoss` run
 * every hook on the reference engine, the per-sample kinds (`elastic`, `magFace`, `adaFace`) on
 * engine-wasm and engine-native too, `adaCos` on engine-wasm, engine-native and engine-webgpu (the
 * next state in the result), and refuse the others with a message naming the hook.
 */
export interface SuccessorHeadSpec {
  /** The loss's name (`"curricularFace"`…). */
  name: string;
  /** Always angular: cosines of unit rows. */
  logits: "angular";
  /** Exact or detached gradient of the target's margin, where the loss offers the choice. */
  marginGradient: MarginGradient;
  /** What this loss does beyond the one target function. */
  successor: SuccessorHook;
}

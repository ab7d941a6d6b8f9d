/**
 * The per-sample terms of the successor losses whose hook is a target function per sample
 * (ElasticFace's m_i, MagFace's m(a_i) with its radial term and regulariser, AdaFace's margin from
 * the batch's norm statistics, CurricularFace's ArcFace target with its running t), in float64: the
 * one implementation that the float64 reference (losses/_successor.ts) and the engines that finish
 * their targets on the host (engines/host/samples.ts, for engine-wasm, engine-native and
 * engine-webgpu) both call. Every logit of these heads is s times a clamped cosine (a non-target's
 * slope is s inside the clamp, 0 outside), except the target's, which is s·f_i(c_iy) with the
 * per-sample f_i computed here, and CurricularFace's hard negatives: a non-target above its
 * sample's threshold is s·{@linkcode hardNegative} (the engines' kernels evaluate it with the
 * thresholds and t from here).
 *
 * @module
 */
import type { SuccessorHook } from "./head_spec.ts";
import type { MarginGradient } from "./types.ts";
import { sinFromCos, targetFunction } from "./target.ts";

/** AdaFace's ε: cosines in [−1 + ε, 1 − ε], θ in [ε, π − ε], σ + ε (mk-minchul/AdaFace head.py). */
export const ADAFACE_EPS = 1e-3;
/** AdaFace's clip of the feature norms (head.py's `safe_norms`). */
export const ADAFACE_NORM_CLIP = [0.001, 100] as const;
/** sin θ never drops below this in a denominator (as in target.ts). */
export const SIN_FLOOR = 1e-8;

/** The successor kinds whose hook is per-sample terms (see the module doc). */
export const PER_SAMPLE_SUCCESSORS = ["elastic", "magFace", "adaFace", "curricular"] as const;

/** One of {@linkcode PER_SAMPLE_SUCCESSORS}. */
export type PerSampleKind = typeof PER_SAMPLE_SUCCESSORS[number];

/** A hook of one of the {@linkcode PER_SAMPLE_SUCCESSORS}. */
export type PerSampleHook = Extract<SuccessorHook, { kind: PerSampleKind }>;

/** Whether a hook is one of the {@linkcode PER_SAMPLE_SUCCESSORS}. */
export function isPerSampleHook(hook: SuccessorHook): hook is PerSampleHook {
  return (PER_SAMPLE_SUCCESSORS as readonly string[]).includes(hook.kind);
}

/** Each sample's target terms of a per-sample successor head, float64, length N each. */
export interface SuccessorTargets {
  /** s: z_ij = s·clamp(c_ij) for j ≠ y_i, z_iy = s·value_i. */
  scale: number;
  /** The range [lo, hi] the non-target cosines are clamped to (slope 0 outside it). */
  clamp: readonly [number, number];
  /** f_i(c_iy): z_iy = s·value_i. */
  value: Float64Array;
  /** ∂f_i/∂c_iy (0 where a clamp of the target binds). */
  slope: Float64Array;
  /** ∂f_i/∂‖x_i‖ (MagFace: the margin follows the norm); absent where f_i does not. */
  normSlope?: Float64Array;
  /** A term added to each per-sample loss (MagFace's regulariser). */
  extraLoss?: Float64Array;
  /** ∂extraLoss_i/∂‖x_i‖. */
  extraNormSlope?: Float64Array;
  /** The state after this step (AdaFace's `{ mean, std }`; empty for the stateless kinds). */
  state: Record<string, number>;
  /** ElasticFace's margins as applied (after the "+" ordering). */
  margins?: Float64Array;
  /**
   * CurricularFace's hard negatives: a non-target with c_ij > threshold_i, the plain cos(θ_iy + m)
   * (not the fallback target), has logit s·{@linkcode hardNegative}(c_ij, t).
   */
  hardNegatives?: HardNegatives;
}

/** CurricularFace's hard-negative parameters of a batch (see {@linkcode hardNegative}). */
export interface HardNegatives {
  /** t after this batch's update, the value this batch uses (held constant in the gradient). */
  t: number;
  /** threshold_i = cos(θ_iy + m) of each sample's clamped target cosine, length N. */
  threshold: Float64Array;
}

/**
 * A hard negative's logit over s, c·(t + c), and its slope t + 2c (t held constant, as
 * HuangYG123/CurricularFace detaches it).
 */
export function hardNegative(c: number, t: number): { value: number; slope: number } {
  return { value: c * (t + c), slope: t + 2 * c };
}

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

/** A cosine clamped to [−1, 1] as the references do, with the clamp's 0/1 slope. */
export function unitCosine(c: number): { c: number; pass: number } {
  return c > 1 ? { c: 1, pass: 0 } : c < -1 ? { c: -1, pass: 0 } : { c, pass: 1 };
}

/** cos(θ + m) = c·cos m − sin θ·sin m, with ∂/∂c and ∂/∂m (c in [−1, 1]). */
export function arcMargin(c: number, m: number): { value: number; dc: number; dm: number } {
  const sin = sinFromCos(c), cosM = Math.cos(m), sinM = Math.sin(m);
  return {
    value: c * cosM - sin * sinM,
    dc: cosM + c * sinM / Math.max(sin, SIN_FLOOR),
    dm: -c * sinM - sin * cosM,
  };
}

/**
 * The target terms of a per-sample successor head from each sample's target cosine c_iy (as
 * computed, unclamped) and feature norm ‖x_i‖: ElasticFace's cos(θ + m_i) or c − m_i (with the "+"
 * ordering), MagFace's cos(θ + m(a_i)) with its fallback, radial slope and regulariser, AdaFace's
 * statistics update and its target, CurricularFace's t update, ArcFace target and hard-negative
 * thresholds. Throws a RangeError naming the argument (`where` first) when
 * ElasticFace's margins are not one per sample.
 */
export function successorTargets(
  where: string,
  hook: PerSampleHook,
  gradient: MarginGradient,
  cy: ArrayLike<number>,
  norms: ArrayLike<number>,
): SuccessorTargets {
  switch (hook.kind) {
    case "elastic":
      return elastic(where, hook, gradient, cy);
    case "magFace":
      return magFace(hook, cy, norms);
    case "adaFace":
      return adaFace(hook, cy, norms);
    case "curricular":
      return curricular(hook, gradient, cy);
    default: {
      const unreachable: never = hook;
      throw new Error(`unreachable successor hook ${JSON.stringify(unreachable)}`);
    }
  }
}

function elastic(
  where: string,
  hook: Extract<PerSampleHook, { kind: "elastic" }>,
  gradient: MarginGradient,
  cy: ArrayLike<number>,
): SuccessorTargets {
  const N = cy.length;
  if (hook.margins.length !== N) {
    throw new RangeError(
      `${where}: options.margins must hold one margin per sample (N = ${N}), got ${hook.margins.length}`,
    );
  }
  let margins = Float64Array.from(hook.margins);
  if (hook.plus) {
    // fdbtrs/ElasticFace: order = argsort(c_y, descending) of the clamped cosines, margin_i =
    // sorted(margins)[order_i] (a gather by the argsort, not a scatter by rank).
    const c = Array.from({ length: N }, (_, i) => unitCosine(cy[i]).c);
    const order = c.map((_, i) => i).sort((p, q) => c[q] - c[p] || p - q);
    const sorted = Float64Array.from(margins).sort();
    margins = Float64Array.from(order, (o) => sorted[o]);
  }
  const value = new Float64Array(N), slope = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const u = unitCosine(cy[i]);
    const t = hook.variant === "cos"
      ? { value: u.c - margins[i], dc: 1 }
      : arcMargin(u.c, margins[i]);
    value[i] = t.value;
    slope[i] = (gradient === "exact" ? t.dc : 1) * u.pass;
  }
  return { scale: hook.scale, clamp: [-1, 1], value, slope, state: {}, margins };
}

function magFace(
  hook: Extract<PerSampleHook, { kind: "magFace" }>,
  cy: ArrayLike<number>,
  norms: ArrayLike<number>,
): SuccessorTargets {
  const { lowerNorm: la, upperNorm: ua, lowerMargin: lm, upperMargin: um } = hook;
  const N = cy.length, lambda = hook.regularization, rate = (um - lm) / (ua - la);
  const value = new Float64Array(N), slope = new Float64Array(N);
  const normSlope = new Float64Array(N), extraLoss = new Float64Array(N);
  const extraNormSlope = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const a = clamp(norms[i], la, ua), pass = norms[i] >= la && norms[i] <= ua ? 1 : 0;
    const m = rate * (a - la) + lm;
    const u = unitCosine(cy[i]), c = u.c;
    let t = { value: c, dc: 1, dm: 0 };
    if (hook.fallback === "easy") {
      if (c > 0) t = arcMargin(c, m);
    } else if (c > Math.cos(Math.PI - m)) {
      t = arcMargin(c, m);
    } else {
      const sinPiM = Math.sin(Math.PI - m);
      t = { value: c - sinPiM * m, dc: 1, dm: -(sinPiM + m * Math.cos(m)) };
    }
    value[i] = t.value;
    slope[i] = t.dc * u.pass;
    normSlope[i] = t.dm * rate * pass;
    extraLoss[i] = lambda * (a / (ua * ua) + 1 / a);
    extraNormSlope[i] = lambda * (1 / (ua * ua) - 1 / (a * a)) * pass;
  }
  return {
    scale: hook.scale,
    clamp: [-1, 1],
    value,
    slope,
    normSlope,
    extraLoss,
    extraNormSlope,
    state: {},
  };
}

/** AdaFace's statistics after this batch: μ and σ updated before use (the batch's norms clipped). */
export function adaFaceStatistics(
  hook: Extract<PerSampleHook, { kind: "adaFace" }>,
  norms: ArrayLike<number>,
): { mean: number; std: number } {
  const [lo, hi] = ADAFACE_NORM_CLIP, N = norms.length, { alpha } = hook;
  let batchMean = 0;
  for (let i = 0; i < N; i++) batchMean += clamp(norms[i], lo, hi);
  batchMean /= N;
  // torch.std is unbiased: NaN for a batch of one, where the previous σ is kept instead.
  let batchStd = hook.std;
  if (N > 1) {
    let sq = 0;
    for (let i = 0; i < N; i++) sq += (clamp(norms[i], lo, hi) - batchMean) ** 2;
    batchStd = Math.sqrt(sq / (N - 1));
  }
  return {
    mean: alpha * batchMean + (1 - alpha) * hook.mean,
    std: alpha * batchStd + (1 - alpha) * hook.std,
  };
}

function adaFace(
  hook: Extract<PerSampleHook, { kind: "adaFace" }>,
  cy: ArrayLike<number>,
  norms: ArrayLike<number>,
): SuccessorTargets {
  const { margin: m, h } = hook, eps = ADAFACE_EPS, [lo, hi] = ADAFACE_NORM_CLIP, N = cy.length;
  const state = adaFaceStatistics(hook, norms);
  const value = new Float64Array(N), slope = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const scaler = clamp(h * (clamp(norms[i], lo, hi) - state.mean) / (state.std + eps), -1, 1);
    const c = cy[i], cc = clamp(c, -1 + eps, 1 - eps);
    const shifted = Math.acos(cc) - m * scaler;
    const theta = clamp(shifted, eps, Math.PI - eps);
    value[i] = Math.cos(theta) - (m + m * scaler);
    const inside = c >= -1 + eps && c <= 1 - eps && shifted >= eps && shifted <= Math.PI - eps;
    slope[i] = inside ? Math.sin(theta) / Math.sqrt(1 - cc * cc) : 0;
  }
  return { scale: hook.scale, clamp: [-1 + eps, 1 - eps], value, slope, state };
}

/**
 * CurricularFace (HuangYG123/CurricularFace head/metrics.py): t ← α·mean(c_y) + (1 − α)·t before
 * use, the target cos(θ_y + m) with ArcFace's fallback c − m·sin m past π − m, and each sample's
 * hard-negative threshold, the plain cos(θ_y + m) even past π − m (as the official mask compares).
 */
/**
 * ArcFace's target cos(θ + m) (with `fallback` past π − m) on each target cosine, clamped to
 * [−1, 1] first as the references clamp it, and its slope (0 where the clamp binds): the target
 * of sub-center ArcFace (on the largest sub-center's cosine) and of CurricularFace.
 */
export function arcFaceTargets(
  cy: ArrayLike<number>,
  margin: number,
  fallback: "insightface" | "easy" | "none",
  gradient: MarginGradient,
): { value: Float64Array; slope: Float64Array } {
  const f = targetFunction({ kind: "angular", m1: 1, m2: margin, m3: 0, fallback }, gradient);
  const N = cy.length, value = new Float64Array(N), slope = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const u = unitCosine(cy[i]), t = f(u.c);
    value[i] = t.value;
    slope[i] = t.slope * u.pass;
  }
  return { value, slope };
}

/** Sub-center ArcFace's target terms from each sample's class cosine (its largest sub-center's). */
export function subCenterTargets(
  hook: Extract<SuccessorHook, { kind: "subCenter" }>,
  gradient: MarginGradient,
  cy: ArrayLike<number>,
): SuccessorTargets {
  const { value, slope } = arcFaceTargets(cy, hook.margin, hook.fallback, gradient);
  return { scale: hook.scale, clamp: [-1, 1], value, slope, state: {} };
}

function curricular(
  hook: Extract<PerSampleHook, { kind: "curricular" }>,
  gradient: MarginGradient,
  cy: ArrayLike<number>,
): SuccessorTargets {
  const { margin: m, alpha } = hook, N = cy.length;
  let mean = 0;
  for (let i = 0; i < N; i++) mean += unitCosine(cy[i]).c;
  const t = alpha * (mean / N) + (1 - alpha) * hook.t;
  const { value, slope } = arcFaceTargets(cy, m, "insightface", gradient);
  const threshold = new Float64Array(N);
  for (let i = 0; i < N; i++) threshold[i] = arcMargin(unitCosine(cy[i]).c, m).value;
  return {
    scale: hook.scale,
    clamp: [-1, 1],
    value,
    slope,
    state: { t },
    hardNegatives: { t, threshold },
  };
}

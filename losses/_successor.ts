// The float64 machine of the successor losses (issue 13): the margin-softmax machine with the three
// hooks of a SuccessorHook (a class reduction, a non-target modification, per-sample and per-batch
// parameters), the state in and out. Imported only by the loss pages of losses/.
import type { SuccessorHeadSpec, SuccessorHook } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginGradient, Reduction } from "./types.ts";
import { reduce, reductionWeight, softmaxCrossEntropy } from "./cross_entropy.ts";
import { sinFromCos, targetFunction } from "./target.ts";
import { assertFiniteOutput, checkLabels, checkMatrix } from "./_validate.ts";
import { NORM_EPS } from "./_constants.ts";

/** AdaFace's ε: cosines in [−1 + ε, 1 − ε], θ in [ε, π − ε], σ + ε (mk-minchul/AdaFace head.py). */
export const ADAFACE_EPS = 1e-3;
/** AdaFace's clip of the feature norms (head.py's `safe_norms`). */
export const ADAFACE_NORM_CLIP = [0.001, 100] as const;
/** AdaCos clamps the target cosines to ±(1 − 1e-7) before the acos of its median. */
const ADACOS_EPS = 1e-7;
/** sin θ never drops below this in a denominator (as in target.ts). */
const SIN_FLOOR = 1e-8;

/** What the machine returns: a head result, the next state and the loss's per-sample numbers. */
export interface SuccessorOutput extends HeadResult {
  /** The state after this step (stateful losses). */
  state: Record<string, number>;
  /** ElasticFace's margins as applied (after the "+" ordering). */
  margins?: Float64Array;
}

/** The checked input: features, weights (C·K rows), labels in [0, C). */
interface Batch {
  N: number;
  D: number;
  R: number;
  C: number;
  K: number;
  x: Float64Array;
  w: Float64Array;
  labels: Int32Array;
}

/** The logits a hook forms from the class cosines, with the slopes the backward needs. */
interface Logits {
  /** N×C logits. */
  z: Float64Array;
  /** N×C ∂z_ij/∂c_ij. */
  slope: Float64Array;
  /** N: ∂z_iy/∂‖x_i‖ (MagFace's margin follows the norm). */
  normSlope?: Float64Array;
  /** N: a term added to each per-sample loss (MagFace's regulariser). */
  extraLoss?: Float64Array;
  /** N: ∂extraLoss_i/∂‖x_i‖. */
  extraNormSlope?: Float64Array;
  state: Record<string, number>;
  margins?: Float64Array;
}

function checkBatch(where: string, input: HeadInput, K: number): Batch {
  if (input === null || typeof input !== "object") {
    throw new TypeError(`${where}: input must be an object {features, weights, labels}`);
  }
  for (const key of Object.keys(input)) {
    if (key === "bias") {
      throw new TypeError(`${where}: bias is not used by this loss; only softmaxLoss takes one`);
    }
    if (!["features", "weights", "labels"].includes(key)) {
      throw new TypeError(
        `${where}: input has an unknown key "${key}"; it takes "features", "weights", "labels"`,
      );
    }
  }
  const x = checkMatrix(where, "features", input.features);
  const w = checkMatrix(where, "weights", input.weights);
  const N = input.features.rows, D = input.features.cols, R = input.weights.rows;
  if (input.weights.cols !== D) {
    throw new RangeError(
      `${where}: weights.cols must equal features.cols (D = ${D}), got ${input.weights.cols}`,
    );
  }
  if (R % K !== 0) {
    throw new RangeError(
      `${where}: weights.rows must be a multiple of options.subCenters (K = ${K}: row c·K + k is ` +
        `sub-center k of class c), got ${R}`,
    );
  }
  const C = R / K;
  const labels = checkLabels(where, input.labels, { N, C });
  return { N, D, R, C, K, x, w, labels };
}

function rowNorms(a: Float64Array, D: number): Float64Array {
  const norms = new Float64Array(a.length / D);
  for (let r = 0; r < norms.length; r++) {
    let sq = 0;
    for (let k = 0; k < D; k++) sq += a[r * D + k] ** 2;
    norms[r] = Math.sqrt(sq);
  }
  return norms;
}

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

/** A cosine clamped to [−1, 1] as the references do, with the clamp's 0/1 slope. */
function unitCosine(c: number): { c: number; pass: number } {
  return c > 1 ? { c: 1, pass: 0 } : c < -1 ? { c: -1, pass: 0 } : { c, pass: 1 };
}

/** cos(θ + m) = c·cos m − sin θ·sin m, with ∂/∂c and ∂/∂m (c in [−1, 1]). */
function arc(c: number, m: number) {
  const sin = sinFromCos(c), cosM = Math.cos(m), sinM = Math.sin(m);
  return {
    value: c * cosM - sin * sinM,
    dc: cosM + c * sinM / Math.max(sin, SIN_FLOOR),
    dm: -c * sinM - sin * cosM,
  };
}

/** Fills non-target logits s·c (clamped to ±1) and leaves the targets to the caller. */
function plainLogits(cos: Float64Array, scale: number) {
  const z = new Float64Array(cos.length), slope = new Float64Array(cos.length);
  for (let k = 0; k < cos.length; k++) {
    const u = unitCosine(cos[k]);
    z[k] = scale * u.c;
    slope[k] = scale * u.pass;
  }
  return { z, slope };
}

function arcTargets(
  b: Batch,
  cos: Float64Array,
  scale: number,
  margin: number,
  fallback: "insightface" | "easy" | "none",
  gradient: MarginGradient,
) {
  const { z, slope } = plainLogits(cos, scale);
  const f = targetFunction({ kind: "angular", m1: 1, m2: margin, m3: 0, fallback }, gradient);
  for (let i = 0; i < b.N; i++) {
    const k = i * b.C + b.labels[i], u = unitCosine(cos[k]), t = f(u.c);
    z[k] = scale * t.value;
    slope[k] = scale * t.slope * u.pass;
  }
  return { z, slope };
}

function curricular(
  b: Batch,
  cos: Float64Array,
  hook: SuccessorHookOf<"curricular">,
  gradient: MarginGradient,
): Logits {
  const { scale: s, margin: m, alpha } = hook;
  let mean = 0;
  for (let i = 0; i < b.N; i++) mean += unitCosine(cos[i * b.C + b.labels[i]]).c;
  const t = alpha * (mean / b.N) + (1 - alpha) * hook.t;
  const { z, slope } = arcTargets(b, cos, s, m, "insightface", gradient);
  for (let i = 0; i < b.N; i++) {
    const y = b.labels[i];
    const border = arc(unitCosine(cos[i * b.C + y]).c, m).value; // cos(θ_y + m), no fallback
    for (let j = 0; j < b.C; j++) {
      const k = i * b.C + j, u = unitCosine(cos[k]);
      if (j === y || !(u.c > border)) continue;
      z[k] = s * u.c * (t + u.c);
      slope[k] = s * (t + 2 * u.c) * u.pass;
    }
  }
  return { z, slope, state: { t } };
}

function adaFace(
  b: Batch,
  cos: Float64Array,
  norms: Float64Array,
  hook: SuccessorHookOf<"adaFace">,
) {
  const { scale: s, margin: m, h, alpha } = hook;
  const eps = ADAFACE_EPS, [lo, hi] = ADAFACE_NORM_CLIP;
  const safe = norms.map((n) => clamp(n, lo, hi));
  let batchMean = 0;
  for (const n of safe) batchMean += n;
  batchMean /= b.N;
  // torch.std is unbiased: NaN for a batch of one, where the previous σ is kept instead.
  let batchStd = hook.std;
  if (b.N > 1) {
    let sq = 0;
    for (const n of safe) sq += (n - batchMean) ** 2;
    batchStd = Math.sqrt(sq / (b.N - 1));
  }
  const mean = alpha * batchMean + (1 - alpha) * hook.mean;
  const std = alpha * batchStd + (1 - alpha) * hook.std;
  const z = new Float64Array(cos.length), slope = new Float64Array(cos.length);
  for (let k = 0; k < cos.length; k++) {
    const c = cos[k], cc = clamp(c, -1 + eps, 1 - eps);
    z[k] = s * cc;
    slope[k] = c >= -1 + eps && c <= 1 - eps ? s : 0;
  }
  for (let i = 0; i < b.N; i++) {
    const scaler = clamp(h * (safe[i] - mean) / (std + eps), -1, 1);
    const k = i * b.C + b.labels[i], c = cos[k], cc = clamp(c, -1 + eps, 1 - eps);
    const shifted = Math.acos(cc) - m * scaler;
    const theta = clamp(shifted, eps, Math.PI - eps);
    z[k] = s * (Math.cos(theta) - (m + m * scaler));
    const inside = c >= -1 + eps && c <= 1 - eps && shifted >= eps && shifted <= Math.PI - eps;
    slope[k] = inside ? s * Math.sin(theta) / Math.sqrt(1 - cc * cc) : 0;
  }
  return { z, slope, state: { mean, std } };
}

type SuccessorHookOf<K extends SuccessorHook["kind"]> = Extract<SuccessorHook, { kind: K }>;

function magFace(
  b: Batch,
  cos: Float64Array,
  norms: Float64Array,
  hook: SuccessorHookOf<"magFace">,
) {
  const { scale: s, lowerNorm: la, upperNorm: ua, lowerMargin: lm, upperMargin: um } = hook;
  const lambda = hook.regularization, rate = (um - lm) / (ua - la);
  const { z, slope } = plainLogits(cos, s);
  const normSlope = new Float64Array(b.N), extraLoss = new Float64Array(b.N);
  const extraNormSlope = new Float64Array(b.N);
  for (let i = 0; i < b.N; i++) {
    const a = clamp(norms[i], la, ua), pass = norms[i] >= la && norms[i] <= ua ? 1 : 0;
    const m = rate * (a - la) + lm;
    const k = i * b.C + b.labels[i], u = unitCosine(cos[k]), c = u.c;
    let t = { value: c, dc: 1, dm: 0 };
    if (hook.fallback === "easy") {
      if (c > 0) t = arc(c, m);
    } else if (c > Math.cos(Math.PI - m)) {
      t = arc(c, m);
    } else {
      const sinPiM = Math.sin(Math.PI - m);
      t = { value: c - sinPiM * m, dc: 1, dm: -(sinPiM + m * Math.cos(m)) };
    }
    z[k] = s * t.value;
    slope[k] = s * t.dc * u.pass;
    normSlope[i] = s * t.dm * rate * pass;
    extraLoss[i] = lambda * (a / (ua * ua) + 1 / a);
    extraNormSlope[i] = lambda * (1 / (ua * ua) - 1 / (a * a)) * pass;
  }
  return { z, slope, normSlope, extraLoss, extraNormSlope, state: {} };
}

function adaCos(b: Batch, cos: Float64Array, where: string, hook: SuccessorHookOf<"adaCos">) {
  let old = hook.scale;
  if (old === null) {
    if (b.C < 3) {
      throw new RangeError(
        `${where}: the initial scale √2·ln(C − 1) is not positive for C = ${b.C} classes (it ` +
          `needs C ≥ 3); give options.state = { scale } (a finite number > 0)`,
      );
    }
    old = Math.SQRT2 * Math.log(b.C - 1);
  }
  let scale = old;
  if (hook.updateScale) {
    // ln B, B = Σ_i Σ_{j≠y_i} exp(s·c_ij) / N, as a log-sum-exp (FaceX-Zoo sums exp directly).
    let max = -Infinity;
    for (let i = 0; i < b.N; i++) {
      for (let j = 0; j < b.C; j++) {
        if (j !== b.labels[i]) max = Math.max(max, old * cos[i * b.C + j]);
      }
    }
    let sum = 0;
    for (let i = 0; i < b.N; i++) {
      for (let j = 0; j < b.C; j++) {
        if (j !== b.labels[i]) sum += Math.exp(old * cos[i * b.C + j] - max);
      }
    }
    const logB = max + Math.log(sum) - Math.log(b.N);
    const thetas = Array.from(
      { length: b.N },
      (_, i) => Math.acos(clamp(cos[i * b.C + b.labels[i]], -1 + ADACOS_EPS, 1 - ADACOS_EPS)),
    ).sort((p, q) => p - q);
    const median = thetas[Math.floor((b.N - 1) / 2)]; // torch.median: the lower middle
    const next = logB / Math.cos(Math.min(Math.PI / 4, median));
    // ln B ≤ 0 (few classes, non-targets mostly negative) would make s ≤ 0, and C = 1 has no
    // non-target (ln B = −∞): keep the old scale.
    if (Number.isFinite(next) && next > 0) scale = next;
  }
  const z = new Float64Array(cos.length), slope = new Float64Array(cos.length).fill(scale);
  for (let k = 0; k < cos.length; k++) z[k] = scale * cos[k];
  return { z, slope, state: { scale } };
}

function elastic(
  b: Batch,
  cos: Float64Array,
  where: string,
  hook: SuccessorHookOf<"elastic">,
  gradient: MarginGradient,
): Logits {
  if (hook.margins.length !== b.N) {
    throw new RangeError(
      `${where}: options.margins must hold one margin per sample (N = ${b.N}), got ${hook.margins.length}`,
    );
  }
  let margins = Float64Array.from(hook.margins);
  if (hook.plus) {
    // fdbtrs/ElasticFace: order = argsort(c_y, descending) of the clamped cosines, margin_i =
    // sorted(margins)[order_i] (a gather by the argsort, not a scatter by rank).
    const cy = Array.from({ length: b.N }, (_, i) => unitCosine(cos[i * b.C + b.labels[i]]).c);
    const order = cy.map((_, i) => i).sort((p, q) => cy[q] - cy[p] || p - q);
    const sorted = Float64Array.from(margins).sort();
    margins = Float64Array.from(order, (o) => sorted[o]);
  }
  const { z, slope } = plainLogits(cos, hook.scale);
  for (let i = 0; i < b.N; i++) {
    const k = i * b.C + b.labels[i], u = unitCosine(cos[k]);
    const t = hook.variant === "cos" ? { value: u.c - margins[i], dc: 1 } : arc(u.c, margins[i]);
    z[k] = hook.scale * t.value;
    slope[k] = hook.scale * (gradient === "exact" ? t.dc : 1) * u.pass;
  }
  return { z, slope, state: {}, margins };
}

function logitsOf(
  where: string,
  b: Batch,
  cos: Float64Array,
  norms: Float64Array,
  head: SuccessorHeadSpec,
): Logits {
  const hook = head.successor;
  switch (hook.kind) {
    case "subCenter":
      return {
        ...arcTargets(b, cos, hook.scale, hook.margin, hook.fallback, head.marginGradient),
        state: {},
      };
    case "curricular":
      return curricular(b, cos, hook, head.marginGradient);
    case "adaFace":
      return adaFace(b, cos, norms, hook);
    case "magFace":
      return magFace(b, cos, norms, hook);
    case "adaCos":
      return adaCos(b, cos, where, hook);
    case "elastic":
      return elastic(b, cos, where, hook, head.marginGradient);
    default: {
      const unreachable: never = hook;
      throw new Error(`unreachable successor hook ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * Runs a successor head on a checked batch: cosines of unit rows (x̂ = x / max(‖x‖, 1e-12)), the
 * class reduction (the largest sub-center cosine), the hook's logits, softmax cross-entropy plus
 * any per-sample term, and the backward through the hook, the class reduction (to the arg-max row),
 * both normalisations and, where the hook uses it, the feature norm.
 */
export function successorLoss(
  where: string,
  input: HeadInput,
  head: SuccessorHeadSpec,
  reduction: Reduction,
): SuccessorOutput {
  const K = head.successor.kind === "subCenter" ? head.successor.subCenters : 1;
  const b = checkBatch(where, input, K);
  const { N, D, R, C, x, w, labels } = b;
  const nx = rowNorms(x, D), nw = rowNorms(w, D);
  const cx = nx.map((n) => Math.max(n, NORM_EPS)), cw = nw.map((n) => Math.max(n, NORM_EPS));
  // Class cosines: the largest of each class's K rows (the first on a tie), and which row it was.
  const cos = new Float64Array(N * C), rows = new Int32Array(N * C);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) {
      let best = -Infinity, arg = j * K;
      for (let r = j * K; r < (j + 1) * K; r++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += x[i * D + d] * w[r * D + d];
        const c = dot / (cx[i] * cw[r]);
        if (c > best) [best, arg] = [c, r];
      }
      cos[i * C + j] = best;
      rows[i * C + j] = arg;
    }
  }
  const logits = logitsOf(where, b, cos, nx, head);
  const ce = softmaxCrossEntropy(logits.z, labels, reduction);
  const weight = reductionWeight(reduction, N);
  const losses = ce.losses;
  const gradNorm = new Float64Array(N); // ∂loss/∂‖x_i‖ through the hook
  for (let i = 0; i < N; i++) {
    if (logits.normSlope) gradNorm[i] += ce.gradLogits[i * C + labels[i]] * logits.normSlope[i];
    if (logits.extraLoss) losses[i] += logits.extraLoss[i];
    if (logits.extraNormSlope) gradNorm[i] += weight * logits.extraNormSlope[i];
  }
  const loss = logits.extraLoss ? reduce(losses, reduction) : ce.loss;

  const gx = new Float64Array(N * D), gw = new Float64Array(R * D);
  const gradCx = new Float64Array(N), gradCw = new Float64Array(R);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < C; j++) {
      const k = i * C + j, gc = ce.gradLogits[k] * logits.slope[k];
      if (gc === 0) continue;
      const r = rows[k], c = cos[k], g = gc / (cx[i] * cw[r]);
      gradCx[i] -= gc * c / cx[i];
      gradCw[r] -= gc * c / cw[r];
      for (let d = 0; d < D; d++) {
        gx[i * D + d] += g * w[r * D + d];
        gw[r * D + d] += g * x[i * D + d];
      }
    }
  }
  for (let i = 0; i < N; i++) {
    const coefficient = (nx[i] > NORM_EPS ? gradCx[i] : 0) + gradNorm[i];
    if (nx[i] === 0 || coefficient === 0) continue;
    for (let d = 0; d < D; d++) gx[i * D + d] += coefficient / nx[i] * x[i * D + d];
  }
  for (let r = 0; r < R; r++) {
    if (nw[r] <= NORM_EPS || gradCw[r] === 0) continue;
    for (let d = 0; d < D; d++) gw[r * D + d] += gradCw[r] / nw[r] * w[r * D + d];
  }
  const result: SuccessorOutput = {
    loss,
    losses,
    logits: { rows: N, cols: C, data: logits.z },
    gradFeatures: { rows: N, cols: D, data: gx },
    gradWeights: { rows: R, cols: D, data: gw },
    state: logits.state,
  };
  if (logits.margins) result.margins = logits.margins;
  const checks: [string, ArrayLike<number>][] = [
    ["loss", [loss]],
    ["logits", logits.z],
    ["gradFeatures", gx],
    ["gradWeights", gw],
    ["state", Object.values(logits.state)],
  ];
  for (const [name, data] of checks) assertFiniteOutput(where, name, data);
  return result;
}

// The float64 machine of the successor losses (issue 13): the margin-softmax machine with the three
// hooks of a SuccessorHook (a class reduction, a non-target modification, per-sample and per-batch
// parameters), the state in and out. Imported only by the loss pages of losses/.
import type { SuccessorHeadSpec, SuccessorHook } from "./head_spec.ts";
import type { HeadInput, HeadResult, MarginGradient, Reduction } from "./types.ts";
import { reduce, reductionWeight, softmaxCrossEntropy } from "./cross_entropy.ts";
import { assertFiniteOutput, checkLabels, checkMatrix, rowNorms } from "./_validate.ts";
import { NORM_EPS } from "./_constants.ts";
import {
  arcFaceTargets,
  hardNegative,
  isPerSampleHook,
  type PerSampleHook,
  type SuccessorTargets,
  successorTargets,
  unitCosine,
} from "./successor_targets.ts";
import { adaCosNextScale, adaCosOldScale } from "./adacos_scale.ts";

export { ADAFACE_EPS, ADAFACE_NORM_CLIP } from "./successor_targets.ts";

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
interface Logits extends
  Pick<
    SuccessorTargets,
    "normSlope" | "extraLoss" | "extraNormSlope" | "state" | "margins"
  > {
  /** N×C logits. */
  z: Float64Array;
  /** N×C ∂z_ij/∂c_ij. */
  slope: Float64Array;
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
  const cy = Float64Array.from(b.labels, (y, i) => cos[i * b.C + y]);
  const t = arcFaceTargets(cy, margin, fallback, gradient);
  for (let i = 0; i < b.N; i++) {
    const k = i * b.C + b.labels[i];
    z[k] = scale * t.value[i];
    slope[k] = scale * t.slope[i];
  }
  return { z, slope };
}

type SuccessorHookOf<K extends SuccessorHook["kind"]> = Extract<SuccessorHook, { kind: K }>;

function adaCos(b: Batch, cos: Float64Array, where: string, hook: SuccessorHookOf<"adaCos">) {
  const old = adaCosOldScale(where, hook.scale, b.C);
  let scale = old;
  if (hook.updateScale) {
    // Each sample's ln Σ_{j≠y} exp(s·c_ij) as a log-sum-exp (FaceX-Zoo sums exp directly).
    const logSums = new Float64Array(b.N), targets = new Float64Array(b.N);
    for (let i = 0; i < b.N; i++) {
      const row = cos.subarray(i * b.C, (i + 1) * b.C), y = b.labels[i];
      let max = -Infinity, sum = 0;
      for (let j = 0; j < b.C; j++) if (j !== y) max = Math.max(max, old * row[j]);
      for (let j = 0; j < b.C; j++) if (j !== y) sum += Math.exp(old * row[j] - max);
      logSums[i] = max + Math.log(sum);
      targets[i] = row[y];
    }
    scale = adaCosNextScale(old, logSums, targets);
  }
  const z = new Float64Array(cos.length), slope = new Float64Array(cos.length).fill(scale);
  for (let k = 0; k < cos.length; k++) z[k] = scale * cos[k];
  return { z, slope, state: { scale } };
}

/** CurricularFace: each non-target above its sample's threshold becomes s·c·(t + c), in place. */
function hardNegatives(
  b: Batch,
  cos: Float64Array,
  s: number,
  hard: { t: number; threshold: Float64Array },
  z: Float64Array,
  slope: Float64Array,
): void {
  for (let i = 0; i < b.N; i++) {
    for (let j = 0; j < b.C; j++) {
      const k = i * b.C + j, u = unitCosine(cos[k]);
      if (j === b.labels[i] || !(u.c > hard.threshold[i])) continue;
      const h = hardNegative(u.c, hard.t);
      z[k] = s * h.value;
      slope[k] = s * h.slope * u.pass;
    }
  }
}

/**
 * The logits of a per-sample successor head (ElasticFace, MagFace, AdaFace, CurricularFace) from
 * the terms of losses/successor_targets.ts, which the engines finishing on the host share.
 */
function perSample(
  where: string,
  b: Batch,
  cos: Float64Array,
  norms: Float64Array,
  hook: PerSampleHook,
  gradient: MarginGradient,
): Logits {
  const cy = Float64Array.from({ length: b.N }, (_, i) => cos[i * b.C + b.labels[i]]);
  const t = successorTargets(where, hook, gradient, cy, norms);
  const s = t.scale, [lo, hi] = t.clamp;
  const z = new Float64Array(cos.length), slope = new Float64Array(cos.length);
  for (let k = 0; k < cos.length; k++) {
    const c = cos[k];
    z[k] = s * (c > hi ? hi : c < lo ? lo : c);
    slope[k] = c >= lo && c <= hi ? s : 0;
  }
  if (t.hardNegatives) hardNegatives(b, cos, s, t.hardNegatives, z, slope);
  for (let i = 0; i < b.N; i++) {
    const k = i * b.C + b.labels[i];
    z[k] = s * t.value[i];
    slope[k] = s * t.slope[i];
  }
  const logits: Logits = { z, slope, state: t.state };
  if (t.normSlope) logits.normSlope = t.normSlope.map((v) => s * v);
  if (t.extraLoss) logits.extraLoss = t.extraLoss;
  if (t.extraNormSlope) logits.extraNormSlope = t.extraNormSlope;
  if (t.margins) logits.margins = t.margins;
  return logits;
}

function logitsOf(
  where: string,
  b: Batch,
  cos: Float64Array,
  norms: Float64Array,
  head: SuccessorHeadSpec,
): Logits {
  const hook = head.successor;
  if (isPerSampleHook(hook)) return perSample(where, b, cos, norms, hook, head.marginGradient);
  switch (hook.kind) {
    case "subCenter":
      return {
        ...arcTargets(b, cos, hook.scale, hook.margin, hook.fallback, head.marginGradient),
        state: {},
      };
    case "adaCos":
      return adaCos(b, cos, where, hook);
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

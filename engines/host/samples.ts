/**
 * The per-sample target terms of a run, in float64, shared by the engines that finish their
 * kernels' work on the host (engine-wasm, engine-native; engine-webgpu for the successors): each sample's ‖x_i‖, ‖w_{y_i}‖, target
 * cosine c_iy, f(c_iy) and f′(c_iy) through losses/target.ts (so the margin means what the
 * reference means), the radius factors a_i, b_{y_i} and the target logit z_iy. The target rows are
 * read in float64 (near c = ±1, where f′ grows without bound, float32 would cost accuracy). Pure:
 * plain arrays in, new arrays out; the engines keep their own packing and range checks.
 *
 * A successor head of a per-sample kind (ElasticFace, MagFace, AdaFace, CurricularFace) runs the
 * kernels as a scale-s head without margin ({@linkcode kernelHead}); its targets, radial term, extra
 * loss, state and CurricularFace's hard-negative thresholds come from losses/successor_targets.ts,
 * the maths the float64 reference runs too. Sub-center ArcFace runs them likewise over its C·K rows
 * ({@linkcode kernelSubCenters}: the kernels take each class's largest sub-center cosine); its
 * target is the largest of the K target rows' cosines, in float64, with ArcFace's f(c) of
 * losses/target.ts, and its gradient goes to that row.
 *
 * @module
 */
import type { HeadSpec, SuccessorHeadSpec, SuccessorHook } from "../../losses/head_spec.ts";
import { checkLabels, NORM_EPS } from "../../losses/checks.ts";
import { targetFunction } from "../../losses/target.ts";
import {
  ADAFACE_EPS,
  hardNegative,
  type HardNegatives,
  isPerSampleHook,
  type PerSampleHook,
  subCenterTargets,
  successorTargets,
} from "../../losses/successor_targets.ts";

/**
 * A head an engine that finishes on the host computes: a HeadSpec, a per-sample successor or
 * sub-center ArcFace.
 */
export type HostHeadSpec = HeadSpec | SuccessorHeadSpec;

/** Whether the host computes a successor hook's targets: the per-sample kinds and sub-center. */
function isHostHook(
  hook: SuccessorHook,
): hook is PerSampleHook | Extract<SuccessorHook, { kind: "subCenter" }> {
  return isPerSampleHook(hook) || hook.kind === "subCenter";
}

/**
 * The kernels' sub-center count: K for sub-center ArcFace (the class cosine is the largest of rows
 * c·K … c·K + K − 1, K = 1 included), 0 for every other head (the kernels' plain path).
 */
export function kernelSubCenters(head: HostHeadSpec): number {
  return "successor" in head && head.successor.kind === "subCenter" ? head.successor.subCenters : 0;
}

/**
 * A tile of rows (a multiple of 4) rounded up to a multiple of K too, so that no class of a
 * sub-center head spans two tiles (K ≤ 1: the tile itself).
 */
export function subCenterTile(tile: number, K: number): number {
  if (K <= 1) return tile;
  const step = K % 4 === 0 ? K : K % 2 === 0 ? 2 * K : 4 * K; // lcm(4, K)
  return Math.ceil(tile / step) * step;
}

/**
 * Checks a sub-center head's sizes: W's rows (`shape.classes`, C·K) a multiple of K and, given
 * `labels`, labels in [0, C). Nothing to check for another head.
 */
export function checkSubCenters(
  where: string,
  head: HostHeadSpec,
  rows: number,
  labels?: ArrayLike<number>,
): void {
  const K = kernelSubCenters(head);
  if (K === 0) return;
  if (rows % K !== 0) {
    throw new RangeError(
      `${where}: weights.rows must be a multiple of head.successor.subCenters (K = ${K}: row ` +
        `c·K + k is sub-center k of class c), got ${rows}`,
    );
  }
  if (labels) checkLabels(where, labels, { N: labels.length, C: rows / K });
}

/**
 * Each sample's target rows gathered from W in float64 (sub-center ArcFace: the K rows of its
 * class, the sizes checked first), as {@linkcode SampleRows} read them: a copy the finishing step
 * may read after an await, whatever the caller does to its arrays. `into`, where it has the size,
 * receives them (a prepared head's array from its last run: a new one each run costs more than the
 * copy).
 */
export function gatherTargetRows(
  where: string,
  head: HostHeadSpec,
  w: Float32Array | Float64Array,
  D: number,
  labels: Int32Array,
  into?: Float64Array,
): { w: Float64Array; wRow: Int32Array; subCenters: number } {
  const K = Math.max(kernelSubCenters(head), 1), size = K * D, N = labels.length;
  checkSubCenters(where, head, w.length / D, labels);
  const rows = into?.length === N * size ? into : new Float64Array(N * size);
  for (let i = 0; i < N; i++) {
    rows.set(w.subarray(labels[i] * size, (labels[i] + 1) * size), i * size);
  }
  const wRow = Int32Array.from({ length: N }, (_, i) => i * K);
  return { w: rows, wRow, subCenters: K };
}

/** A prepared head's float64 copies of x and of the target rows from its last run. */
export interface SampleCopies {
  x?: Float64Array;
  w?: Float64Array;
}

/**
 * The rows a run's per-sample maths reads, copied into float64: x and each sample's target rows
 * ({@linkcode gatherTargetRows}), copies the finishing step may read after an await. `copies`: the
 * arrays of the head's last run to copy into where they have the size (a new pair each run cost
 * more than half of engine-wasm's host work at M), updated to this run's; only for a head whose
 * last run has finished with them.
 */
export function copySampleRows(
  where: string,
  head: HostHeadSpec,
  input: { N: number; D: number; x: ArrayLike<number>; w: Float32Array | Float64Array },
  labels: Int32Array,
  copies: SampleCopies = {},
): SampleRows & {
  x: Float64Array;
  w: Float64Array;
  wRow: Int32Array;
  labels: Int32Array;
  subCenters: number;
} {
  const { N, D } = input;
  const gathered = gatherTargetRows(where, head, input.w, D, labels, copies.w);
  const x = copies.x?.length === N * D ? copies.x : new Float64Array(N * D);
  x.set(input.x);
  copies.x = x;
  copies.w = gathered.w;
  return { N, D, labels, x, ...gathered };
}

/**
 * The head the kernels compute: the head itself, or for a successor head the scale-s angular head
 * without margin whose non-target logits s·c_ij it shares (its targets are the host's).
 */
export function kernelHead(head: HostHeadSpec): HeadSpec {
  if (!("successor" in head)) return head;
  const hook = head.successor;
  if (!isHostHook(hook)) {
    throw new RangeError(`head.successor (${JSON.stringify(hook.kind)}) has no host target terms`);
  }
  return {
    name: head.name,
    logits: "angular",
    radius: { kind: "scale", scale: hook.scale },
    margin: { kind: "none" },
    marginGradient: head.marginGradient,
  };
}

/**
 * The range the kernels clamp the non-target cosines to (slope 0 outside it), where the head's is
 * tighter than the cosines' own [−1, 1]: AdaFace's [−1 + ε, 1 − ε], ε = 1e-3 (mk-minchul/AdaFace
 * head.py clamps every cosine). Undefined (no clamp) for every other head.
 */
export function kernelClamp(head: HostHeadSpec): readonly [number, number] | undefined {
  if (!("successor" in head) || head.successor.kind !== "adaFace") return undefined;
  return [-1 + ADAFACE_EPS, 1 - ADAFACE_EPS];
}

/**
 * Whether the kernels change the non-targets above a per-sample threshold (CurricularFace's hard
 * negatives, s·c·(t + c) with slope s·(t + 2c); the thresholds and t come with each run's
 * {@linkcode TargetTerms}).
 */
export function kernelHardNegatives(head: HostHeadSpec): boolean {
  return "successor" in head && head.successor.kind === "curricular";
}

/**
 * A non-target's logit from the one the kernels' plain step gives (z = a_i·b_j·c_ij): z itself, or
 * for CurricularFace's hard negatives (c_ij > threshold_i, compared in float32 as the kernels do)
 * a_i·c·(t + c). For the engines' logits output.
 */
export function nonTargetLogit(s: TargetTerms, i: number, z: number): number {
  const hard = s.hardNegatives;
  if (!hard) return z;
  const c = z / s.a[i];
  return c > Math.fround(hard.threshold[i]) ? s.a[i] * hardNegative(c, hard.t).value : z;
}

/** Where the per-sample maths reads each sample's features and target row (only reads them). */
export interface SampleRows {
  /** N, samples. */
  N: number;
  /** D, dims. */
  D: number;
  /** The N labels y_i (the rows of ∂W and of the bias each target goes to). */
  labels: ArrayLike<number>;
  /** The features x, N×D row-major. */
  x: ArrayLike<number>;
  /** Rows of D holding the targets: W itself (C×D), or its target rows gathered (N×D). */
  w: ArrayLike<number>;
  /**
   * The row of `w` holding w_{y_i}: the labels when `w` is W, i when the rows are gathered; for
   * sub-center ArcFace the first of the K target rows (y_i·K in W, i·K when gathered).
   */
  wRow: ArrayLike<number>;
  /** Sub-center ArcFace's K: sample i's target rows are wRow[i] … wRow[i] + K − 1. @default {1} */
  subCenters?: number;
}

/** Each sample's target terms, float64, length N. */
export interface TargetTerms {
  /** ‖x_i‖. */
  nx: Float64Array;
  /** max(‖x_i‖, ε) (1 for a linear head). */
  cx: Float64Array;
  /** ‖w_{y_i}‖ (0 for a linear head). */
  ny: Float64Array;
  /** max(‖w_{y_i}‖, ε) (0 for a linear head). */
  cy: Float64Array;
  /** The radius factor a_i: z_iy = a_i·b_{y_i}·f(c_iy) (1 for a linear head). */
  a: Float64Array;
  /** The radius factor b_{y_i} (1 for a linear head). */
  b: Float64Array;
  /** The target cosine c_iy (0 for a linear head). */
  tc: Float64Array;
  /** f(c_iy) (0 for a linear head). */
  tv: Float64Array;
  /** f′(c_iy) (0 for a linear head). */
  slope: Float64Array;
  /** The target logit z_iy (x_i·w_{y_i} + b_{y_i} for a linear head). */
  zy: Float64Array;
  /** Successor heads: ∂z_iy/∂‖x_i‖ beyond the radius (MagFace's margin follows the norm). */
  normSlope?: Float64Array;
  /** Successor heads: a term added to each per-sample loss (MagFace's regulariser). */
  extraLoss?: Float64Array;
  /** Successor heads: ∂extraLoss_i/∂‖x_i‖. */
  extraNormSlope?: Float64Array;
  /** Successor heads with state (AdaFace): the state after this step. */
  state?: Record<string, number>;
  /** ElasticFace: the margins as applied. */
  margins?: Float64Array;
  /** Sub-center ArcFace: k of the target's largest sub-center (the first of equal ones). */
  subCenter?: Int32Array;
  /** CurricularFace: t and each sample's threshold of the hard negatives. */
  hardNegatives?: HardNegatives;
}

/** The rows and their target terms: what the losses and the gradients read. */
export type Samples = SampleRows & TargetTerms;

/**
 * Each sample's target terms from its features and target row: for an angular head c_iy, f, f′,
 * a_i, b_{y_i} and z_iy = a_i·b_{y_i}·f(c_iy); for a linear one z_iy = x_i·w_{y_i} + bias_{y_i}.
 * Sums run over k in order, in float64.
 */
export function sampleTerms<R extends SampleRows>(
  head: HostHeadSpec,
  rows: R,
  bias?: ArrayLike<number>,
  where = "engine run",
): R & TargetTerms {
  const { N, D, x, w, wRow, labels } = rows;
  const vec = () => new Float64Array(N);
  const s: R & TargetTerms = {
    ...rows,
    nx: vec(),
    cx: vec(),
    ny: vec(),
    cy: vec(),
    a: vec(),
    b: vec(),
    tc: vec(),
    tv: vec(),
    slope: vec(),
    zy: vec(),
  };
  const target = head.logits === "angular" && !("successor" in head)
    ? targetFunction(head.margin, head.marginGradient)
    : undefined;
  const K = rows.subCenters ?? 1;
  if (K > 1 || kernelSubCenters(head) > 0) s.subCenter = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const xi = i * D;
    let sq = 0;
    for (let k = 0; k < D; k++) sq += x[xi + k] * x[xi + k];
    s.nx[i] = Math.sqrt(sq);
    if (head.logits === "linear") {
      s.cx[i] = s.a[i] = s.b[i] = 1;
      s.zy[i] = rowDot(x, xi, w, wRow[i] * D, D).dot + (bias ? bias[labels[i]] : 0);
      continue;
    }
    s.cx[i] = Math.max(s.nx[i], NORM_EPS);
    closestRow(s, i, K);
    if ("successor" in head) continue;
    const t = target!(s.tc[i]);
    s.tv[i] = t.value;
    s.slope[i] = t.slope;
    s.a[i] = head.radius.kind === "scale" ? head.radius.scale : s.nx[i];
    s.b[i] = head.radius.kind === "normProduct" ? s.ny[i] : 1;
    s.zy[i] = s.a[i] * s.b[i] * t.value;
  }
  if ("successor" in head) successorTerms(where, head, s);
  return s;
}

/** x·w over D elements from offsets xi and wi, and w's squared norm, summed in order in float64. */
function rowDot(x: ArrayLike<number>, xi: number, w: ArrayLike<number>, wi: number, D: number) {
  let dot = 0, wsq = 0;
  for (let k = 0; k < D; k++) {
    const wk = w[wi + k];
    dot += x[xi + k] * wk;
    wsq += wk * wk;
  }
  return { dot, wsq };
}

/**
 * Sample i's target cosine, ‖w_y‖ and max(‖w_y‖, ε): of its one target row, or of the largest of
 * its K sub-center rows (the first of equal ones, as torch.max), whose k goes to `subCenter`.
 */
function closestRow(s: SampleRows & TargetTerms, i: number, K: number): void {
  const { D, x, w, wRow } = s;
  for (let k = 0; k < K; k++) {
    const { dot, wsq } = rowDot(x, i * D, w, (wRow[i] + k) * D, D);
    const ny = Math.sqrt(wsq), cy = Math.max(ny, NORM_EPS), c = dot / (s.cx[i] * cy);
    if (k > 0 && !(c > s.tc[i])) continue;
    s.ny[i] = ny;
    s.cy[i] = cy;
    s.tc[i] = c;
    if (s.subCenter) s.subCenter[i] = k;
  }
}

/**
 * The row of W that sample i's target gradient goes to: y_i, or y_i·K + k for the target's
 * largest sub-center k.
 */
export function targetRow(s: SampleRows & TargetTerms, i: number): number {
  const K = s.subCenters ?? 1;
  return s.labels[i] * K + (s.subCenter ? s.subCenter[i] : 0);
}

/** A successor head's target terms, from the target cosines and norms already in `s`. */
function successorTerms(where: string, head: SuccessorHeadSpec, s: TargetTerms): void {
  const hook = head.successor;
  if (hook.kind !== "subCenter" && !isPerSampleHook(hook)) {
    throw new RangeError(
      `${where}: head.successor (${JSON.stringify(hook.kind)}) has no host terms`,
    );
  }
  // Sub-center ArcFace: ArcFace's target on the class cosine (the largest sub-center's).
  const t = hook.kind === "subCenter"
    ? subCenterTargets(hook, head.marginGradient, s.tc)
    : successorTargets(where, hook, head.marginGradient, s.tc, s.nx);
  const scale = t.scale;
  s.tv.set(t.value);
  s.slope.set(t.slope);
  s.a.fill(scale);
  s.b.fill(1);
  for (let i = 0; i < s.zy.length; i++) s.zy[i] = scale * t.value[i];
  if (t.normSlope) s.normSlope = t.normSlope.map((v) => scale * v);
  if (t.extraLoss) s.extraLoss = t.extraLoss;
  if (t.extraNormSlope) s.extraNormSlope = t.extraNormSlope;
  if (Object.keys(t.state).length > 0) s.state = t.state;
  if (t.margins) s.margins = t.margins;
  if (t.hardNegatives) s.hardNegatives = t.hardNegatives;
}

/**
 * Whether an engine that finishes on the host computes a (checked) successor head, or why not:
 * ElasticFace, MagFace, AdaFace and CurricularFace change the target, whose terms the host
 * computes; AdaFace also clamps every non-target cosine to [−1 + ε, 1 − ε] with zero slope outside,
 * which the kernels do with the range of {@linkcode kernelClamp}; CurricularFace's hard negatives
 * are the kernels' too ({@linkcode kernelHardNegatives}); sub-center ArcFace's class reduction is
 * the kernels' (see {@linkcode kernelSubCenters}), its target the host's; AdaCos is two runs of its
 * scale-only head (engines/adacos.ts).
 */
export function hostSuccessorSupport(engine: string, head: SuccessorHeadSpec): true | string {
  if (isHostHook(head.successor)) return true;
  const kind = head.successor.kind;
  if (kind === "adaCos") return true; // two runs of its scale-only head: engines/adacos.ts
  return `head.successor (${JSON.stringify(kind)}) is a successor hook that ${engine} does not ` +
    `compute: it has no host target terms; the reference does`;
}

/** What a successor head adds to an engine's result: its next state and ElasticFace's margins. */
export function successorOutputs(
  s: TargetTerms,
): { state?: Record<string, number>; margins?: Float64Array } {
  const out: { state?: Record<string, number>; margins?: Float64Array } = {};
  if (s.state) out.state = { ...s.state };
  if (s.margins) out.margins = s.margins;
  return out;
}

/**
 * The per-sample target terms of a run, in float64, shared by the engines that finish their
 * kernels' work on the host (engine-wasm, engine-native): each sample's ‖x_i‖, ‖w_{y_i}‖, target
 * cosine c_iy, f(c_iy) and f′(c_iy) through losses/target.ts (so the margin means what the
 * reference means), the radius factors a_i, b_{y_i} and the target logit z_iy. The target rows are
 * read in float64 (near c = ±1, where f′ grows without bound, float32 would cost accuracy). Pure:
 * plain arrays in, new arrays out; the engines keep their own packing and range checks.
 *
 * A successor head of a per-sample kind (ElasticFace, MagFace, AdaFace, CurricularFace) runs the
 * kernels as a scale-s head without margin ({@linkcode kernelHead}); its targets, radial term, extra
 * loss, state and CurricularFace's hard-negative thresholds come from losses/successor_targets.ts,
 * the maths the float64 reference runs too.
 *
 * @module
 */
import type { HeadSpec, SuccessorHeadSpec } from "../../losses/head_spec.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import { targetFunction } from "../../losses/target.ts";
import {
  ADAFACE_EPS,
  hardNegative,
  type HardNegatives,
  isPerSampleHook,
  successorTargets,
} from "../../losses/successor_targets.ts";

/** A head an engine that finishes on the host computes: a HeadSpec or a per-sample successor. */
export type HostHeadSpec = HeadSpec | SuccessorHeadSpec;

/**
 * The head the kernels compute: the head itself, or for a successor head the scale-s angular head
 * without margin whose non-target logits s·c_ij it shares (its targets are the host's).
 */
export function kernelHead(head: HostHeadSpec): HeadSpec {
  if (!("successor" in head)) return head;
  const hook = head.successor;
  if (!isPerSampleHook(hook)) {
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
  /** The row of `w` holding w_{y_i}: the labels when `w` is W, i when the rows are gathered. */
  wRow: ArrayLike<number>;
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
  for (let i = 0; i < N; i++) {
    const xi = i * D, wi = wRow[i] * D;
    let sq = 0, dot = 0, wsq = 0;
    for (let k = 0; k < D; k++) {
      const xk = x[xi + k], wk = w[wi + k];
      sq += xk * xk;
      dot += xk * wk;
      wsq += wk * wk;
    }
    s.nx[i] = Math.sqrt(sq);
    if (head.logits === "linear") {
      s.cx[i] = s.a[i] = s.b[i] = 1;
      s.zy[i] = dot + (bias ? bias[labels[i]] : 0);
      continue;
    }
    s.cx[i] = Math.max(s.nx[i], NORM_EPS);
    s.ny[i] = Math.sqrt(wsq);
    s.cy[i] = Math.max(s.ny[i], NORM_EPS);
    s.tc[i] = dot / (s.cx[i] * s.cy[i]);
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

/** A successor head's target terms, from the target cosines and norms already in `s`. */
function successorTerms(where: string, head: SuccessorHeadSpec, s: TargetTerms): void {
  const hook = head.successor;
  if (!isPerSampleHook(hook)) {
    throw new RangeError(
      `${where}: head.successor (${JSON.stringify(hook.kind)}) has no host terms`,
    );
  }
  const t = successorTargets(where, hook, head.marginGradient, s.tc, s.nx);
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
 * are the kernels' too ({@linkcode kernelHardNegatives}).
 */
export function hostSuccessorSupport(engine: string, head: SuccessorHeadSpec): true | string {
  const kind = head.successor.kind;
  if (isPerSampleHook(head.successor)) return true;
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

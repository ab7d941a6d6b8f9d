// engine-native's per-run work on the calling thread: the samples before the passes (x̃ into the
// shared memory, each target's terms from engines/host/samples.ts), the row statistics between them
// (log Σ exp, the losses from engines/host/losses.ts, the backward's row factors) and the reading
// of the threads' partial sums after them for engines/host/gradients.ts, all in float64.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import type { RunInput } from "../engine.ts";
import {
  checkSubCenters,
  type HostHeadSpec,
  nonTargetLogit,
  type Samples,
  sampleTerms,
} from "../host/samples.ts";
import { type Losses, lossesOf } from "../host/losses.ts";
import { type RowReader, type RowSums, sampleGradients } from "../host/gradients.ts";
import type { NativeLayout } from "./_tiles.ts";

const WHERE = "engine-native";
const MASKED = -3.4028234663852886e38;

/**
 * Writes the labels and x̃_i = a_i·x_i/max(‖x_i‖, ε) (x_i for a linear head) as float32 into the
 * shared memory, and computes each target's terms from x_i and w_{y_i} in float64 (read in place:
 * a run is synchronous).
 */
export function stageSamples(
  head: HostHeadSpec,
  L: NativeLayout,
  buffer: ArrayBufferLike,
  view: RunInput,
): Samples {
  const { N, D } = L;
  const { x, w, labels, bias } = view;
  checkSubCenters(WHERE, head, L.C, labels);
  new Int32Array(buffer, L.labels, N).set(labels);
  // Sub-center ArcFace: the target class's K rows start at row y·K.
  const K = Math.max(L.subCenters, 1), wRow = K === 1 ? labels : labels.map((y) => y * K);
  const s = sampleTerms(head, { N, D, labels, x, w, wRow, subCenters: K }, bias, WHERE);
  const X = new Float32Array(buffer, L.xt, N * D);
  for (let i = 0; i < N; i++) {
    const xi = i * D, scale = s.a[i] / s.cx[i];
    for (let k = 0; k < D; k++) X[xi + k] = x[xi + k] * scale;
  }
  if (L.hard) stageHardNegatives(L, buffer, s);
  for (let k = 0; k < N * D; k++) {
    if (!Number.isFinite(X[k])) {
      throw new RangeError(
        `${WHERE}: features exceed the float32 range at ${k} (after normalisation and scale)`,
      );
    }
  }
  return s;
}

/** CurricularFace's t, 1/s and thresholds for the epilogue (see _tiles.ts's `hard`). */
function stageHardNegatives(L: NativeLayout, buffer: ArrayBufferLike, s: Samples): void {
  if (!s.hardNegatives) throw new Error(`${WHERE}: a hard-negative layout needs the thresholds`);
  const out = new Float32Array(buffer, L.hard, L.N + 2);
  out[0] = s.hardNegatives.t;
  out[1] = 1 / s.a[0];
  out.set(s.hardNegatives.threshold, 2);
}

/**
 * The N×C logits in place, from the plain ones of the forward pass: CurricularFace's hard
 * negatives changed, each target's z_iy from the host.
 */
export function finishLogits(s: Samples, logits: Float32Array, C: number): void {
  for (let i = 0; i < s.N; i++) {
    if (s.hardNegatives) {
      for (let j = 0; j < C; j++) logits[i * C + j] = nonTargetLogit(s, i, logits[i * C + j]);
    }
    logits[i * C + s.labels[i]] = s.zy[i];
  }
}

/** log Σ_{j≠y} exp z_ij as (max M, Σ exp(z − M)) from the tiles' statistics of row i. */
function nonTargets(m: Float32Array, s: Float32Array, L: NativeLayout, i: number) {
  let M = MASKED;
  for (let t = 0; t < L.tiles; t++) if (s[t * L.N + i] > 0) M = Math.max(M, m[t * L.N + i]);
  let sum = 0;
  for (let t = 0; t < L.tiles; t++) {
    const st = s[t * L.N + i];
    if (st > 0) sum += st * Math.exp(m[t * L.N + i] - M);
  }
  return { M, sum };
}

/**
 * Between the passes: each row's non-target (max, Σ exp) from the tiles' statistics, the losses
 * and 1 − p_y from them (engines/host/losses.ts), and the backward's factors
 * F_ti = weight·e^(m_ti − lse_i) into the shared memory.
 */
export function rowStatistics(
  L: NativeLayout,
  buffer: ArrayBufferLike,
  zy: Float64Array,
  weight: number,
  reduction: Reduction,
  extraLoss?: Float64Array,
): Losses {
  const { N, tiles } = L;
  const m = new Float32Array(buffer, L.m, tiles * N), s = new Float32Array(buffer, L.s, tiles * N);
  const F = new Float32Array(buffer, L.f, tiles * N);
  const stats = new Float64Array(2 * N);
  for (let i = 0; i < N; i++) {
    const { M, sum } = nonTargets(m, s, L, i);
    const top = Math.max(M, zy[i]);
    const lse = top + Math.log(sum * Math.exp(M - top) + Math.exp(zy[i] - top));
    for (let t = 0; t < tiles; t++) {
      F[t * N + i] = s[t * N + i] > 0 ? weight * Math.exp(m[t * N + i] - lse) : 0;
    }
    stats[2 * i] = M;
    stats[2 * i + 1] = sum;
  }
  return lossesOf(stats, zy, N, reduction, extraLoss);
}

/**
 * The threads' partial Σ_j H_ij·w_j (H: ∂loss/∂z_ij·b_j/‖w_j‖, the gradient with respect to x̃),
 * summed in float64, and from them Σ_j ∂loss/∂z_ij·b_j·c_ij.
 */
class ThreadSums implements RowReader {
  constructor(
    readonly s: Samples,
    readonly parts: Float32Array[],
    readonly angular: boolean,
  ) {}
  read(i: number, row: Float64Array): RowSums {
    const { s, parts } = this, { D, x } = s, xi = i * D;
    for (const part of parts) for (let k = 0; k < D; k++) row[k] += part[xi + k];
    if (!this.angular) return { scale: 1, sumx: 0, grada: 0 };
    // row = Σ_j ∂loss/∂z_ij·b_j·ŵ_j over the non-targets; times a_i: Σ_j ∂loss/∂c_ij·ŵ_j.
    const icx = 1 / s.cx[i];
    let grada = 0; // Σ_j ∂loss/∂z_ij·b_j·c_ij
    for (let k = 0; k < D; k++) grada += row[k] * x[xi + k] * icx;
    return { scale: s.a[i] * icx, sumx: s.a[i] * grada, grada };
  }
}

/**
 * After the passes: ∂/∂x from the threads' partial sums; engines/host/gradients.ts adds the
 * row-norm backward of x and each target's whole contribution to ∂/∂x_i and ∂/∂w_{y_i} (and the
 * bias).
 */
export function finishGradients(
  head: HeadSpec,
  s: Samples,
  rest: Float64Array,
  weight: number,
  parts: Float32Array[],
  gradWeights: Float32Array,
  gradBias?: Float32Array,
): Float32Array {
  const radius = head.logits === "angular" ? head.radius.kind : undefined;
  const reader = new ThreadSums(s, parts, radius !== undefined);
  return sampleGradients(s, radius, { rest }, weight, reader, { gradWeights, gradBias });
}

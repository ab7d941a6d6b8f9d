// The host half of a run's upload, pure and synchronous: the caller's arrays are checked against
// float32's range (naming the argument and the caller's own indices), and converted into padded
// float32 staging arrays. An angular head's rows are normalised here, with norms in float64, so
// that no float32 square ever overflows (‖x‖ ≥ 1.8e19 did) and the GPU works on unit rows.
//
// A successor head's per-sample targets are computed here too, in float64, by the host maths the
// other engines share (engines/host/samples.ts): f(c_iy) is staged for the row pass, and the rows
// and terms are kept for the finishing step (the targets' gradients, MagFace's terms, the state).
import { type CheckedHeadView, NORM_EPS } from "../../losses/checks.ts";
import type { SuccessorHeadSpec } from "../../losses/head_spec.ts";
import { copySampleRows, type SampleCopies, type Samples, sampleTerms } from "../host/samples.ts";
import type { Layout } from "./_layout.ts";

/** The validated input of a run, as engines receive it. */
export type RunView = CheckedHeadView;

/** Everything a run uploads, padded to the layout's sizes. */
export interface Staged {
  /** Np×Dp features (normalised rows for an angular head). */
  x: Float32Array<ArrayBuffer>;
  /** Cp×Dp weights (likewise). */
  w: Float32Array<ArrayBuffer>;
  /** Row norms ‖x_i‖ and ‖w_j‖ (angular heads; 0 on padding). */
  nx: Float32Array<ArrayBuffer>;
  nw: Float32Array<ArrayBuffer>;
  labels: Uint32Array<ArrayBuffer>;
  /** Cp biases (zeros without a bias). */
  bias: Float32Array<ArrayBuffer>;
  /** A successor head's f(c_iy) per sample, Np values (empty for other heads). */
  targets: Float32Array<ArrayBuffer>;
  /** CurricularFace's threshold of the hard negatives per sample, Np values (else empty). */
  thresholds: Float32Array<ArrayBuffer>;
}

/** Values at or above this round to Infinity in float32 (2¹²⁸ − 2¹⁰³, half an ulp past the max). */
export const FLOAT32_LIMIT = 3.4028235677973366e38;

/** Zeroed staging arrays for `layout`; padding is never written afterwards, so it stays zero. */
export function createStaging(layout: Layout): Staged {
  const { Np, Cp, Dp } = layout;
  return {
    x: new Float32Array(Np * Dp),
    w: new Float32Array(Cp * Dp),
    nx: new Float32Array(Np),
    nw: new Float32Array(Cp),
    labels: new Uint32Array(Np),
    bias: new Float32Array(Cp),
    targets: new Float32Array(layout.hostTargets ? Np : 0),
    thresholds: new Float32Array(layout.hard ? Np : 0),
  };
}

function outOfRange(where: string, name: string, k: number, cols: number, v: number): Error {
  const at = cols > 0
    ? `${name}.data[${k}] (row ${Math.floor(k / cols)}, column ${k % cols})`
    : `${name}[${k}]`;
  return new RangeError(
    `${where}: ${at} = ${v} is outside float32's range (|v| ≤ 3.4e38); the webgpu engine ` +
      `computes in float32`,
  );
}

/** The first value of `src[from, to)` outside float32's range, as an error; none: undefined. */
function firstOutOfRange(
  where: string,
  name: string,
  src: ArrayLike<number>,
  range: { from: number; to: number; cols: number },
): Error | undefined {
  for (let k = range.from; k < range.to; k++) {
    if (!(Math.abs(src[k]) < FLOAT32_LIMIT)) return outOfRange(where, name, k, range.cols, src[k]);
  }
  return undefined;
}

/** Σ src[k]² over [from, to), in four independent sums (four times the throughput of one). */
function sumOfSquares(src: ArrayLike<number>, from: number, to: number): number {
  let a = 0, b = 0, c = 0, d = 0, k = from;
  for (; k + 3 < to; k += 4) {
    a += src[k] * src[k];
    b += src[k + 1] * src[k + 1];
    c += src[k + 2] * src[k + 2];
    d += src[k + 3] * src[k + 3];
  }
  for (; k < to; k++) a += src[k] * src[k];
  return (a + b) + (c + d);
}

/**
 * Copies `rows` rows of `cols` values from `src` into `out` (rows `stride` apart), checking that
 * each value is within float32's range; with `norms`, stores each row's float64 norm there and
 * the row divided by max(‖row‖, ε). A row's norm bounds its values, so only a row whose norm is
 * past the range is searched for the bad value.
 */
export function stageRows(
  where: string,
  name: string,
  src: ArrayLike<number>,
  shape: { rows: number; cols: number; stride: number; vector?: boolean },
  out: Float32Array,
  norms?: Float32Array,
): void {
  const { rows, cols, stride } = shape;
  for (let r = 0; r < rows; r++) {
    const from = r * cols, to = from + cols, o = r * stride;
    const norm = Math.sqrt(sumOfSquares(src, from, to));
    if (!(norm < FLOAT32_LIMIT)) {
      const bad = firstOutOfRange(where, name, src, { from, to, cols: shape.vector ? 0 : cols });
      if (bad) throw bad;
      if (norms) {
        throw new RangeError(
          `${where}: ${name} row ${r} has norm ${norm.toExponential(3)}, past float32's range ` +
            `(3.4e38); the webgpu engine computes in float32`,
        );
      }
    }
    if (!norms) {
      for (let k = from; k < to; k++) out[o + k - from] = src[k];
      continue;
    }
    if (norm > 0 && norm <= NORM_EPS) {
      // The targets pass takes such a row for a zero vector (c = 0), where the reference divides
      // by max(‖row‖, ε): refused rather than answered differently.
      throw new RangeError(
        `${where}: ${name} row ${r} has norm ${norm.toExponential(3)}, in (0, ${NORM_EPS}]: ` +
          `the webgpu engine computes rows this small as zero; scale them up or use another engine`,
      );
    }
    norms[r] = norm;
    const scale = 1 / Math.max(norm, NORM_EPS);
    for (let k = from; k < to; k++) out[o + k - from] = src[k] * scale;
  }
}

/** Checks and converts a run's input into `into` (see {@linkcode createStaging}). */
export function stageInput(where: string, layout: Layout, view: RunView, into: Staged): void {
  const { N, C, D, Dp, angular } = layout;
  const matrices = [
    { name: "features", src: view.x, rows: N, out: into.x, norms: into.nx },
    { name: "weights", src: view.w, rows: C, out: into.w, norms: into.nw },
  ];
  for (const { name, src, rows, out, norms } of matrices) {
    stageRows(where, name, src, { rows, cols: D, stride: Dp }, out, angular ? norms : undefined);
  }
  into.labels.set(view.labels);
  const vector = { rows: 1, cols: C, stride: C, vector: true };
  if (view.bias) stageRows(where, "bias", view.bias, vector, into.bias);
  else into.bias.fill(0);
}

/**
 * A successor head's rows and target terms of the staged run, in float64 (engines/host/samples.ts,
 * as on engine-wasm and engine-native), with each f(c_iy) staged into `into.targets` (and
 * CurricularFace's thresholds into `into.thresholds`). The rows are copies (x and the target rows
 * of W gathered: sub-center ArcFace's K rows of the target class), since the caller's arrays may
 * change after the run's first await: the host adds the targets' part of ∂x and ∂W from them after
 * the passes. `copies`: the head's arrays of a run that has finished (see copySampleRows).
 */
export function stageTargets(
  where: string,
  head: SuccessorHeadSpec,
  view: RunView,
  into: Staged,
  copies?: SampleCopies,
): Samples {
  const rows = copySampleRows(where, head, view, Int32Array.from(view.labels), copies);
  const samples = sampleTerms(head, rows, undefined, where);
  for (let i = 0; i < rows.N; i++) into.targets[i] = samples.tv[i];
  if (samples.hardNegatives) into.thresholds.set(samples.hardNegatives.threshold);
  return samples;
}

// engine-wasm's host work after the kernels: the threads' partial sums read for the float64
// finishing step (engines/host/losses.ts and gradients.ts), the logits, ∂W out of its padded rows,
// and the checks of the outputs. Pure: plain arrays in, new arrays out (∂W into a given array).
import type { Losses } from "../host/losses.ts";
import {
  type RadiusKind,
  type RowReader,
  type RowSums,
  sampleGradients,
  type TargetGradients,
} from "../host/gradients.ts";
import type { Samples } from "./_inputs.ts";
import { nonTargetLogit } from "../host/samples.ts";

/** One thread's partial sums, as the kernels leave them (float64). */
export interface ThreadPart {
  /** Np×Dp: Σ_j g_ij·w_j over the thread's classes. */
  gx: ArrayLike<number>;
  /** Np: Σ_j gc_ij·c_ij. */
  sumx: ArrayLike<number>;
  /** Np: Σ_j gz_ij·b_j·c_ij (the radius gradient). */
  grada: ArrayLike<number>;
}

/** The threads' partial sums of a sample, added in float64. */
class ThreadSums implements RowReader {
  constructor(readonly s: Samples, readonly parts: ThreadPart[], readonly Dp: number) {}
  read(i: number, row: Float64Array): RowSums {
    const D = this.s.D, at = i * this.Dp;
    let sumx = 0, grada = 0;
    for (const part of this.parts) {
      for (let k = 0; k < D; k++) row[k] += part.gx[at + k];
      sumx += part.sumx[i];
      grada += part.grada[i];
    }
    return { scale: 1 / this.s.cx[i], sumx, grada };
  }
}

/**
 * ∂loss/∂x (N×D), returned, from the threads' partial sums, and the targets' contributions added
 * to ∂W and ∂b in place (engines/host/gradients.ts does the maths). `weight` is the reduction's
 * factor per sample.
 */
export function gradFeaturesOf(
  s: Samples,
  radius: RadiusKind,
  parts: ThreadPart[],
  losses: Losses,
  weight: number,
  Dp: number,
  targets: TargetGradients,
): Float32Array {
  return sampleGradients(s, radius, losses, weight, new ThreadSums(s, parts, Dp), targets);
}

/**
 * The N×C logits: a_i·b_j·c_ij from the class-major cosines (b_j = ‖w_j‖ from `nw` for a
 * normProduct radius; c_ij clamped to `clamp` where the kernels clamp it; CurricularFace's hard
 * negatives changed; for `subCenters` K > 1 the largest of rows j·K … j·K + K − 1), the targets'
 * z_iy from the host.
 */
export function logitsOf(
  s: Samples,
  cos: ArrayLike<number>,
  Np: number,
  C: number,
  nw?: ArrayLike<number>,
  clamp?: readonly [number, number],
  subCenters = 1,
): Float32Array {
  const out = new Float32Array(s.N * C);
  for (let i = 0; i < s.N; i++) {
    for (let j = 0; j < C; j++) {
      let c = cos[j * subCenters * Np + i];
      for (let k = 1; k < subCenters; k++) c = Math.max(c, cos[(j * subCenters + k) * Np + i]);
      if (clamp) c = Math.min(Math.max(c, clamp[0]), clamp[1]);
      out[i * C + j] = nonTargetLogit(s, i, s.a[i] * (nw ? nw[j] : 1) * c);
    }
    out[i * C + s.labels[i]] = s.zy[i];
  }
  return out;
}

/** The C×D rows out of the kernels' C×Dp array, into `out` (a new array by default). */
export function unpad(
  padded: Float32Array,
  rows: number,
  D: number,
  Dp: number,
  out: Float32Array = new Float32Array(rows * D),
): Float32Array {
  if (D === Dp) {
    out.set(padded.subarray(0, rows * D));
    return out;
  }
  for (let j = 0; j < rows; j++) out.set(padded.subarray(j * Dp, j * Dp + D), j * D);
  return out;
}

/** Throws, naming the output and the element, unless every element is finite. */
export function checkFiniteOutput(
  where: string,
  name: string,
  data: ArrayLike<number>,
  cols: number,
  first = 0,
): void {
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) {
      const at = first + k;
      throw new RangeError(
        `${where}: ${name} overflowed float32 at ${at} (row ${Math.floor(at / cols)}, column ` +
          `${at % cols}): the inputs are valid but this float32 engine cannot represent the result`,
      );
    }
  }
}

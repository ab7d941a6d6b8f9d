// engine-wasm's host work before the kernels: the range checks, float64 copies of x and of the
// target rows (each sample's target terms from them in engines/host/samples.ts), and the packing of
// x̂ and W for the kernels. Plain arrays in, plain arrays out (the float64 copies into a head's
// arrays of its last run where given); those copies are all that the finishing step reads, never
// the caller's arrays.
import {
  copySampleRows,
  type HostHeadSpec,
  type SampleCopies,
  type Samples as HostSamples,
  sampleTerms,
} from "../host/samples.ts";

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** Whether a number rounds to a finite float32 (NaN does not). */
export function fitsFloat32(v: number): boolean {
  return Math.abs(Math.fround(v)) <= FLOAT32_MAX;
}

/**
 * Throws unless every value rounds to a finite float32, naming the argument and the index (and the
 * row and column when `cols` is given) in the caller's own indexing.
 */
export function checkFloat32(
  where: string,
  name: string,
  data: ArrayLike<number>,
  cols?: number,
  first = 0,
): void {
  for (let k = 0; k < data.length; k++) {
    if (!fitsFloat32(data[k])) throw float32Error(where, name, first + k, data[k], cols);
  }
}

/** The error for a value of `name` at flat index `k` beyond float32. */
export function float32Error(
  where: string,
  name: string,
  k: number,
  value: number | undefined,
  cols?: number,
): RangeError {
  const at = cols ? `${k} (row ${Math.floor(k / cols)}, column ${k % cols})` : `${k}`;
  const got = value === undefined ? "a larger value" : String(value);
  return new RangeError(
    `${where}: ${name} must lie within float32's range (±${FLOAT32_MAX.toPrecision(5)}) for this ` +
      `float32 engine, got ${got} at ${at}`,
  );
}

/**
 * A run's samples in float64 (engines/host/samples.ts): copies of x and of the N target rows of W
 * (row i is w_{y_i}), so that the finishing step, after the kernels' await, never reads the
 * caller's arrays.
 */
export interface Samples extends HostSamples {
  labels: Int32Array;
  x: Float64Array;
  w: Float64Array;
  wRow: Int32Array;
}

/** What a run reads of its input (the caller's arrays, only read). */
export interface SampleInput {
  N: number;
  D: number;
  x: Float64Array | Float32Array;
  w: Float64Array | Float32Array;
  labels: ArrayLike<number>;
  bias?: ArrayLike<number>;
}

/**
 * Copies what the run needs of the samples and their target rows (sub-center ArcFace: the K rows
 * of the target class) into float64 (`copies`: the head's last run's arrays, see
 * {@linkcode copySampleRows}; runs of one head never overlap), checks them against float32's
 * range, and computes each target's cosine, f, f′ and logit.
 */
export function sampleMaths(
  where: string,
  head: HostHeadSpec,
  input: SampleInput,
  copies: SampleCopies = {},
): Samples {
  const rowsOf = copySampleRows(where, head, input, Int32Array.from(input.labels), copies);
  const { N, D, x, labels } = rowsOf, size = rowsOf.subCenters * D;
  checkFloat32(where, "features", x, D);
  for (let i = 0; i < N; i++) {
    const row = rowsOf.w.subarray(i * size, (i + 1) * size);
    checkFloat32(where, "weights", row, D, labels[i] * size);
  }
  const s = sampleTerms(head, rowsOf, input.bias, where);
  const big = s.a.findIndex((a) => !fitsFloat32(a));
  if (head.logits === "angular" && !("successor" in head) && big >= 0) {
    throw new RangeError(
      `${where}: the norm of features row ${big} is ${s.a[big]}, beyond float32's range (it is ` +
        `the radius of a "${head.radius.kind}" head)`,
    );
  }
  const far = s.zy.findIndex((z) => !fitsFloat32(z));
  if (far >= 0) {
    throw new RangeError(
      `${where}: the target logit of sample ${far} is ${s.zy[far]}, beyond float32's range: ` +
        "features or weights too large for this float32 engine",
    );
  }
  return s;
}

/** The run's sample arrays in the shared memory (views). */
export interface SampleSlots {
  /** (Np/8)×Dp×8: x̂ (angular) or x (linear) by blocks of 8 samples. */
  xpack: Float32Array;
  /** (Dp/8)×Np×8: the same by blocks of 8 features. */
  xpackk: Float32Array;
  a: Float32Array;
  zy: Float64Array;
  labels: Int32Array;
  weight: Float32Array;
}

/** Writes the samples into the kernels' arrays; padding rows keep label −1 and weight 0. */
export function packSamples(s: Samples, out: SampleSlots, Dp: number, weight: number): void {
  const { N, D } = s, Np = out.labels.length;
  for (let i = 0; i < N; i++) {
    const inv = 1 / s.cx[i];
    for (let k = 0; k < D; k++) {
      const v = s.x[i * D + k] * inv;
      out.xpack[(i >> 3) * Dp * 8 + k * 8 + (i & 7)] = v;
      out.xpackk[(k >> 3) * Np * 8 + i * 8 + (k & 7)] = v;
    }
  }
  out.a.set(s.a);
  out.zy.set(s.zy);
  out.labels.fill(-1).set(s.labels);
  out.weight.fill(0).fill(weight, 0, N);
}

/** Copies W (C×D) into the kernels' C×Dp rows; the padding stays as it is (zero). */
export function layOutWeights(
  out: Float32Array,
  w: Float32Array | Float64Array,
  D: number,
  Dp: number,
) {
  if (D === Dp) return out.set(w);
  const C = w.length / D;
  for (let j = 0; j < C; j++) out.set(w.subarray(j * D, j * D + D), j * Dp);
}

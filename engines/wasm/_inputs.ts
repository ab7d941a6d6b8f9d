// The host maths of a run before the kernels, in float64: the range checks, each sample's norms,
// target logit and target slope (through losses/target.ts, so the margin means what the reference
// means), and the packing of x̂ for the kernels. Pure: plain arrays in, plain arrays out; the float64
// copies it returns are all that the finishing step reads, never the caller's arrays.
import type { HeadSpec } from "../../losses/head_spec.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import { targetFunction } from "../../losses/target.ts";

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

/** A run's samples in float64: copies and derived numbers, length N (N×D for x and wy). */
export interface Samples {
  N: number;
  D: number;
  angular: boolean;
  labels: Int32Array;
  /** The features, row-major. */
  x: Float64Array;
  /** The target rows of W: row i is w_{y_i}. */
  wy: Float64Array;
  /** ‖x_i‖, max(‖x_i‖, ε) (1 for a linear head), ‖w_y‖, max(‖w_y‖, ε). */
  nx: Float64Array;
  cx: Float64Array;
  ny: Float64Array;
  cy: Float64Array;
  /** The radius factors a_i and b_{y_i}: z_iy = a_i·b_i·f(c_iy). */
  a: Float64Array;
  b: Float64Array;
  /** The target cosine c_iy, f(c_iy) and f′(c_iy). */
  tc: Float64Array;
  tv: Float64Array;
  slope: Float64Array;
  /** The target logit z_iy. */
  zy: Float64Array;
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
 * Copies what the run needs of the samples and their target rows into float64, checks them against
 * float32's range, and computes each target's cosine, f, f′ and logit.
 */
export function sampleMaths(where: string, head: HeadSpec, input: SampleInput): Samples {
  const { N, D } = input, angular = head.logits === "angular";
  const vec = () => new Float64Array(N);
  const s: Samples = {
    N,
    D,
    angular,
    labels: Int32Array.from(input.labels),
    x: Float64Array.from(input.x),
    wy: new Float64Array(N * D),
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
  checkFloat32(where, "features", s.x, D);
  for (let i = 0; i < N; i++) {
    const y = s.labels[i], row = input.w.subarray(y * D, y * D + D);
    s.wy.set(row, i * D);
    checkFloat32(where, "weights", row, D, y * D);
  }
  if (angular) angularTargets(where, head, s);
  else linearTargets(s, input.bias);
  for (let i = 0; i < N; i++) {
    if (!fitsFloat32(s.zy[i])) {
      throw new RangeError(
        `${where}: the target logit of sample ${i} is ${s.zy[i]}, beyond float32's range: ` +
          "features or weights too large for this float32 engine",
      );
    }
  }
  return s;
}

function norm(v: Float64Array, at: number, D: number): number {
  let sq = 0;
  for (let k = 0; k < D; k++) sq += v[at + k] ** 2;
  return Math.sqrt(sq);
}

function dot(u: Float64Array, v: Float64Array, at: number, D: number): number {
  let sum = 0;
  for (let k = 0; k < D; k++) sum += u[at + k] * v[at + k];
  return sum;
}

function linearTargets(s: Samples, bias: ArrayLike<number> | undefined): void {
  for (let i = 0; i < s.N; i++) {
    s.nx[i] = norm(s.x, i * s.D, s.D);
    s.cx[i] = s.a[i] = s.b[i] = 1;
    s.zy[i] = dot(s.x, s.wy, i * s.D, s.D) + (bias ? bias[s.labels[i]] : 0);
  }
}

function angularTargets(where: string, head: HeadSpec & { logits: "angular" }, s: Samples): void {
  const target = targetFunction(head.margin, head.marginGradient), kind = head.radius.kind;
  for (let i = 0; i < s.N; i++) {
    const at = i * s.D;
    s.nx[i] = norm(s.x, at, s.D);
    s.cx[i] = Math.max(s.nx[i], NORM_EPS);
    s.ny[i] = norm(s.wy, at, s.D);
    s.cy[i] = Math.max(s.ny[i], NORM_EPS);
    s.tc[i] = dot(s.x, s.wy, at, s.D) / (s.cx[i] * s.cy[i]);
    const t = target(s.tc[i]);
    s.tv[i] = t.value;
    s.slope[i] = t.slope;
    s.a[i] = head.radius.kind === "scale" ? head.radius.scale : s.nx[i];
    s.b[i] = kind === "normProduct" ? s.ny[i] : 1;
    s.zy[i] = s.a[i] * s.b[i] * t.value;
    if (!fitsFloat32(s.a[i])) {
      throw new RangeError(
        `${where}: the norm of features row ${i} is ${s.a[i]}, beyond float32's range (it is ` +
          `the radius of a "${kind}" head)`,
      );
    }
  }
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

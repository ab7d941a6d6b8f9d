// The host maths of a run after the kernels, in float64: losses from the non-target statistics,
// ∂/∂x from the threads' partial sums with the row-norm backward, and each target's whole
// contribution (f′(c) grows without bound near c = 1, where float32 cancellation would cost
// accuracy). Pure: plain arrays in, new arrays out.
import type { Radius } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import { reduce } from "../../losses/cross_entropy.ts";
import type { Samples } from "./_inputs.ts";

/** Per-sample losses, the reduced loss, and rest_i = 1 − p_iy = Σ_{j≠y} p_ij. */
export interface Losses {
  loss: number;
  losses: Float64Array;
  rest: Float64Array;
}

/**
 * Losses from each sample's non-target max M_i and Σ_{j≠y} e^(z_ij − M_i) (`stats`, pairs) and
 * its target logit: loss_i = log(1 + q_i) with q_i = Σ_{j≠y} e^(z_ij − z_iy), which keeps its
 * relative precision when the target dominates (no log Σ − z_y cancellation); 1 − p_y = q/(1 + q)
 * likewise, so the target's gradient p_y − 1 = −Σ_{j≠y} p_j never cancels.
 */
export function lossesOf(
  stats: ArrayLike<number>,
  zy: ArrayLike<number>,
  N: number,
  reduction: Reduction,
): Losses {
  const losses = new Float64Array(N), rest = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const gap = stats[2 * i] - zy[i], sum = stats[2 * i + 1];
    const q = sum * Math.exp(gap);
    if (Number.isFinite(q)) {
      losses[i] = Math.log1p(q);
      rest[i] = q / (1 + q);
    } else {
      losses[i] = gap + Math.log(sum + Math.exp(-gap));
      rest[i] = 1 / (1 + Math.exp(-gap) / sum);
    }
  }
  return { loss: reduce(losses, reduction), losses, rest };
}

/** One thread's partial sums, as the kernels leave them (float64). */
export interface ThreadPart {
  /** Np×Dp: Σ_j g_ij·w_j over the thread's classes. */
  gx: ArrayLike<number>;
  /** Np: Σ_j gc_ij·c_ij. */
  sumx: ArrayLike<number>;
  /** Np: Σ_j gz_ij·b_j·c_ij (the radius gradient). */
  grada: ArrayLike<number>;
}

/**
 * ∂loss/∂x (N×D): the threads' partial sums added in float64, the backward of x̂ = x/‖x‖ and of
 * the radius, and the target's term. `weight` is the reduction's factor per sample.
 */
export function gradFeaturesOf(
  s: Samples,
  radius: Radius["kind"] | undefined,
  parts: ThreadPart[],
  losses: Losses,
  weight: number,
  Dp: number,
): Float32Array {
  const { N, D } = s;
  const out = new Float32Array(N * D), row = new Float64Array(D);
  for (let i = 0; i < N; i++) {
    row.fill(0);
    let sumx = 0, grada = 0;
    for (const part of parts) {
      for (let k = 0; k < D; k++) row[k] += part.gx[i * Dp + k];
      sumx += part.sumx[i];
      grada += part.grada[i];
    }
    const gzy = -weight * losses.rest[i]; // ∂loss/∂z_iy
    if (radius === undefined) {
      for (let k = 0; k < D; k++) out[i * D + k] = row[k] + gzy * s.wy[i * D + k];
    } else {
      angularFeatureRow(s, radius, i, { row, sumx, grada, gzy }, out);
    }
  }
  return out;
}

function angularFeatureRow(
  s: Samples,
  radius: Radius["kind"],
  i: number,
  sums: { row: Float64Array; sumx: number; grada: number; gzy: number },
  out: Float32Array,
): void {
  const { D, x, wy } = s, { row, gzy } = sums;
  const nx = s.nx[i], icx = 1 / s.cx[i], icy = 1 / s.cy[i], c = s.tc[i];
  // The norm radius: ∂z/∂a summed over classes, the target's included.
  const grada = radius === "scale" ? 0 : sums.grada + gzy * s.b[i] * s.tv[i];
  const coef = (nx > NORM_EPS ? -sums.sumx * icx : 0) + grada;
  const fx = nx > 0 ? coef / nx : 0;
  // The target cosine, in float64: dc/dx with the normalisation backward.
  const gc = gzy * s.a[i] * s.b[i] * s.slope[i], xNorm = nx > NORM_EPS ? 1 : 0;
  for (let k = 0; k < D; k++) {
    const xk = x[i * D + k], xh = xk * icx, wh = wy[i * D + k] * icy;
    out[i * D + k] = row[k] * icx + fx * xk + gc * (wh - xNorm * c * xh) * icx;
  }
}

/**
 * Adds each target's contribution to ∂loss/∂W (and ∂loss/∂b) in place: the kernels leave targets
 * out.
 */
export function addTargetGradients(
  s: Samples,
  radius: Radius["kind"] | undefined,
  losses: Losses,
  weight: number,
  gradWeights: Float32Array,
  gradBias?: Float32Array,
): void {
  const { N, D, x, wy } = s;
  for (let i = 0; i < N; i++) {
    const y = s.labels[i], gzy = -weight * losses.rest[i];
    if (radius === undefined) {
      for (let k = 0; k < D; k++) gradWeights[y * D + k] += gzy * x[i * D + k];
      if (gradBias) gradBias[y] += gzy;
      continue;
    }
    const ny = s.ny[i], icx = 1 / s.cx[i], icy = 1 / s.cy[i], c = s.tc[i];
    // ‖w_y‖ as the radius (L-Softmax): its gradient along w_y/‖w_y‖.
    const fw = radius === "normProduct" && ny > 0 ? gzy * s.a[i] * s.tv[i] / ny : 0;
    const gc = gzy * s.a[i] * s.b[i] * s.slope[i], wNorm = ny > NORM_EPS ? 1 : 0;
    for (let k = 0; k < D; k++) {
      const wk = wy[i * D + k], xh = x[i * D + k] * icx, wh = wk * icy;
      gradWeights[y * D + k] += gc * (xh - wNorm * c * wh) * icy + fw * wk;
    }
  }
}

/**
 * The N×C logits: a_i·b_j·c_ij from the class-major cosines (b_j = ‖w_j‖ from `nw` for a
 * normProduct radius), the targets' z_iy from the host.
 */
export function logitsOf(
  s: Samples,
  cos: ArrayLike<number>,
  Np: number,
  C: number,
  nw?: ArrayLike<number>,
): Float32Array {
  const out = new Float32Array(s.N * C);
  for (let i = 0; i < s.N; i++) {
    for (let j = 0; j < C; j++) out[i * C + j] = s.a[i] * (nw ? nw[j] : 1) * cos[j * Np + i];
    out[i * C + s.labels[i]] = s.zy[i];
  }
  return out;
}

/** The C×D rows out of the kernels' C×Dp array, as a new array. */
export function unpad(padded: Float32Array, rows: number, D: number, Dp: number): Float32Array {
  if (D === Dp) return padded.slice(0, rows * D);
  const out = new Float32Array(rows * D);
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

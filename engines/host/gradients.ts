/**
 * The per-sample gradients after the kernels, in float64, shared by engine-wasm and engine-native
 * (and engine-webgpu for a successor head's targets):
 * ∂loss/∂x from the kernels' non-target sums with the row-norm backward of x and the radius, and
 * each target's whole contribution to ∂x_i, ∂w_{y_i} (and the bias). The kernels leave the targets
 * out: f′(c) grows without bound near c = ±1, where float32 cancellation would cost accuracy.
 *
 * @module
 */
import type { Radius } from "../../losses/head_spec.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import { type Samples, targetRow } from "./samples.ts";

/** The head's radius kind, or undefined for a linear head. */
export type RadiusKind = Radius["kind"] | undefined;

/** A sample's non-target sums, as an engine reads them from its kernels' partial sums. */
export interface RowSums {
  /** The factor from `row` to ∂/∂x_i before the norm backward: 1/max(‖x_i‖, ε) times its scale. */
  scale: number;
  /** Σ_{j≠y} ∂loss/∂c_ij·c_ij. */
  sumx: number;
  /** Σ_{j≠y} ∂loss/∂z_ij·b_j·c_ij (the radius gradient, targets out). */
  grada: number;
}

/**
 * An engine's reading of its kernels' partial sums, sample by sample. Engines implement it as a
 * class, so that `read` is one function from run to run and keeps its compiled code (a closure made
 * per run was recompiled, and ran up to 3× slower, at every run).
 */
export interface RowReader {
  /**
   * Fills `row` (zeroed, D) with sample i's non-target sum over classes (∂loss/∂x_i for a linear
   * head) and returns its other sums (ignored for a linear head).
   */
  read(i: number, row: Float64Array): RowSums;
}

/** ∂loss/∂W (C×D) and ∂loss/∂b, to which the targets' contributions are added in place. */
export interface TargetGradients {
  /** ∂loss/∂W, C×D. */
  gradWeights: Float32Array;
  /** ∂loss/∂b, C values, for a head with a bias. */
  gradBias?: Float32Array;
}

/**
 * ∂loss/∂x (N×D), returned: each row's non-target sums from `reader`, the backward of x̂ = x/‖x‖ and
 * of the radius, and the target's term; and each target's contribution to ∂W (and ∂b), added in
 * place in the same pass (the kernels leave the targets out). `weight` is the reduction's factor
 * per sample.
 */
export function sampleGradients(
  s: Samples,
  radius: RadiusKind,
  losses: { rest: ArrayLike<number> },
  weight: number,
  reader: RowReader,
  targets: TargetGradients,
): Float32Array {
  const { N, D } = s;
  const out = new Float32Array(N * D), row = new Float64Array(D);
  for (let i = 0; i < N; i++) {
    row.fill(0);
    const sums = reader.read(i, row);
    const gzy = -weight * losses.rest[i]; // ∂loss/∂z_iy
    // A successor head's ∂loss/∂‖x_i‖ beyond the radius (MagFace: its margin and regulariser).
    const radial = (s.normSlope ? gzy * s.normSlope[i] : 0) +
      (s.extraNormSlope ? weight * s.extraNormSlope[i] : 0);
    if (radius === undefined) linearRow(s, i, row, gzy, out, targets);
    else angularRow(s, radius, i, row, sums, gzy, radial, out, targets.gradWeights);
  }
  return out;
}

function linearRow(
  s: Samples,
  i: number,
  row: Float64Array,
  gzy: number,
  out: Float32Array,
  { gradWeights, gradBias }: TargetGradients,
): void {
  const { D, x, w } = s, xi = i * D, wi = s.wRow[i] * D, y = s.labels[i], yi = y * D;
  for (let k = 0; k < D; k++) {
    out[xi + k] = row[k] + gzy * w[wi + k];
    gradWeights[yi + k] += gzy * x[xi + k];
  }
  if (gradBias) gradBias[y] += gzy;
}

/** Sample i's ∂x row and its target's ∂W row, in one pass over x_i and w_{y_i}. */
function angularRow(
  s: Samples,
  radius: Radius["kind"],
  i: number,
  row: Float64Array,
  sums: RowSums,
  gzy: number,
  radial: number,
  out: Float32Array,
  gradWeights: Float32Array,
): void {
  // The target's row: w_{y_i}, or its largest sub-center (whose row of ∂W gets the gradient).
  const k0 = s.subCenter ? s.subCenter[i] : 0;
  const { D, x, w } = s, xi = i * D, wi = (s.wRow[i] + k0) * D, yi = targetRow(s, i) * D;
  const nx = s.nx[i], ny = s.ny[i], icx = 1 / s.cx[i], icy = 1 / s.cy[i], c = s.tc[i];
  // The norm radius: ∂z/∂a summed over classes, the target's included.
  const grada = (radius === "scale" ? 0 : sums.grada + gzy * s.b[i] * s.tv[i]) + radial;
  const coef = (nx > NORM_EPS ? -sums.sumx * icx : 0) + grada;
  const fx = nx > 0 ? coef / nx : 0;
  // ‖w_y‖ as the radius (L-Softmax): its gradient along w_y/‖w_y‖.
  const fw = radius === "normProduct" && ny > 0 ? gzy * s.a[i] * s.tv[i] / ny : 0;
  // The target cosine, in float64: dc/dx and dc/dw_y with the normalisation backward.
  const gc = gzy * s.a[i] * s.b[i] * s.slope[i], scale = sums.scale;
  const xNorm = nx > NORM_EPS ? 1 : 0, wNorm = ny > NORM_EPS ? 1 : 0;
  for (let k = 0; k < D; k++) {
    const xk = x[xi + k], wk = w[wi + k], xh = xk * icx, wh = wk * icy;
    out[xi + k] = row[k] * scale + fx * xk + gc * (wh - xNorm * c * xh) * icx;
    gradWeights[yi + k] += gc * (xh - wNorm * c * wh) * icy + fw * wk;
  }
}

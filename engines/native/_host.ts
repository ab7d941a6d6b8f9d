// engine-native's per-run work on the calling thread, in float64: the samples before the passes
// (x̃ into the shared memory, each target's terms), the row statistics between them (log Σ exp,
// the losses, the backward's row factors) and the per-sample gradients after them.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import { targetFunction } from "../../losses/target.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import type { RunInput } from "../engine.ts";
import type { NativeLayout } from "./_tiles.ts";

const WHERE = "engine-native";
const MASKED = -3.4028234663852886e38;

/** Per-sample terms of a run, float64. */
export interface Samples {
  /** ‖x_i‖ and max(‖x_i‖, ε). */
  nx: Float64Array;
  cx: Float64Array;
  /** Radius factors a_i and, for the target, b_{y_i}. */
  a: Float64Array;
  b: Float64Array;
  /** ‖w_{y_i}‖ and max(‖w_{y_i}‖, ε). */
  ny: Float64Array;
  cy: Float64Array;
  /** The target's cosine c, f(c), f′(c), and its logit z_iy. */
  tc: Float64Array;
  tv: Float64Array;
  slope: Float64Array;
  zy: Float64Array;
}

/**
 * Writes the labels and x̃_i = a_i·x_i/max(‖x_i‖, ε) (x_i for a linear head) as float32 into the
 * shared memory, and computes each target's terms from x_i and w_{y_i} in float64.
 */
export function stageSamples(
  head: HeadSpec,
  L: NativeLayout,
  buffer: ArrayBufferLike,
  view: RunInput,
): Samples {
  const { N, D } = L;
  const { x, w, labels, bias } = view;
  const f = () => new Float64Array(N);
  const s: Samples = {
    nx: f(),
    cx: f(),
    a: f(),
    b: f(),
    ny: f(),
    cy: f(),
    tc: f(),
    tv: f(),
    slope: f(),
    zy: f(),
  };
  const X = new Float32Array(buffer, L.xt, N * D);
  new Int32Array(buffer, L.labels, N).set(labels);
  const target = head.logits === "angular"
    ? targetFunction(head.margin, head.marginGradient)
    : undefined;
  for (let i = 0; i < N; i++) {
    const xi = i * D, wi = labels[i] * D;
    let sq = 0, dot = 0, wsq = 0;
    for (let k = 0; k < D; k++) {
      const xk = x[xi + k], wk = w[wi + k];
      sq += xk * xk;
      dot += xk * wk;
      wsq += wk * wk;
    }
    s.nx[i] = Math.sqrt(sq);
    if (head.logits === "linear") {
      for (let k = 0; k < D; k++) X[xi + k] = x[xi + k];
      s.a[i] = s.b[i] = s.cx[i] = 1;
      s.zy[i] = dot + (bias ? bias[labels[i]] : 0);
      continue;
    }
    s.cx[i] = Math.max(s.nx[i], NORM_EPS);
    s.ny[i] = Math.sqrt(wsq);
    s.cy[i] = Math.max(s.ny[i], NORM_EPS);
    s.a[i] = head.radius.kind === "scale" ? head.radius.scale : s.nx[i];
    s.b[i] = head.radius.kind === "normProduct" ? s.ny[i] : 1;
    const scale = s.a[i] / s.cx[i];
    for (let k = 0; k < D; k++) X[xi + k] = x[xi + k] * scale;
    s.tc[i] = dot / (s.cx[i] * s.cy[i]);
    const t = target!(s.tc[i]);
    s.tv[i] = t.value;
    s.slope[i] = t.slope;
    s.zy[i] = s.a[i] * s.b[i] * t.value;
  }
  for (let k = 0; k < N * D; k++) {
    if (!Number.isFinite(X[k])) {
      throw new RangeError(
        `${WHERE}: features exceed the float32 range at ${k} (after normalisation and scale)`,
      );
    }
  }
  return s;
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
 * Between the passes: each row's log Σ_j exp z_ij from the tiles' (max, sum) and the target, the
 * losses as log(1 + Σ_{j≠y} e^(z_j − z_y)) (precise when the target dominates) with 1 − p_y, and
 * the backward's factors F_ti = weight·e^(m_ti − lse_i) into the shared memory.
 */
export function rowStatistics(
  L: NativeLayout,
  buffer: ArrayBufferLike,
  zy: Float64Array,
  weight: number,
  reduction: Reduction,
): { loss: number; losses: Float64Array; rest: Float64Array } {
  const { N, tiles } = L;
  const m = new Float32Array(buffer, L.m, tiles * N), s = new Float32Array(buffer, L.s, tiles * N);
  const F = new Float32Array(buffer, L.f, tiles * N);
  const losses = new Float64Array(N), rest = new Float64Array(N);
  let total = 0;
  for (let i = 0; i < N; i++) {
    const { M, sum } = nonTargets(m, s, L, i);
    const top = Math.max(M, zy[i]);
    const lse = top + Math.log(sum * Math.exp(M - top) + Math.exp(zy[i] - top));
    for (let t = 0; t < tiles; t++) {
      F[t * N + i] = s[t * N + i] > 0 ? weight * Math.exp(m[t * N + i] - lse) : 0;
    }
    const gap = M - zy[i];
    const q = sum * Math.exp(gap);
    if (Number.isFinite(q)) {
      losses[i] = Math.log1p(q);
      rest[i] = q / (1 + q);
    } else {
      losses[i] = gap + Math.log(sum + Math.exp(-gap));
      rest[i] = 1 / (1 + Math.exp(-gap) / sum);
    }
    total += losses[i];
  }
  let loss = total * weight;
  if (!Number.isFinite(loss) && reduction === "mean") {
    loss = 0;
    for (let i = 0; i < N; i++) loss += losses[i] * weight;
  }
  return { loss, losses, rest };
}

/**
 * After the passes: ∂/∂x from the threads' partial Σ_j H_ij·w_j (summed in float64), the row-norm
 * backward of x and each target's whole contribution to ∂/∂x_i and ∂/∂w_{y_i} (and the bias), in
 * float64 (f′(c) grows without bound near c = 1, where float32 cancellation would cost accuracy).
 */
export function finishGradients(
  head: HeadSpec,
  view: RunInput,
  s: Samples,
  rest: Float64Array,
  weight: number,
  parts: Float32Array[],
  gradWeights: Float32Array,
  gradBias?: Float32Array,
): Float32Array {
  const { N, D, x, w, labels } = view;
  const kind = head.logits === "angular" ? head.radius.kind : "linear";
  const gradFeatures = new Float32Array(N * D);
  const row = new Float64Array(D);
  for (let i = 0; i < N; i++) {
    const xi = i * D, y = labels[i], wi = y * D;
    row.fill(0);
    for (const part of parts) for (let k = 0; k < D; k++) row[k] += part[xi + k];
    const gzy = -weight * rest[i]; // ∂loss/∂z_iy
    if (kind === "linear") {
      for (let k = 0; k < D; k++) {
        gradFeatures[xi + k] = row[k] + gzy * w[wi + k];
        gradWeights[wi + k] += gzy * x[xi + k];
      }
      if (gradBias) gradBias[y] += gzy;
      continue;
    }
    // row = Σ_j ∂loss/∂z_ij·b_j·ŵ_j over the non-targets; times a_i: Σ_j ∂loss/∂c_ij·ŵ_j.
    const icx = 1 / s.cx[i], icy = 1 / s.cy[i];
    let grada = 0; // Σ_j ∂loss/∂z_ij·b_j·c_ij
    for (let k = 0; k < D; k++) grada += row[k] * x[xi + k] * icx;
    const sumx = s.a[i] * grada; // Σ_j ∂loss/∂c_ij·c_ij
    if (kind !== "scale") grada += gzy * s.b[i] * s.tv[i];
    const coef = (s.nx[i] > NORM_EPS ? -sumx * icx : 0) + (kind !== "scale" ? grada : 0);
    const fx = s.nx[i] > 0 ? coef / s.nx[i] : 0;
    // ‖w_y‖ as the radius (L-Softmax): its gradient along w_y/‖w_y‖.
    const fw = kind === "normProduct" && s.ny[i] > 0 ? gzy * s.a[i] * s.tv[i] / s.ny[i] : 0;
    // The target cosine: dc/dx and dc/dw_y with the normalisation backward.
    const gc = gzy * s.a[i] * s.b[i] * s.slope[i], c = s.tc[i];
    const xNorm = s.nx[i] > NORM_EPS ? 1 : 0, wNorm = s.ny[i] > NORM_EPS ? 1 : 0;
    const ra = s.a[i] * icx;
    for (let k = 0; k < D; k++) {
      const xh = x[xi + k] * icx, wk = w[wi + k], wh = wk * icy;
      gradFeatures[xi + k] = row[k] * ra + fx * x[xi + k] + gc * (wh - xNorm * c * xh) * icx;
      gradWeights[wi + k] += gc * (xh - wNorm * c * wh) * icy + fw * wk;
    }
  }
  return gradFeatures;
}

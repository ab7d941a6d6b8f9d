import type { HeadSpec, Radius } from "./head_spec.ts";
import type { HeadInput, HeadResult, ReductionOptions } from "./types.ts";
import { softmaxCrossEntropy } from "./cross_entropy.ts";
import { targetFunction } from "./target.ts";
import {
  assertFiniteOutput,
  checkHeadInput,
  optionsObject,
  reductionOption,
  rowNorms,
} from "./_validate.ts";
import { checkHeadSpec, headWhere } from "./_head_spec_check.ts";
import { NORM_EPS } from "./_constants.ts";

/** P = X·Wᵀ for X (N×D) and W (C×D). */
function innerProducts(x: Float64Array, w: Float64Array, N: number, C: number, D: number) {
  const p = new Float64Array(N * C);
  for (let i = 0; i < N; i++) {
    const xi = i * D;
    for (let j = 0; j < C; j++) {
      const wj = j * D;
      let dot = 0;
      for (let k = 0; k < D; k++) dot += x[xi + k] * w[wj + k];
      p[i * C + j] = dot;
    }
  }
  return p;
}

/** ∂/∂X = G·W and ∂/∂W = Gᵀ·X for a gradient G (N×C) with respect to P = X·Wᵀ. */
function backpropProducts(g: Float64Array, x: Float64Array, w: Float64Array, D: number) {
  const N = x.length / D, C = w.length / D;
  const gx = new Float64Array(N * D), gw = new Float64Array(C * D);
  for (let i = 0; i < N; i++) {
    const xi = i * D;
    for (let j = 0; j < C; j++) {
      const gij = g[i * C + j];
      if (gij === 0) continue;
      const wj = j * D;
      for (let k = 0; k < D; k++) {
        gx[xi + k] += gij * w[wj + k];
        gw[wj + k] += gij * x[xi + k];
      }
    }
  }
  return { gx, gw };
}

/** grad_r += coefficient_r · a_r / ‖a_r‖: the backward of a row norm. */
function addNormGradient(
  grad: Float64Array,
  a: Float64Array,
  norms: Float64Array,
  coefficient: Float64Array,
) {
  const D = a.length / norms.length;
  for (let r = 0; r < norms.length; r++) {
    if (norms[r] === 0 || coefficient[r] === 0) continue;
    const s = coefficient[r] / norms[r];
    for (let k = 0; k < D; k++) grad[r * D + k] += s * a[r * D + k];
  }
}

/** Per-row and per-column factors of the radius R_ij = a_i·b_j. */
function radiusFactors(radius: Radius, featureNorms: Float64Array, weightNorms: Float64Array) {
  const a = radius.kind === "scale"
    ? new Float64Array(featureNorms.length).fill(radius.scale)
    : featureNorms;
  const b = radius.kind === "normProduct"
    ? weightNorms
    : new Float64Array(weightNorms.length).fill(1);
  return { a, b, aIsNorm: radius.kind !== "scale", bIsNorm: radius.kind === "normProduct" };
}

/**
 * The one machine behind every loss of the softmax family. It validates the input, converts it to
 * float64 once, forms the logits that `head` describes (inner products, or cosines times a radius
 * with a margin on the target column), runs a max-shifted softmax cross-entropy, and back-propagates
 * through the margin, the radius and both normalisations.
 *
 * For an angular head, with c_ij = x̂_i·ŵ_j and R_ij = a_i·b_j its radius:
 * z_ij = R_ij·c_ij for j ≠ y_i, z_iy = R_iy·f(c_iy), loss_i = log Σ_j exp(z_ij) − z_iy.
 *
 * @example CosFace written as a head description
 * ```ts
 * import { marginSoftmaxLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const result = marginSoftmaxLoss(
 *   { features: matrix(2, 2, [1, 0, 0, 1]), weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0, 1] },
 *   {
 *     name: "cosFace",
 *     logits: "angular",
 *     radius: { kind: "scale", scale: 10 },
 *     margin: { kind: "angular", m1: 1, m2: 0, m3: 0.35, fallback: "none" },
 *     marginGradient: "exact",
 *   },
 * );
 * assert.ok(Math.abs(result.logits.data[0] - 6.5) < 1e-12);
 * ```
 *
 * @param input Features (N×D), weights (C×D), labels (N) and, for a linear head, an optional bias.
 * @param head What to compute: see {@linkcode HeadSpec}. It is checked field by field (kinds, ranges,
 *   no unknown fields): a malformed head is an error naming the field, never a silent result.
 * @param options The reduction.
 * @returns The loss, per-sample losses, logits and gradients.
 */
export function marginSoftmaxLoss(
  input: HeadInput,
  head: HeadSpec,
  options?: ReductionOptions,
): HeadResult {
  const where = headWhere(head, "marginSoftmaxLoss");
  head = checkHeadSpec(where, head);
  const reduction = reductionOption(where, optionsObject(where, options, ["reduction"]).reduction);
  const { N, D, C, x, w, labels, bias } = checkHeadInput(where, input, {
    classes: "weights",
    allowBias: head.logits === "linear",
  });
  const logits = innerProducts(x, w, N, C, D);
  let gradProducts: Float64Array; // ∂loss/∂(X·Wᵀ)
  let gradBias: Float64Array | undefined;
  let ce;
  let addNormTerms = (_gx: Float64Array, _gw: Float64Array) => {};

  if (head.logits === "linear") {
    if (bias) {
      for (let i = 0; i < N; i++) for (let j = 0; j < C; j++) logits[i * C + j] += bias[j];
    }
    ce = softmaxCrossEntropy(logits, labels, reduction);
    gradProducts = ce.gradLogits;
    if (bias) {
      gradBias = new Float64Array(C);
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < C; j++) gradBias[j] += gradProducts[i * C + j];
      }
    }
  } else {
    const nx = rowNorms(x, D), nw = rowNorms(w, D);
    const cx = nx.map((n) => Math.max(n, NORM_EPS)), cw = nw.map((n) => Math.max(n, NORM_EPS));
    const { a, b, aIsNorm, bIsNorm } = radiusFactors(head.radius, nx, nw);
    const target = targetFunction(head.margin, head.marginGradient);
    const cosines = new Float64Array(N * C);
    const targetValue = new Float64Array(N), targetSlope = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < C; j++) {
        const c = logits[i * C + j] / (cx[i] * cw[j]);
        cosines[i * C + j] = c;
        logits[i * C + j] = a[i] * b[j] * c;
      }
      const y = labels[i], t = target(cosines[i * C + y]);
      logits[i * C + y] = a[i] * b[y] * t.value;
      targetValue[i] = t.value;
      targetSlope[i] = t.slope;
    }
    ce = softmaxCrossEntropy(logits, labels, reduction);
    const g = ce.gradLogits;
    // z = a_i·b_j·g(c): split ∂loss/∂z into the cosine, the two radius factors and the two norms.
    const gradA = new Float64Array(N), gradB = new Float64Array(C);
    const gradCx = new Float64Array(N), gradCw = new Float64Array(C);
    gradProducts = new Float64Array(N * C);
    for (let i = 0; i < N; i++) {
      const y = labels[i];
      for (let j = 0; j < C; j++) {
        const ij = i * C + j, gz = g[ij], c = cosines[ij];
        const value = j === y ? targetValue[i] : c;
        gradA[i] += gz * b[j] * value;
        gradB[j] += gz * a[i] * value;
        const gc = gz * a[i] * b[j] * (j === y ? targetSlope[i] : 1);
        gradCx[i] -= gc * c / cx[i];
        gradCw[j] -= gc * c / cw[j];
        gradProducts[ij] = gc / (cx[i] * cw[j]);
      }
    }
    const normCoefficient = (
      norms: Float64Array,
      gradClamped: Float64Array,
      gradRadius: Float64Array,
      radiusIsNorm: boolean,
    ) =>
      norms.map((n, r) => (n > NORM_EPS ? gradClamped[r] : 0) + (radiusIsNorm ? gradRadius[r] : 0));
    addNormTerms = (gx, gw) => {
      addNormGradient(gx, x, nx, normCoefficient(nx, gradCx, gradA, aIsNorm));
      addNormGradient(gw, w, nw, normCoefficient(nw, gradCw, gradB, bIsNorm));
    };
  }

  const { gx, gw } = backpropProducts(gradProducts, x, w, D);
  addNormTerms(gx, gw);
  const result: HeadResult = {
    loss: ce.loss,
    losses: ce.losses,
    logits: { rows: N, cols: C, data: logits },
    gradFeatures: { rows: N, cols: D, data: gx },
    gradWeights: { rows: C, cols: D, data: gw },
  };
  if (gradBias) result.gradBias = gradBias;
  for (
    const [name, data] of [["loss", [ce.loss]], ["logits", logits], ["gradFeatures", gx], [
      "gradWeights",
      gw,
    ]] as const
  ) {
    assertFiniteOutput(where, name, data);
  }
  return result;
}

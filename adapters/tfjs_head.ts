// Any HeadSpec as TensorFlow.js ops: per-sample losses that tfjs's autodiff differentiates itself.
import type { HeadSpec, TargetMargin } from "../mod.ts";
import { tf } from "../train/tfjs_setup.ts";

/** Norms are clamped to 1e-12 like torch.nn.functional.normalize: squared norms to this. */
const NORM_SQ_EPS = 1e-24;
/**
 * 1 − c² is floored here inside the square root of sin θ, so sin θ ≥ 1e-8 (losses/target.ts's
 * SIN_FLOOR) and its autodiff gradient −c/sin θ stays finite at |c| = 1; below the floor the
 * gradient through the maximum is 0. float32 cannot tell 1 − c² apart from 0 below ≈ 1.2e-7, so
 * only |c| = 1 (or rounded past it) is affected.
 */
const SIN_SQ_FLOOR = 1e-16;

/** The tensors of a head: features N×D, weights C×D, int32 labels N and an optional bias C. */
export interface HeadTensors {
  features: tf.Tensor2D;
  weights: tf.Tensor2D;
  labels: tf.Tensor1D;
  bias?: tf.Tensor1D;
}

type CustomGradient = Parameters<typeof tf.customGrad>[0];

/**
 * fn(x) with a zero gradient: tfjs has no stop-gradient op. fn runs inside a custom op, off the
 * tape, so tfjs never back-propagates through it (a zero gradient times an infinite slope would
 * still be NaN, and max's gradient mask costs 40 % of the wasm backend's time).
 */
function detached(fn: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor): tf.Tensor {
  const op = tf.customGrad(
    ((input: tf.Tensor) => ({
      value: fn(input),
      gradFunc: () => tf.zerosLike(input),
    })) as CustomGradient,
  ) as (input: tf.Tensor) => tf.Tensor;
  return op(x);
}

/**
 * A·Bᵀ for A (N×D) and B (C×D), with explicit transposes forward and backward: tfjs's own
 * gradient of matMul uses transposeA/transposeB, about 10× slower on the wasm backend.
 */
const productsWithTranspose = tf.customGrad(
  ((a: tf.Tensor2D, b: tf.Tensor2D, save: tf.GradSaveFunc) => {
    save([a, b]);
    return {
      value: tf.matMul(a, tf.transpose(b)),
      gradFunc: (dy: tf.Tensor2D, [sa, sb]: tf.Tensor[]) => [
        tf.matMul(dy, sb as tf.Tensor2D),
        tf.matMul(tf.transpose(dy), sa as tf.Tensor2D),
      ],
    };
  }) as CustomGradient,
) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * Rows `labels` of w, whose gradient scatters back with summed duplicates (tf.scatterND): tfjs's
 * own gather gradient needs UnsortedSegmentSum, which the wasm backend lacks.
 */
function gatherRows(w: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor2D {
  const op = tf.customGrad(
    ((rows: tf.Tensor2D) => ({
      value: tf.gather(rows, labels),
      gradFunc: (dy: tf.Tensor2D) =>
        tf.scatterND(tf.reshape(labels, [labels.shape[0], 1]), dy, rows.shape),
    })) as CustomGradient,
  ) as (rows: tf.Tensor2D) => tf.Tensor2D;
  return op(w);
}

/**
 * sin θ of each sample's target, √max(1 − c², floor), with 1 − c² = ‖x̂ + ŵ_y‖²·‖x̂ − ŵ_y‖²/4 for
 * unit rows: near c = ±1 the product's float32 cosine is off by ~1e-7, which 1/sin θ in a margin's
 * slope would magnify. A zero feature row (x̂ = 0) has c = 0 and keeps 1 − c².
 */
function targetSin(x: tf.Tensor2D, w: tf.Tensor2D, labels: tf.Tensor1D, c: tf.Tensor): tf.Tensor {
  const wy = gatherRows(w, labels);
  const plus = tf.sum(tf.square(tf.add(x, wy)), 1), minus = tf.sum(tf.square(tf.sub(x, wy)), 1);
  const unit = detached((a) => tf.step(tf.sub(tf.sum(tf.square(a), 1), 0.5)), x); // 1, or 0
  const sinSq = tf.add(
    tf.mul(unit, tf.mul(tf.mul(plus, minus), 0.25)),
    tf.mul(tf.sub(1, unit), tf.sub(1, tf.square(c))),
  );
  return tf.sqrt(tf.maximum(sinSq, SIN_SQ_FLOOR));
}

/** T_m(c) = cos(m·acos c), the Chebyshev polynomial, by its recurrence. */
function chebyshev(m: number, c: tf.Tensor): tf.Tensor {
  if (m === 0) return tf.onesLike(c);
  let previous = tf.onesLike(c), current = c;
  for (let n = 1; n < m; n++) {
    [previous, current] = [current, tf.sub(tf.mul(tf.mul(2, c), current), previous)];
  }
  return current;
}

/** f(c) of a target margin, as losses/target.ts and fixtures/FORMAT.md define it. */
function targetValue(margin: TargetMargin, c: tf.Tensor, sinOf: () => tf.Tensor): tf.Tensor {
  switch (margin.kind) {
    case "none":
      return c;
    case "psi": {
      // ψ_m(θ) = (−1)^k·T_m(c) − 2k, k = ⌊m·θ/π⌋ held constant (a step function).
      const { margin: m, lambda } = margin;
      // k ≤ m − 1: k = m only at θ = π exactly, where ψ's value is the same either way but its
      // one-sided slope flips sign; float32 rounds every c within 6e-8 of −1 onto it.
      const k = detached(
        (x) =>
          tf.minimum(
            tf.floor(tf.div(tf.mul(m, tf.acos(tf.clipByValue(x, -1, 1))), Math.PI)),
            m - 1,
          ),
        c,
      );
      const sign = tf.sub(1, tf.mul(2, tf.sub(k, tf.mul(2, tf.floor(tf.div(k, 2)))))); // (−1)^k
      const psi = tf.sub(tf.mul(sign, chebyshev(m, c)), tf.mul(2, k));
      return tf.div(tf.add(tf.mul(lambda, c), psi), 1 + lambda);
    }
    case "angular": {
      const { m1, m2, m3, fallback } = margin;
      const sin = sinOf();
      // cos(θ + m2) = c·cos m2 − sin θ·sin m2 needs no acos; otherwise θ = atan2(sin θ, c), whose
      // gradient −1/sin θ stays finite at |c| = 1, unlike acos's.
      const f = m1 === 1
        ? tf.sub(tf.sub(tf.mul(c, Math.cos(m2)), tf.mul(sin, Math.sin(m2))), m3)
        : tf.sub(tf.cos(tf.add(tf.mul(m1, tf.atan2(sin, c)), m2)), m3);
      // Comparisons have no gradient in tfjs, even at zero: a detached step is 1 where c > threshold.
      const blend = (threshold: number, other: tf.Tensor) => {
        const on = detached((x) => tf.step(tf.sub(x, threshold)), c);
        return tf.add(tf.mul(on, f), tf.mul(tf.sub(1, on), other));
      };
      if (fallback === "easy") return blend(0, c);
      if (fallback === "insightface") {
        // Past θ = π − m2 the margin would help: the linear extension c − m2·sin m2 − m3 instead.
        return blend(Math.cos(Math.PI - m2), tf.sub(c, Math.sin(Math.PI - m2) * m2 + m3));
      }
      return f;
    }
  }
}

/** Rows divided by their norms clamped to 1e-12, and those clamped norms (rows×1). */
function normalizeRows(a: tf.Tensor2D): { unit: tf.Tensor2D; norms: tf.Tensor2D } {
  const norms = tf.sqrt(tf.maximum(tf.sum(tf.square(a), 1, true), NORM_SQ_EPS)) as tf.Tensor2D;
  return { unit: tf.div(a, norms), norms };
}

/**
 * The per-sample softmax cross-entropy losses of `head`, written with tfjs ops only so that tfjs's
 * autodiff (tf.grads, tf.valueAndGrads) derives the gradients: an implementation independent of
 * the analytic float64 one. Call it inside tf.tidy or a gradient function.
 *
 * Differences from the float64 reference, all below float32 resolution: norms are
 * √max(‖a‖², 1e-24) (the same clamp, also used as the radius), sin θ is √max(1 − c², 1e-16) with
 * 1 − c² from ‖x̂ ± ŵ_y‖, ψ's
 * k is capped at m − 1 (it reaches m only at θ = π exactly), and the detached margin is
 * R·(c + detached(f(c) − c)).
 *
 * @param head The head to compute.
 * @param tensors Features, weights, int32 labels and an optional bias (linear heads only).
 * @returns The N per-sample losses log Σ_j exp(z_ij) − z_iy.
 */
export function headLosses(head: HeadSpec, tensors: HeadTensors): tf.Tensor1D {
  const { features, weights, labels, bias } = tensors;
  const classes = weights.shape[0];
  const mask = tf.cast(tf.oneHot(labels, classes), "float32") as tf.Tensor2D;
  let logits: tf.Tensor2D;
  if (head.logits === "linear") {
    logits = productsWithTranspose(features, weights);
    if (bias) logits = tf.add(logits, bias);
  } else {
    const x = normalizeRows(features), w = normalizeRows(weights);
    const cosines = productsWithTranspose(x.unit, w.unit);
    const target = tf.sum(tf.mul(cosines, mask), 1);
    const sinOf = () => targetSin(x.unit, w.unit, labels, target);
    const margin = (c: tf.Tensor) => tf.sub(targetValue(head.margin, c, sinOf), c); // f(c) − c
    const shift = head.marginGradient === "detached" ? detached(margin, target) : margin(target);
    const adjusted = tf.add(cosines, tf.mul(mask, tf.expandDims(shift, 1)));
    const radius = head.radius;
    logits = radius.kind === "scale"
      ? tf.mul(adjusted, radius.scale)
      : radius.kind === "featureNorm"
      ? tf.mul(adjusted, x.norms)
      : tf.mul(adjusted, tf.mul(x.norms, tf.reshape(w.norms, [1, classes])));
  }
  // log Σ exp shifted by the detached row maximum: its gradient is exactly the softmax, and
  // tf.logSumExp's own (through max's Equal mask) is 40 % of the wasm backend's time.
  const max = detached((z) => tf.max(z, 1, true), logits);
  const logSumExp = tf.add(tf.log(tf.sum(tf.exp(tf.sub(logits, max)), 1)), tf.squeeze(max, [1]));
  return tf.sub(logSumExp, tf.sum(tf.mul(logits, mask), 1)) as tf.Tensor1D;
}

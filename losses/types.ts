import type { Matrix } from "./matrix.ts";

/**
 * How per-sample losses are combined: `"mean"` (the default, as in
 * `torch.nn.functional.cross_entropy`), `"sum"`, or `"none"`. With `"none"` the reported `loss` is
 * the sum of the per-sample losses and the gradients are those of that sum.
 */
export type Reduction = "mean" | "sum" | "none";

/**
 * How the gradient flows through a margin: `"exact"` differentiates the margin (the default), while
 * `"detached"` treats the target's margin term f(c) − c as a constant, so ∂z/∂c is the scale on every
 * class, as insightface's arcface_torch and opensphere do.
 */
export type MarginGradient = "exact" | "detached";

/** The inputs of a classification head: features, class weights, labels and an optional bias. */
export interface HeadInput {
  /** Features x, N×D, one row per sample. */
  features: Matrix;
  /** Class weights W, C×D, one row per class. */
  weights: Matrix;
  /** N integer labels in [0, C). */
  labels: ArrayLike<number>;
  /** Optional bias b of length C (softmax only). */
  bias?: ArrayLike<number>;
}

/**
 * What every head loss returns: the loss, its per-sample values, the logits and the gradients. `T`
 * is the array type of the precision it was computed in (float64 for the reference losses).
 */
export interface HeadResult<T extends Float64Array | Float32Array = Float64Array> {
  /** The reduced loss; for `"none"` the sum of `losses`. */
  loss: number;
  /** Per-sample losses, length N, in float64 whatever the precision of the rest. */
  losses: Float64Array;
  /** The N×C logits fed to softmax, after margin and scale. */
  logits: Matrix<T>;
  /** ∂loss/∂features, N×D. */
  gradFeatures: Matrix<T>;
  /** ∂loss/∂weights, C×D. */
  gradWeights: Matrix<T>;
  /** ∂loss/∂bias, present when a bias was given. */
  gradBias?: T;
}

/** The option every loss takes. */
export interface ReductionOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
}

/** Options shared by every margin loss. */
export interface MarginOptions extends ReductionOptions {
  /** Exact or detached margin gradient. @default {"exact"} */
  marginGradient?: MarginGradient;
}

import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Matrix } from "../../losses/matrix.ts";
import type { HeadInput, Reduction } from "../../losses/types.ts";
import {
  booleanOption,
  numberOption,
  optionsObject,
  reductionOption,
} from "../../losses/_validate.ts";
import { MAX_THREADS } from "./assembly/layout.ts";
import { defaultThreads, prepareWasmHead } from "./_engine.ts";

/** Options of {@linkcode wasmHeadLoss}. */
export interface WasmHeadLossOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /** Worker threads (at most one per 64 classes is used). @default {navigator.hardwareConcurrency} */
  threads?: number;
  /** Also return the N×C logits (float64, an extra pass over N×C). @default {false} */
  logits?: boolean;
}

/** What {@linkcode wasmHeadLoss} returns: the fields of a HeadResult, in float32 where computed so. */
export interface WasmHeadResult {
  /** The reduced loss (float64 from float32 logits). */
  loss: number;
  /** Per-sample losses, length N. */
  losses: Float64Array;
  /** The N×C logits, when `options.logits` asks for them. */
  logits?: Matrix;
  /** ∂loss/∂features, N×D, float32. */
  gradFeatures: Matrix;
  /** ∂loss/∂weights, C×D, float32 (a view of the engine's memory, which this call leaves). */
  gradWeights: Matrix;
  /** ∂loss/∂bias, when a bias was given. */
  gradBias?: Float32Array;
}

/**
 * Computes a classification head, forward and backward, with the WebAssembly SIMD engine: float32
 * kernels on worker threads sharing one memory, fused over class tiles (cosines, margin, online
 * softmax, gradients and the normalisation backward), with the per-sample target terms in float64.
 * Results agree with {@linkcode marginSoftmaxLoss} to about 1e-5 of each array's largest magnitude.
 *
 * Each call starts its workers and ends them (≈ 50–100 ms); to run one head repeatedly, use the
 * `engine-wasm` backend's `prepare`, which keeps them. Threads take class tiles dynamically, so
 * repeated calls agree to float32 rounding, not bit for bit.
 *
 * @example ArcFace on two samples
 * ```ts
 * import { arcFaceHead, matrix } from "../../mod.ts";
 * import { wasmHeadLoss } from "./head_loss.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 3, [1, 0, 0, 0, 1, 0]),
 *   weights: matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
 *   labels: [0, 1],
 * };
 * const result = await wasmHeadLoss(input, arcFaceHead(), { threads: 1 });
 * assert.equal(result.gradWeights.rows, 4);
 * assert.ok(Number.isFinite(result.loss));
 * ```
 *
 * @param input Features (N×D), weights (C×D), labels (N) and, for a linear head, an optional bias.
 * @param head What to compute: see {@linkcode HeadSpec}.
 * @param options Reduction, threads and whether to return the logits.
 * @returns The loss, per-sample losses, gradients and optionally the logits.
 */
export async function wasmHeadLoss(
  input: HeadInput,
  head: HeadSpec,
  options?: WasmHeadLossOptions,
): Promise<WasmHeadResult> {
  const where = "wasmHeadLoss";
  const o = optionsObject(where, options, ["reduction", "threads", "logits"]);
  const reduction = reductionOption(where, o.reduction);
  const threads = numberOption(
    where,
    "threads",
    o.threads,
    defaultThreads(),
    { min: 1, max: MAX_THREADS, integer: true, text: `an integer in [1, ${MAX_THREADS}]` },
  );
  const logits = booleanOption(where, "logits", o.logits, false);
  const prepared = await prepareWasmHead(head, input, reduction, { threads });
  try {
    const r = await prepared.run({ logits });
    const N = input.features.rows, D = input.features.cols, C = input.weights.rows;
    const result: WasmHeadResult = {
      loss: r.loss,
      losses: r.losses,
      gradFeatures: { rows: N, cols: D, data: r.gradFeatures },
      gradWeights: { rows: C, cols: D, data: r.gradWeights },
    };
    if (r.logits) result.logits = r.logits;
    if (r.gradBias) result.gradBias = r.gradBias;
    return result;
  } finally {
    prepared.dispose();
  }
}

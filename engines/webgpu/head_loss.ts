import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Matrix } from "../../losses/matrix.ts";
import type { HeadInput, ReductionOptions } from "../../losses/types.ts";
import { optionsObject, reductionOption } from "../../losses/_validate.ts";
import { prepareEngine } from "./_engine.ts";

/** What {@linkcode webgpuHeadLoss} returns: the fields of `HeadResult`, in float32. */
export interface WebgpuHeadResult {
  /** The reduced loss (summed in float64 from the float32 per-sample losses). */
  loss: number;
  /** Per-sample losses, length N. */
  losses: Float32Array;
  /** The N×C logits fed to softmax, after margin and scale. */
  logits: Matrix;
  /** ∂loss/∂features, N×D. */
  gradFeatures: Matrix;
  /** ∂loss/∂weights, C×D. */
  gradWeights: Matrix;
  /** ∂loss/∂bias, present when a bias was given. */
  gradBias?: Float32Array;
}

/**
 * Computes any head of {@linkcode HeadSpec} on the GPU with the fused WebGPU engine, in float32:
 * the loss, per-sample losses, logits and gradients. The inputs are uploaded for this call only; to
 * run one head many times, use `webgpuEngineBackend.prepare`.
 *
 * Throws when no WebGPU adapter is present, on invalid input (the same checks and messages as the
 * float64 losses), and when a result would not be finite in float32.
 *
 * @example ArcFace on two samples
 * ```ts ignore
 * import { arcFaceHead, matrix } from "../../mod.ts";
 * import { webgpuHeadLoss } from "./head_loss.ts";
 *
 * const input = {
 *   features: matrix(2, 2, [1, 0, 0, 1]),
 *   weights: matrix(3, 2, [1, 0, 0, 1, -1, 0]),
 *   labels: [0, 1],
 * };
 * const { loss, gradFeatures } = await webgpuHeadLoss(input, arcFaceHead(), { reduction: "mean" });
 * ```
 *
 * @param input Features (N×D), weights (C×D), labels (N) and, for a linear head, an optional bias.
 * @param head What to compute.
 * @param options The reduction, `"mean"` by default.
 * @returns The loss, the per-sample losses, the logits and the gradients, in float32.
 */
export async function webgpuHeadLoss(
  input: HeadInput,
  head: HeadSpec,
  options?: ReductionOptions,
): Promise<WebgpuHeadResult> {
  const where = `${head.name}Loss`;
  const reduction = reductionOption(where, optionsObject(where, options, ["reduction"]).reduction);
  const engine = await prepareEngine(head, input, { reduction, where, logits: true });
  try {
    const r = await engine.run();
    const N = r.losses.length, C = input.weights.rows, D = input.features.cols;
    const result: WebgpuHeadResult = {
      loss: r.loss,
      losses: r.losses,
      logits: { rows: N, cols: C, data: r.logits! },
      gradFeatures: { rows: N, cols: D, data: r.gradFeatures },
      gradWeights: { rows: C, cols: D, data: r.gradWeights },
    };
    if (r.gradBias) result.gradBias = r.gradBias;
    return result;
  } finally {
    engine.dispose();
  }
}

import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import type { HeadInput, Reduction } from "../losses/types.ts";
import { optionsObject } from "../losses/checks.ts";
import { inputShape } from "./_input_shape.ts";
import type { EngineResult } from "./engine.ts";
import {
  engineNamed,
  PREPARE_OPTIONS,
  type PrepareHeadOptions,
  prepareOn,
} from "./prepare_head.ts";

/** Options of {@linkcode headLoss}. */
export interface HeadLossOptions extends PrepareHeadOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /** Also return the N×C logits. @default {false} */
  logits?: boolean;
}

/**
 * Computes any head of {@linkcode HeadSpec} once on the chosen engine: {@linkcode prepareHead},
 * one run, dispose. Pick `"reference"` for exact float64 values, `"wasm"` for speed on the CPU and
 * `"webgpu"` where a GPU adapter exists. To compute a head repeatedly (training, benchmarks), keep a
 * prepared head instead: preparing starts workers or builds GPU pipelines every time.
 *
 * @example CosFace on the WebAssembly engine
 * ```ts
 * import { cosFaceHead, headLoss, matrix } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 3, [1, 0, 0, 0, 1, 0]),
 *   weights: matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
 *   labels: [0, 1],
 * };
 * const exact = await headLoss(input, cosFaceHead());
 * const fast = await headLoss(input, cosFaceHead(), { engine: "wasm", threads: 1 });
 * assert.ok(Math.abs(fast.loss - exact.loss) < 1e-4 * Math.abs(exact.loss));
 * ```
 *
 * @param input Features (N×D), weights (C×D), labels (N) and, for a linear head, an optional bias.
 * @param head What to compute, e.g. `arcFaceHead({ scale: 64, margin: 0.5 })`.
 * @param options The engine, its thread count, the reduction and whether to return the logits.
 * @returns The loss, per-sample losses, gradients and (when asked) the logits.
 */
export async function headLoss(
  input: HeadInput,
  head: HeadSpec | SuccessorHeadSpec,
  options?: HeadLossOptions,
): Promise<EngineResult> {
  const where = "headLoss";
  const { engine, reduction, logits, ...prepare } = optionsObject(where, options, [
    ...PREPARE_OPTIONS,
    "reduction",
    "logits",
  ]);
  const shape = inputShape(where, input);
  await using prepared = await prepareOn(engineNamed(where, engine), head, shape, prepare);
  return await prepared.run(input, { reduction, logits });
}

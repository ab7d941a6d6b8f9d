import type { HeadSpec } from "../losses/head_spec.ts";
import type { Matrix } from "../losses/matrix.ts";
import type { HeadInput, Reduction } from "../losses/types.ts";
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { optionsObject } from "../losses/_validate.ts";
import { wasmHeadLoss } from "./wasm/head_loss.ts";
import { webgpuHeadLoss } from "./webgpu/head_loss.ts";

/**
 * Where a head is computed: `"reference"` (pure TypeScript, float64, exact), `"wasm"` (WebAssembly
 * SIMD on worker threads, float32) or `"webgpu"` (fused WGSL, float32).
 */
export type Engine = "reference" | "wasm" | "webgpu";

/** Options of {@linkcode headLoss}. */
export interface HeadLossOptions {
  /** The engine that computes the head. @default {"reference"} */
  engine?: Engine;
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /** Worker threads of the `"wasm"` engine. @default {navigator.hardwareConcurrency} */
  threads?: number;
}

/**
 * What {@linkcode headLoss} returns: the fields of `HeadResult`, float64 from the reference engine
 * and float32 from the others. The `"wasm"` engine does not form the N×C logits.
 */
export interface EngineHeadResult {
  /** The reduced loss; for `"none"` the sum of `losses`. */
  loss: number;
  /** Per-sample losses, length N. */
  losses: Float64Array | Float32Array;
  /** The N×C logits fed to softmax, except from the `"wasm"` engine. */
  logits?: Matrix;
  /** ∂loss/∂features, N×D. */
  gradFeatures: Matrix;
  /** ∂loss/∂weights, C×D. */
  gradWeights: Matrix;
  /** ∂loss/∂bias, present when a bias was given. */
  gradBias?: Float64Array | Float32Array;
}

const ENGINES: readonly Engine[] = ["reference", "wasm", "webgpu"];

/**
 * Computes any head of {@linkcode HeadSpec} on the chosen engine. Pick `"reference"` for exact
 * float64 values (tests, small heads), `"wasm"` for speed on the CPU (large heads: fused kernels on
 * every core) and `"webgpu"` where a GPU adapter exists. The float32 engines agree with the
 * reference to about 1e-5 of each array's largest magnitude.
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
 * @param options The engine, the reduction and the `"wasm"` engine's thread count.
 * @returns The loss, per-sample losses, gradients and (except from `"wasm"`) the logits.
 */
export async function headLoss(
  input: HeadInput,
  head: HeadSpec,
  options?: HeadLossOptions,
): Promise<EngineHeadResult> {
  const where = "headLoss";
  const { engine = "reference", reduction, threads } = optionsObject(where, options, [
    "engine",
    "reduction",
    "threads",
  ]);
  if (!ENGINES.includes(engine)) {
    throw new Error(
      `${where}: options.engine must be one of ${ENGINES.map((e) => `"${e}"`).join(", ")}` +
        `, got ${JSON.stringify(engine)}`,
    );
  }
  if (threads !== undefined && engine !== "wasm") {
    throw new Error(`${where}: options.threads applies to the "wasm" engine only`);
  }
  if (engine === "wasm") return await wasmHeadLoss(input, head, { reduction, threads });
  if (engine === "webgpu") return await webgpuHeadLoss(input, head, { reduction });
  return marginSoftmaxLoss(input, head, { reduction });
}

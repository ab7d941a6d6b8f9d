/**
 * `engine-webgpu`: our own fused margin-softmax kernels in WGSL, float32, on any WebGPU adapter
 * Deno finds (here Mesa's lavapipe, a CPU Vulkan). Every head of {@linkcode HeadSpec} runs; the
 * WGSL is generated from the head's structure (linear or angular, radius kind, margin kind,
 * gradient mode) and its numbers travel in a uniform buffer, so all losses of one structure share
 * compiled pipelines.
 *
 * A run is one submission: row norms of X and W; S = X·Wᵀ in register blocks with the cosine (or
 * logit + bias) in the epilogue; one workgroup per sample for the max-shifted softmax, the loss,
 * f(c), f′(c) and the sample's norm-gradient factor; one invocation per class that turns S into
 * ∂loss/∂(X·Wᵀ) in place and leaves the class's norm factor and ∂b; then ∂X = G·W + f_i·x_i and
 * ∂W = Gᵀ·X + f_j·w_j with the normalisation backward folded into the epilogues; one read-back.
 * One N×C buffer in all; float32 throughout. The device and its pipelines are shared by the
 * process (see {@linkcode releaseWebgpuDevice}); each prepared head owns its buffers and frees
 * them on dispose.
 *
 * W and ∂W are split into chunks of classes where they exceed the adapter's storage binding limit
 * (128 MiB on lavapipe); the N×C buffer and X must fit it whole (N·C ≤ 32 Mi on lavapipe), and
 * N ≤ 65 535.
 *
 * @module
 */
import type { Backend, BackendResult } from "../../backends/backend.ts";
import type { HeadSpec } from "../../losses/head_spec.ts";
import { prepareEngine, requestAdapter } from "./_engine.ts";

export { releaseWebgpuDevice } from "./_engine.ts";

/** The WebGPU engine as a {@linkcode Backend}: `prepare` uploads, `run` awaits the read-back. */
export const webgpuEngineBackend: Backend = {
  name: "engine-webgpu",
  kind: "WebGPU",
  precision: "float32",
  async availability() {
    try {
      const adapter = await requestAdapter();
      return adapter
        ? { available: true }
        : { available: false, reason: "navigator.gpu.requestAdapter() found no WebGPU adapter" };
    } catch (error) {
      return {
        available: false,
        reason: `WebGPU failed: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
  },
  supports(_head: HeadSpec) {
    return true;
  },
  async prepare(head, input, reduction) {
    const engine = await prepareEngine(head, input, { reduction });
    return {
      async run(): Promise<BackendResult> {
        return await engine.run();
      },
      dispose() {
        engine.dispose();
      },
    };
  },
};

import type { Backend } from "../../backends/backend.ts";
import { kernelsModule, prepareWasmHead } from "./_engine.ts";

/**
 * Our own WebAssembly SIMD engine (AssemblyScript kernels, float32, worker threads on one shared
 * memory; `navigator.hardwareConcurrency` threads). `prepare` validates the input, copies the
 * weights into the shared memory and starts the workers; `run` lays out the samples, runs the fused
 * forward and backward and returns float64 losses, a new float32 ∂/∂features and ∂/∂weights as a
 * view of the engine's memory (valid until the next `run` of the same prepared head; a copy when
 * D is not a multiple of 8). `dispose` ends the workers. Threads take class tiles dynamically (a
 * busy core holds no one up), so sums may associate differently between runs: results agree to
 * float32 rounding, not bit for bit.
 */
export const wasmBackend: Backend = {
  name: "engine-wasm",
  kind: "WASM",
  precision: "float32",
  async availability() {
    if (typeof SharedArrayBuffer === "undefined" || typeof Worker === "undefined") {
      return { available: false, reason: "needs SharedArrayBuffer and Worker" };
    }
    try {
      await kernelsModule();
      return { available: true };
    } catch (error) {
      return { available: false, reason: error instanceof Error ? error.message : String(error) };
    }
  },
  async prepare(head, input, reduction) {
    const prepared = await prepareWasmHead(head, input, reduction);
    return { run: () => prepared.run(), dispose: () => prepared.dispose() };
  },
};

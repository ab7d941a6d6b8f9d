/**
 * engine-wasm: fused float32 WebAssembly SIMD kernels (AssemblyScript, assembly/kernels.ts) on
 * worker threads of one process-wide pool, over one shared memory per prepared head.
 *
 * For c_ij = x̂_i·w_j/‖w_j‖ and z_ij = a_i·b_j·c_ij (j ≠ y_i), each run:
 * - host, before its first await (_inputs.ts): copies W (and the bias) into the memory, packs x̂
 *   twice, and computes in float64 each target's c_iy, f(c_iy), f′(c_iy) and z_iy (through
 *   losses/target.ts) from float64 copies of x and of the N target rows of W;
 * - forward (threads take class tiles of 128 from an atomic counter): ‖w_j‖ of the tile (float64
 *   where float32 would overflow), a 6×8 register-blocked SIMD product for the cosines into one
 *   Cp×Np buffer (kept for the backward: 6·N·D·C flops instead of 8), and an online (max, Σ exp)
 *   over the non-target classes per sample and thread;
 * - barrier; every thread combines the statistics and z_iy into log Σ_j exp(z_ij);
 * - backward, tile by tile, non-targets only: ∂/∂z = w·p, ∂/∂c = ∂/∂z·a·b, the tile's ∂/∂W rows
 *   with the normalisation and radius terms, and the tile's share of Σ_j ∂/∂c_ij·ŵ_j and of the
 *   per-sample sums, added to the thread's float64 accumulators, so the error does not grow with
 *   C (both products are the same 6×8 microkernel as the cosines, 4×8 for a block's last rows);
 * - host (_finish.ts): losses as log(1 + Σ_{j≠y} e^(z_j − z_y)) and 1 − p_y without
 *   cancellation, the sum of the partials, the row-norm backward of x, and each target's whole
 *   contribution in float64.
 * A forward-only run (`forward`, AdaCos's first run) stops after the combine: the backward returns
 * at once (SLOT_FORWARD_ONLY) and the host computes the losses alone.
 *
 * @module
 */
import { optionsObject } from "../../losses/checks.ts";
import type {
  Engine,
  EngineHead,
  EngineOptions,
  HeadShape,
  RunInput,
  RunSettings,
} from "../engine.ts";
import * as L from "./assembly/layout.ts";
import { CONTROL, PARAMS, type WasmLayout, wasmLayout } from "./_layout.ts";
import {
  attachHead,
  defaultThreads,
  type HeadThreads,
  type KernelBuild,
  kernelsModule,
  runtimeProblem,
  threadingLine,
} from "./_runtime.ts";
import { checkScale, finishLosses, finishRun, headMemory, layOutRun, writeSlots } from "./_run.ts";
import {
  checkSyncHead,
  prepareBlocking,
  prepareNow,
  type SyncMode,
  type SyncWasmHead,
} from "./_blocking.ts";
import {
  checkSubCenters,
  type HostHeadSpec,
  hostSuccessorSupport,
  kernelClamp,
  kernelHardNegatives,
  kernelHead,
  kernelSubCenters,
} from "../host/samples.ts";
import { onKeptInput, runHead, successorPreparer } from "../adacos.ts";

export type { KernelBuild } from "./_runtime.ts";

const PREPARE = "prepareHead (wasm)";
const RUN = "wasm run";

/** Options of engine-wasm. */
export interface WasmEngineOptions extends EngineOptions {
  /** Classes per tile (a multiple of 4). @default {128} */
  tile?: number;
  /** Which build of the kernels (for tests of the fallback). @default {relaxed where valid} */
  kernels?: KernelBuild;
}

function engineOptions(options: WasmEngineOptions | undefined) {
  const o = optionsObject(PREPARE, options, ["threads", "tile", "kernels"]);
  const threads = o.threads ?? defaultThreads(), tile = o.tile ?? 128;
  if (!Number.isInteger(threads) || threads < 1 || threads > L.MAX_THREADS) {
    throw new RangeError(
      `${PREPARE}: options.threads must be an integer in [1, ${L.MAX_THREADS}], got ${threads}`,
    );
  }
  if (!Number.isInteger(tile) || tile < 4 || tile % 4 !== 0) {
    throw new RangeError(`${PREPARE}: options.tile must be a positive multiple of 4, got ${tile}`);
  }
  if (o.kernels !== undefined && o.kernels !== "relaxed" && o.kernels !== "simd") {
    throw new RangeError(`${PREPARE}: options.kernels must be "relaxed" or "simd"`);
  }
  return { threads, tile, kernels: o.kernels };
}

/**
 * engine-wasm behind the engine contract: float32 kernels, float64 losses and per-sample target
 * terms. Threads take class tiles dynamically (a busy core holds no one up), so sums may associate
 * differently between runs: results agree to float32 rounding, not bit for bit.
 */
export const wasmEngine: Engine<Float32Array, WasmEngineOptions> = {
  name: "engine-wasm",
  kind: "WASM",
  precision: "float32",
  threaded: true,
  checksValues: true,
  writesInto: true,
  async availability() {
    const problem = runtimeProblem();
    if (problem) return { available: false, reason: problem };
    try {
      await kernelsModule(PREPARE);
      return { available: true, detail: threadingLine() };
    } catch (error) {
      return { available: false, reason: error instanceof Error ? error.message : String(error) };
    }
  },
  supports: () => true,
  prepare: (head, shape, options) => prepareWasm(head, shape, options),
  supportsSuccessor: (head) => hostSuccessorSupport("engine-wasm", head),
  prepareSuccessor: successorPreparer(PREPARE, prepareWasm),
};

/**
 * A head on the kernels: a successor head runs them as its scale-s head without margin
 * (engines/host/samples.ts's kernelHead), its targets finished on the host.
 */
async function prepareWasm(
  head: HostHeadSpec,
  shape: HeadShape,
  options: WasmEngineOptions,
): Promise<EngineHead<Float32Array>> {
  const { threads, tile, kernels } = engineOptions(options);
  const base = kernelHead(head);
  checkScale(PREPARE, base);
  checkSubCenters(PREPARE, head, shape.classes);
  const layout = wasmLayout(PREPARE, base, shape, {
    tile,
    threads,
    clamp: kernelClamp(head),
    subCenters: kernelSubCenters(head),
    hard: kernelHardNegatives(head),
  });
  const memory = headMemory(layout);
  writeSlots(base, layout, memory);
  const module = await kernelsModule(PREPARE, kernels);
  const pool = await attachHead(PREPARE, module, memory, CONTROL, layout.threads);
  return wasmHead(head, layout, memory, pool);
}

function wasmHead(
  head: HostHeadSpec,
  layout: WasmLayout,
  shared: WebAssembly.Memory,
  pool: HeadThreads,
): EngineHead<Float32Array> {
  // Dropped at dispose, so that a disposed head no longer holds the memory.
  let memory: WebAssembly.Memory | undefined = shared;
  let running: Promise<unknown> | undefined;
  // The input whose cosines the memory holds: the last call's, a forward-only pass that completed.
  let cosinesOf: RunInput | undefined;
  /** The kernels' passes of one run; everything read from the caller's arrays before its await. */
  async function kernels(view: RunInput, settings: RunSettings, forwardOnly: boolean) {
    if (!memory) throw new Error(`${RUN}: the head was disposed`);
    if (running) {
      throw new Error(`${RUN}: a run of this head is in flight (prepareHead queues runs)`);
    }
    const now = runHead(head, settings); // AdaCos's per-run scale, where given
    const mine = memory;
    const reuseCosines = settings.sameInput === true && onKeptInput(view, cosinesOf);
    cosinesOf = undefined;
    const samples = layOutRun(now, layout, mine, view, settings.reduction, {
      forwardOnly,
      reuseCosines,
    });
    const task = pool.run(PARAMS);
    running = task.catch(() => {});
    try {
      await task;
    } finally {
      running = undefined;
    }
    if (forwardOnly) cosinesOf = view;
    return { now, mine, samples };
  }
  return {
    threads: pool.threads,
    async run(view, settings) {
      const bias = view.bias !== undefined;
      const { now, mine, samples } = await kernels(view, settings, false);
      return finishRun(kernelHead(now), layout, mine, samples, { ...settings, bias });
    },
    async forward(view, settings) {
      const { mine, samples } = await kernels(view, settings, true);
      const { loss, losses } = finishLosses(layout, mine, samples, settings.reduction);
      return { loss, losses };
    },
    dispose() {
      if (!memory) return;
      memory = undefined;
      // A run in flight still uses the threads: they are released when it ends.
      if (running) return running.then(() => pool.detach());
      pool.detach();
    },
  };
}

// ── Synchronous runs (train/tfjs_loss.ts runs engine-wasm inside tf.customGrad): _blocking.ts ──

export { canBlock, type SyncMode, type SyncWasmHead } from "./_blocking.ts";

/** Options of {@linkcode prepareSyncWasmHead}. */
export interface SyncWasmOptions extends WasmEngineOptions {
  /**
   * `"blocking"`: the worker threads compute and the calling thread waits for them in
   * Atomics.wait (Deno, Node.js, any worker); `"calling-thread"`: the calling thread computes
   * alone (a browser's main thread, which may not block). @default {"blocking" where the calling
   * thread may block and threads > 1, else "calling-thread"}
   */
  mode?: SyncMode;
}

/**
 * Prepares `head` on engine-wasm for runs that return synchronously (`runSync`), for callers that
 * cannot await, such as the forward function of `tf.customGrad`. `head` may be any head engine-wasm
 * computes, a successor head included (`wasmEngine.supportsSuccessor`; AdaCos runs as two runs of
 * its scale-only head). The head's numbers may change from run to run, and its structure within
 * the memory prepared for the first head's (a run whose structure needs more, such as sub-center
 * ArcFace's larger tile on a head prepared for another, is refused: prepare with the runs' head);
 * its sizes may not.
 *
 * @example
 * ```ts
 * import { prepareSyncWasmHead } from "./engine.ts";
 * import { arcFaceHead } from "../../losses/arcface.ts";
 * import { matrix } from "../../losses/matrix.ts";
 * import assert from "node:assert";
 *
 * const head = await prepareSyncWasmHead(arcFaceHead(), { samples: 2, dims: 3, classes: 4 });
 * const { loss } = head.runSync(arcFaceHead(), {
 *   features: matrix(2, 3, [1, 0, 0, 0, 1, 0]),
 *   weights: matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
 *   labels: [0, 1],
 * });
 * assert.ok(Number.isFinite(loss));
 * head.dispose();
 * ```
 *
 * @param head The head the runs start with.
 * @param shape N samples, D dims, C classes of every run.
 * @param options Threads, and how the calling thread takes part.
 * @returns The prepared head; release it with `dispose()`.
 */
export async function prepareSyncWasmHead(
  head: HostHeadSpec,
  shape: HeadShape,
  options?: SyncWasmOptions,
): Promise<SyncWasmHead> {
  const where = "prepareSyncWasmHead";
  return await prepareBlocking(where, head, shape, syncSettings(where, head, shape, options));
}

/**
 * {@linkcode prepareSyncWasmHead} without an `await`, for a caller that meets a new shape inside a
 * synchronous function: the worker threads take the kernels while the first run is on its way.
 * Needs the kernels compiled synchronously: in Deno always; elsewhere only after an asynchronous
 * preparation (it throws otherwise).
 *
 * @param head The head the runs start with.
 * @param shape N samples, D dims, C classes of every run.
 * @param options Threads, and how the calling thread takes part.
 * @returns The prepared head; release it with `dispose()`.
 */
export function createSyncWasmHead(
  head: HostHeadSpec,
  shape: HeadShape,
  options?: SyncWasmOptions,
): SyncWasmHead {
  const where = "createSyncWasmHead";
  return prepareNow(where, head, shape, syncSettings(where, head, shape, options)).head;
}

function syncSettings(
  where: string,
  head: HostHeadSpec,
  shape: HeadShape,
  options: SyncWasmOptions | undefined,
) {
  checkSyncHead(where, head);
  for (const name of ["samples", "dims", "classes"] as const) {
    if (!Number.isInteger(shape?.[name]) || shape[name] < 1) {
      throw new RangeError(
        `${where}: shape.${name} must be a positive integer, got ${shape?.[name]}`,
      );
    }
  }
  const { mode, ...rest } = optionsObject(where, options, [
    "threads",
    "tile",
    "kernels",
    "mode",
  ]) as SyncWasmOptions;
  if (mode !== undefined && mode !== "blocking" && mode !== "calling-thread") {
    throw new RangeError(`${where}: options.mode must be "blocking" or "calling-thread"`);
  }
  return { ...engineOptions(rest), mode };
}

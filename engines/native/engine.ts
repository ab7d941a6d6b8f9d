/**
 * engine-native: the fused head with its matrix products in the machine's BLAS (cblas_sgemm through
 * Deno's FFI: OpenBLAS on Linux, Accelerate on macOS, any CBLAS by path) and its elementwise work in
 * WebAssembly SIMD, both on one shared WebAssembly.Memory, so nothing moves between them.
 *
 * The algorithm, for c_ij = x̂_i·w_j/‖w_j‖ and z_ij = a_i·b_j·c_ij (j ≠ y_i), with classes in tiles
 * of `tile` (1024 for D = 512: a tile of W, of ∂/∂W and of the products stays in the core's cache):
 * - host (calling thread), per run: x̃_i = a_i·x̂_i in float32 (x_i for a linear head), and each
 *   target logit z_iy with c_iy, f(c_iy), f′(c_iy) in float64 through losses/target.ts, from the
 *   N target rows of W;
 * - forward, tile by tile (threads take tiles from a shared counter): W's tile rows copied into the
 *   thread's tile (the only copy of W, from the caller's array, cache-resident from then on), their
 *   norms (wasm), S_t = X̃·W_tᵀ (sgemm), then in place (wasm) z = S·b_j/‖w_j‖ (+ bias),
 *   targets masked, the row max m_t and e = exp(z − m_t) with its row sum: one exp per logit;
 * - host: log Σ_j exp z_ij from the tiles' (m_t, Σ) and the target, the losses as
 *   log1p(Σ_{j≠y} e^(z_j − z_y)), and F_ti = weight·e^(m_t − lse_i);
 * - backward, tile by tile: W's tile again, H = e·F_ti·b_j/‖w_j‖ in place (wasm; the gradient with
 *   respect to the products), ∂x̃ += H_t·W_t (sgemm, per thread), ∂W_t = H_tᵀ·X̃ (sgemm into the
 *   thread's tile), the normalisation backward of w_j (wasm: σ_j = ∂W_j·w_j, ∂W_j −= σ_j·w_j/‖w_j‖²)
 *   and the tile copied into the new ∂/∂W array;
 * - host: the threads' ∂x̃ summed, the row-norm backward of x and each target's whole contribution
 *   in float64.
 * A forward-only run (`forward`, AdaCos's first run) stops after the host's losses: no BACKWARD
 * phase, so none of its two products; for a plain head (angular, scale radius, no bias, clamp, hard
 * negatives or sub-centers) its epilogue only reads the products, and the run after it on the same
 * arrays (`sameInput`: AdaCos's second, at a new scale) starts from them, rescaled, with no forward
 * product and no norms.
 * The N×C products stay between the passes (float32, 100 MB at N 256, C 100 000): recomputing them
 * would cost a fourth product (8·N·D·C flops instead of 6). Each thread runs one-thread GEMMs
 * (the BLAS's own threads are set to 1 while a run lasts), so the elementwise work runs on every
 * core right after its tile's product, in cache. A run is synchronous: the calling thread takes
 * tiles too and waits for the helpers at the two barriers, so the caller's arrays are read in place
 * (never copied whole) and cannot change meanwhile.
 *
 * @module
 */
import type { Availability, Engine, EngineHead, EngineOptions, HeadShape } from "../engine.ts";
import { type BlasInfo, ffiUnavailable, findBlas } from "./blas.ts";
import { nativeLayout, tiling } from "./_layout.ts";
import { callingThreadPool, startPool } from "./_pool.ts";
import { NativeHead } from "./_run.ts";
import {
  checkSubCenters,
  type HostHeadSpec,
  hostSuccessorSupport,
  kernelClamp,
  kernelHardNegatives,
  kernelHead,
  kernelSubCenters,
} from "../host/samples.ts";
import { successorPreparer } from "../adacos.ts";

export { defaultTile } from "./_layout.ts";

const WHERE = "engine-native";
const MAX_THREADS = 64;

/** Options of engine-native. */
export interface NativeEngineOptions extends EngineOptions {
  /**
   * Threads that take class tiles, the calling thread included; each runs one-thread BLAS
   * products and its own epilogue. With 1, the BLAS keeps its own threads (all cores) for the
   * products and the epilogue runs on the calling thread.
   * @default {the logical cores, or 1 with a BLAS whose thread count cannot be set}
   */
  threads?: number;
  /** A CBLAS to load (a path or a soname) instead of looking for one. */
  library?: string;
  /** Classes per tile, a multiple of 4. @default {about 2 MiB of W rows: 1024 at D = 512} */
  tile?: number;
}

let wasmModule: Promise<WebAssembly.Module> | undefined;

/** The compiled epilogue (build/epilogue.wasm). */
function epilogueModule(): Promise<WebAssembly.Module> {
  wasmModule ??= (async () => {
    const url = new URL("./build/epilogue.wasm", import.meta.url);
    const bytes = url.protocol === "file:"
      ? await Deno.readFile(url)
      : new Uint8Array(await (await fetch(url)).arrayBuffer());
    if (!WebAssembly.validate(bytes)) {
      throw new Error("this runtime does not validate build/epilogue.wasm (no WebAssembly SIMD?)");
    }
    return await WebAssembly.compile(bytes);
  })();
  wasmModule.catch(() => wasmModule = undefined);
  return wasmModule;
}

let compiledNow: WebAssembly.Module | undefined;

/** The compiled epilogue, synchronously (a local file: Deno, Node.js). */
function epilogueModuleNow(): WebAssembly.Module {
  const url = new URL("./build/epilogue.wasm", import.meta.url);
  if (url.protocol !== "file:") {
    throw new Error(`${WHERE}: a synchronous head needs the epilogue as a local file, not ${url}`);
  }
  return compiledNow ??= new WebAssembly.Module(Deno.readFileSync(url));
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

/**
 * The CBLAS engine-native would use (`library`, or the first one found), as it describes itself:
 * the library, "OpenBLAS 0.3.21 (SkylakeX kernels)" and a hint when its kernels are slower than
 * the CPU allows. Throws with the reason when there is none.
 */
export function nativeBlasInfo(library?: string): BlasInfo {
  return findBlas(library).info;
}

let probe: Promise<Availability> | undefined;

async function availability(): Promise<Availability> {
  const denied = ffiUnavailable();
  if (denied) return { available: false, reason: denied };
  if (typeof SharedArrayBuffer === "undefined" || typeof WebAssembly === "undefined") {
    return { available: false, reason: "needs WebAssembly with shared memory" };
  }
  let info: BlasInfo;
  try {
    info = findBlas().info;
    await epilogueModule();
  } catch (error) {
    return { available: false, reason: errorText(error) };
  }
  const cores = navigator.hardwareConcurrency ?? 1;
  const threads = info.threadControl
    ? `${cores} threads, each with one-thread products`
    : "the BLAS's own threads for the products";
  return {
    available: true,
    detail: `${info.summary} from ${info.library}; ${threads}${info.note ? `; ${info.note}` : ""}`,
  };
}

function checkOptions(options: NativeEngineOptions) {
  const { threads, library, tile } = options;
  for (const key of Object.keys(options)) {
    if (!["threads", "library", "tile"].includes(key)) {
      throw new TypeError(`${WHERE}: unknown option "${key}"; it takes threads, library, tile`);
    }
  }
  if (
    threads !== undefined && (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS)
  ) {
    throw new RangeError(
      `${WHERE}: options.threads must be an integer in [1, ${MAX_THREADS}], got ${threads}`,
    );
  }
  if (library !== undefined && (typeof library !== "string" || library === "")) {
    throw new TypeError(`${WHERE}: options.library must be a path to a CBLAS, got ${library}`);
  }
  if (tile !== undefined && (!Number.isInteger(tile) || tile < 4 || tile % 4 !== 0)) {
    throw new RangeError(`${WHERE}: options.tile must be a positive multiple of 4, got ${tile}`);
  }
}

/** Everything of a head but its threads: checked options, the BLAS, the layout, the memory. */
function headMemory(head: HostHeadSpec, shape: HeadShape, options: NativeEngineOptions) {
  checkOptions(options);
  const base = kernelHead(head); // a successor head's kernels: scale s, no margin
  const { lib, info } = findBlas(options.library);
  const cores = navigator.hardwareConcurrency ?? 1;
  const wanted = Math.min(options.threads ?? (info.threadControl ? cores : 1), MAX_THREADS);
  checkSubCenters(WHERE, head, shape.classes);
  const K = kernelSubCenters(head);
  const split = tiling(shape.classes, shape.dims, wanted, options.tile, K);
  const hard = kernelHardNegatives(head);
  const { layout, pages } = nativeLayout(base, shape, split, kernelClamp(head), K, hard);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  if (!layout.angular) new Float32Array(memory.buffer, layout.colf, shape.classes).fill(1);
  return { lib, info, layout, memory, cores };
}

async function prepare(
  head: HostHeadSpec,
  shape: HeadShape,
  options: NativeEngineOptions,
): Promise<EngineHead<Float32Array>> {
  const native = await prepareSyncNativeHead(head, shape, options);
  const settled = <R>(pass: () => R): Promise<R> => {
    try {
      return Promise.resolve(pass());
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return {
    threads: native.threads,
    run: (view, settings) => settled(() => native.run(view, settings)),
    forward: (view, settings) => settled(() => native.forward(view, settings)),
    dispose: () => native.dispose(),
  };
}

/**
 * Prepares `head` on engine-native for runs that return synchronously (`run`, `forward` of
 * {@linkcode NativeHead}), for callers that cannot await, such as the forward function of
 * `tf.customGrad`: its helper threads started, as `prepareHead` starts them. A run's head may change
 * the prepared one's numbers (a successor's state, a margin), not its structure.
 *
 * @param head The head the runs start with.
 * @param shape The sizes of every run.
 * @param options engine-native's options.
 * @returns The prepared head; release it with `dispose()`.
 */
export async function prepareSyncNativeHead(
  head: HostHeadSpec,
  shape: HeadShape,
  options: NativeEngineOptions = {},
): Promise<NativeHead> {
  const { lib, info, layout, memory, cores } = headMemory(head, shape, options);
  const pool = await startPool(await epilogueModule(), memory, layout, {
    lib,
    library: info.library,
  });
  return new NativeHead({ head, layout, memory, pool, cores });
}

/**
 * {@linkcode prepareSyncNativeHead} at once, on one thread (the calling thread, with the BLAS's own
 * threads for the products): no helper thread to wait for.
 *
 * @param head The head the runs start with.
 * @param shape The sizes of every run.
 * @param options engine-native's options (`threads` is 1 here).
 * @returns The prepared head; release it with `dispose()`.
 */
export function createSyncNativeHead(
  head: HostHeadSpec,
  shape: HeadShape,
  options: NativeEngineOptions = {},
): NativeHead {
  const { lib, layout, memory, cores } = headMemory(head, shape, { ...options, threads: 1 });
  const pool = callingThreadPool(epilogueModuleNow(), memory, layout, lib);
  return new NativeHead({ head, layout, memory, pool, cores });
}

export type { NativeHead };

/**
 * The fused head on the machine's BLAS: cblas_sgemm through Deno's FFI for the three products,
 * WebAssembly SIMD for the elementwise work, on one shared memory, float32 with the per-sample
 * target terms in float64. Needs `--allow-ffi` and a CBLAS: Debian's and Ubuntu's
 * `libopenblas0-pthread`, Fedora's `openblas`, Accelerate on macOS, or any CBLAS by path
 * (`options.library`). A run is synchronous (it blocks the calling thread while the BLAS and the
 * helper threads work) and reads the caller's arrays in place.
 */
export const nativeEngine: Engine<Float32Array, NativeEngineOptions> = {
  name: WHERE,
  kind: "CPU",
  precision: "float32",
  threaded: true,
  checksValues: true,
  writesInto: true,
  availability: () => probe ??= availability(),
  supports: () => true,
  prepare,
  supportsSuccessor: (head) => hostSuccessorSupport(WHERE, head),
  prepareSuccessor: successorPreparer(WHERE, prepare),
};

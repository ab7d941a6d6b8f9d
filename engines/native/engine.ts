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
import { reductionWeight } from "../../losses/cross_entropy.ts";
import type {
  Availability,
  Engine,
  EngineHead,
  EngineOptions,
  EngineResult,
  ForwardResult,
  HeadShape,
  RunInput,
  RunSettings,
} from "../engine.ts";
import { type BlasInfo, ffiUnavailable, findBlas } from "./blas.ts";
import {
  BACKWARD,
  BAD,
  BAD_GRAD,
  BAD_LOGITS,
  BAD_WEIGHTS,
  ERROR,
  FORWARD,
  HAS_BIAS,
  KEEP_PRODUCTS,
  LOGITS,
  type NativeLayout,
  ON_PRODUCTS,
  PRODUCTS,
  RATIO,
  SLOT_GW,
  SLOT_LOGITS,
  SLOT_W,
  threadRegions,
  W_BYTES,
} from "./_tiles.ts";
import { nativeLayout, tiling } from "./_layout.ts";
import { type Pool, startPool } from "./_pool.ts";
import { finishGradients, finishLogits, rowStatistics, stageSamples } from "./_host.ts";
import {
  checkSubCenters,
  type HostHeadSpec,
  hostSuccessorSupport,
  kernelClamp,
  kernelHardNegatives,
  kernelHead,
  kernelSubCenters,
  successorOutputs,
  targetRow,
} from "../host/samples.ts";
import { runHead, successorPreparer } from "../adacos.ts";

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

/** The address of a typed array, for the threads (.buffer first moves a small array off V8's heap). */
function address(array: Float32Array | Float64Array): bigint {
  void array.buffer;
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(array)));
}

const finite = (name: string, data: ArrayLike<number>) => {
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) {
      throw new RangeError(`${WHERE}: ${name} overflowed float32 at ${k} (inputs too large)`);
    }
  }
};

/**
 * The kernels do not look at every input value (a NaN shows as a non-finite logit or loss); when a
 * run fails, the input is scanned so that the error names the argument and the index.
 */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The input value a failed run's error should name, if any.
 */
function inputBlamed(view: RunInput): RangeError | undefined {
  const arrays = [["features", view.x], ["weights", view.w], ["bias", view.bias ?? []]] as const;
  for (const [name, data] of arrays) {
    for (let k = 0; k < data.length; k++) {
      if (!Number.isFinite(data[k])) {
        return new RangeError(`${WHERE}: ${name} must hold finite numbers, got ${data[k]} at ${k}`);
      }
      if (Math.abs(data[k]) > FLOAT32_MAX) {
        return new RangeError(
          `${WHERE}: ${name} exceed the float32 range (|v| ≤ 3.4e38): ${data[k]} at ${k}`,
        );
      }
    }
  }
  return undefined;
}

/** How a run treats the products of the forward pass (see {@linkcode KeptProducts}). */
interface ProductsUse {
  /** 0, KEEP_PRODUCTS or ON_PRODUCTS. */
  mode: number;
  /** ON_PRODUCTS: this run's scale over the kept products' (float32). */
  ratio: number;
  /** This run's scale (a head of scale radius). */
  scale: number;
}

/**
 * The input whose products (S = X̃·Wᵀ) the memory holds after a forward-only run of a plain head
 * (angular, scale radius; no bias, cosine clamp, hard negatives or sub-centers): AdaCos's first
 * run, whose products its second run, at a new scale on the same arrays (`sameInput`), starts from.
 */
class KeptProducts {
  #of?: { view: RunInput; scale: number };
  constructor(readonly layout: NativeLayout) {}

  /** How this run treats the products; any run ends what was kept. */
  use(
    head: HostHeadSpec,
    view: RunInput,
    settings: RunSettings,
    forwardOnly: boolean,
  ): ProductsUse {
    const last = this.#of, L = this.layout;
    this.#of = undefined;
    const plain = !("successor" in head) && head.logits === "angular" &&
      head.radius.kind === "scale" && !view.bias && L.zlo === -Infinity && !L.hard &&
      !L.subCenters;
    if (!plain) return { mode: 0, ratio: 1, scale: 0 };
    const scale = (head.radius as { scale: number }).scale;
    if (forwardOnly) return { mode: KEEP_PRODUCTS, ratio: 1, scale };
    const same = last?.view.x === view.x && last.view.w === view.w &&
      last.view.labels === view.labels;
    if (settings.sameInput && same) {
      return { mode: ON_PRODUCTS, ratio: Math.fround(scale / last!.scale), scale };
    }
    return { mode: 0, ratio: 1, scale };
  }

  /** Records the forward-only run that left its products. */
  keep(view: RunInput, scale: number): void {
    this.#of = { view, scale };
  }
}

/** The forward pass and the losses, synchronously: a forward-only run, or a full run's first half. */
function forwardSync(
  head: HostHeadSpec,
  L: NativeLayout,
  memory: WebAssembly.Memory,
  pool: Pool,
  view: RunInput,
  settings: RunSettings & { logitsOut?: Float32Array; products?: ProductsUse },
) {
  const buffer = memory.buffer, logits = settings.logitsOut;
  const ctl = new Int32Array(buffer, L.control, 16);
  ctl[PRODUCTS] = settings.products?.mode ?? 0;
  new Float32Array(buffer, L.control + 4 * RATIO, 1)[0] = settings.products?.ratio ?? 1;
  const slots = new BigInt64Array(buffer, L.control + 64, 4);
  const weight = reductionWeight(settings.reduction, L.N);
  const samples = stageSamples(head, L, buffer, view);
  if (view.bias) new Float32Array(buffer, L.bias, L.C).set(view.bias);
  // The caller's W stays where it is: the threads read its tiles through its address.
  ctl[W_BYTES] = view.w.BYTES_PER_ELEMENT;
  slots[SLOT_W] = address(view.w);
  if (logits) slots[SLOT_LOGITS] = address(logits);
  ctl[HAS_BIAS] = view.bias ? 1 : 0;
  ctl[LOGITS] = logits ? 1 : 0;
  ctl[BAD] = ctl[ERROR] = 0;

  pool.phase(FORWARD);
  const bad = Atomics.load(ctl, BAD);
  if (bad & BAD_WEIGHTS) throw new RangeError(`${WHERE}: weights exceed the float32 range`);
  if (bad & BAD_LOGITS) {
    throw new RangeError(`${WHERE}: logits overflowed float32 (inputs too large for this loss)`);
  }
  const { reduction } = settings;
  const statistics = rowStatistics(L, buffer, samples.zy, weight, reduction, samples.extraLoss);
  return { samples, statistics, weight };
}

/** Both passes and the host's work around them, synchronously. */
function runSync(
  head: HostHeadSpec,
  L: NativeLayout,
  memory: WebAssembly.Memory,
  pool: Pool,
  view: RunInput,
  settings: RunSettings & { products?: ProductsUse },
): EngineResult<Float32Array> {
  const buffer = memory.buffer;
  const ctl = new Int32Array(buffer, L.control, 16);
  const slots = new BigInt64Array(buffer, L.control + 64, 4);
  const { N, D, C } = L;
  const classes = L.subCenters ? C / L.subCenters : C; // sub-center ArcFace: C counts C·K rows
  const logits = settings.logits ? new Float32Array(N * classes) : undefined;
  const { samples, statistics, weight } = forwardSync(head, L, memory, pool, view, {
    ...settings,
    logitsOut: logits,
  });
  ctl[PRODUCTS] = 0; // the backward phase overwrites them
  const { loss, losses, rest } = statistics;
  // The kernels write every element of ∂W: `into`'s array needs no clearing.
  const gradWeights = (settings.into?.gradWeights as Float32Array) ?? new Float32Array(C * D);
  slots[SLOT_GW] = address(gradWeights);
  pool.phase(BACKWARD);
  if (Atomics.load(ctl, BAD) & BAD_GRAD) {
    throw new RangeError(`${WHERE}: gradWeights overflowed float32 (inputs too large)`);
  }

  const parts = Array.from(
    { length: L.threads },
    (_, t) => new Float32Array(buffer, threadRegions(L, t).gx, N * D),
  );
  const gradBias = view.bias ? new Float32Array(buffer, L.gb, C).slice() : undefined;
  const gradFeatures = finishGradients(
    kernelHead(head),
    samples,
    rest,
    weight,
    parts,
    gradWeights,
    gradBias,
  );
  finite("loss", [loss]);
  finite("losses", losses);
  finite("gradFeatures", gradFeatures);
  for (let i = 0; i < N; i++) {
    const y = targetRow(samples, i);
    finite("gradWeights", gradWeights.subarray(y * D, y * D + D));
  }
  if (gradBias) finite("gradBias", gradBias);
  const result: EngineResult<Float32Array> = {
    loss,
    losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradWeights: { rows: C, cols: D, data: gradWeights },
    ...successorOutputs(samples),
  };
  if (gradBias) result.gradBias = gradBias;
  if (logits) {
    finishLogits(samples, logits, classes);
    finite("logits", logits);
    result.logits = { rows: N, cols: classes, data: logits };
  }
  return result;
}

/** The forward pass alone (no BACKWARD phase, none of its products): the losses. */
function forwardOnly(
  head: HostHeadSpec,
  L: NativeLayout,
  memory: WebAssembly.Memory,
  pool: Pool,
  view: RunInput,
  settings: RunSettings & { products?: ProductsUse },
): ForwardResult {
  const { reduction, products } = settings;
  const { loss, losses } = forwardSync(head, L, memory, pool, view, {
    reduction,
    logits: false,
    products,
  }).statistics;
  finite("loss", [loss]);
  finite("losses", losses);
  return { loss, losses };
}

async function prepare(
  head: HostHeadSpec,
  shape: HeadShape,
  options: NativeEngineOptions,
): Promise<EngineHead<Float32Array>> {
  checkOptions(options);
  const base = kernelHead(head); // a successor head's kernels: scale s, no margin
  const { lib, info } = findBlas(options.library);
  const module = await epilogueModule();
  const cores = navigator.hardwareConcurrency ?? 1;
  const wanted = Math.min(options.threads ?? (info.threadControl ? cores : 1), MAX_THREADS);
  checkSubCenters(WHERE, head, shape.classes);
  const K = kernelSubCenters(head);
  const split = tiling(shape.classes, shape.dims, wanted, options.tile, K);
  const hard = kernelHardNegatives(head);
  const { layout, pages } = nativeLayout(base, shape, split, kernelClamp(head), K, hard);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  if (!layout.angular) new Float32Array(memory.buffer, layout.colf, shape.classes).fill(1);
  const pool = await startPool(module, memory, layout, { lib, library: info.library });
  let disposed = false;
  const kept = new KeptProducts(layout);
  function guarded<R>(
    pass: (...args: Parameters<typeof runSync>) => R,
    view: RunInput,
    settings: RunSettings,
  ): Promise<R> {
    if (disposed) return Promise.reject(new Error(`${WHERE}: run() after dispose()`));
    // One-thread products on each of our threads; with one thread, the BLAS's own threads.
    const restore = pool.main.blasThreads(layout.threads > 1 ? 1 : cores);
    try {
      const now = runHead(head, settings); // AdaCos's per-run scale, where given
      const products = kept.use(now, view, settings, pass === forwardOnly);
      const result = pass(now, layout, memory, pool, view, { ...settings, products });
      if (products.mode === KEEP_PRODUCTS) kept.keep(view, products.scale);
      return Promise.resolve(result);
    } catch (error) {
      return Promise.reject(inputBlamed(view) ?? error);
    } finally {
      restore();
    }
  }
  return {
    threads: layout.threads,
    run: (view, settings) => guarded(runSync, view, settings),
    forward: (view, settings) => guarded(forwardOnly, view, settings),
    dispose() {
      if (disposed) return;
      disposed = true;
      pool.dispose();
    },
  };
}

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

/**
 * engine-wasm: fused float32 WebAssembly SIMD kernels (AssemblyScript, assembly/kernels.ts) on
 * worker threads of one process-wide pool, over one shared memory per prepared head.
 *
 * For c_ij = x̂_i·w_j/‖w_j‖ and z_ij = a_i·b_j·c_ij (j ≠ y_i), each run:
 * - host, before its first await (_inputs.ts): copies W (and the bias) into the memory, packs x̂
 *   twice, and computes in float64 each target's c_iy, f(c_iy), f′(c_iy) and z_iy (through
 *   losses/target.ts) from float64 copies of x and of the N target rows of W;
 * - forward (threads take class tiles of 128 from an atomic counter): ‖w_j‖ of the tile (float64
 *   where float32 would overflow), a 4×8 register-blocked SIMD product for the cosines into one
 *   Cp×Np buffer (kept for the backward: 6·N·D·C flops instead of 8), and an online (max, Σ exp)
 *   over the non-target classes per sample and thread;
 * - barrier; every thread combines the statistics and z_iy into log Σ_j exp(z_ij);
 * - backward, tile by tile, non-targets only: ∂/∂z = w·p, ∂/∂c = ∂/∂z·a·b, the tile's ∂/∂W rows
 *   with the normalisation and radius terms, and the tile's share of Σ_j ∂/∂c_ij·ŵ_j and of the
 *   per-sample sums, added to the thread's float64 accumulators, so the error does not grow with
 *   C (both products are the same 4×8 microkernel as the cosines);
 * - host (_finish.ts): losses as log(1 + Σ_{j≠y} e^(z_j − z_y)) and 1 − p_y without
 *   cancellation, the sum of the partials, the row-norm backward of x, and each target's whole
 *   contribution in float64.
 *
 * @module
 */
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import { reductionWeight } from "../../losses/cross_entropy.ts";
import { type CheckedHeadView, optionsObject } from "../../losses/checks.ts";
import type { Engine, EngineHead, EngineOptions, EngineResult, RunSettings } from "../engine.ts";
import * as L from "./assembly/layout.ts";
import { CONTROL, PARAMS, type WasmLayout, wasmLayout } from "./_layout.ts";
import {
  attachHead,
  defaultThreads,
  type HeadThreads,
  type KernelBuild,
  kernelsModule,
} from "./_runtime.ts";
import {
  checkFloat32,
  fitsFloat32,
  FLOAT32_MAX,
  float32Error,
  layOutWeights,
  packSamples,
  sampleMaths,
  type Samples,
} from "./_inputs.ts";
import {
  addTargetGradients,
  checkFiniteOutput,
  gradFeaturesOf,
  logitsOf,
  lossesOf,
  unpad,
} from "./_finish.ts";

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
  async availability() {
    if (typeof SharedArrayBuffer === "undefined" || typeof Worker === "undefined") {
      return { available: false, reason: "needs SharedArrayBuffer and Worker" };
    }
    try {
      await kernelsModule(PREPARE);
      return { available: true };
    } catch (error) {
      return { available: false, reason: error instanceof Error ? error.message : String(error) };
    }
  },
  supports: () => true,
  async prepare(head, shape, options) {
    const { threads, tile, kernels } = engineOptions(options);
    if (head.logits === "angular" && head.radius.kind === "scale") {
      if (!fitsFloat32(head.radius.scale)) {
        throw new RangeError(
          `${PREPARE}: head.radius.scale must lie within float32's range for this float32 ` +
            `engine, got ${head.radius.scale}`,
        );
      }
    }
    const layout = wasmLayout(PREPARE, head, shape, { tile, threads });
    const memory = new WebAssembly.Memory({
      initial: layout.pages,
      maximum: layout.pages,
      shared: true,
    });
    const params = new Int32Array(memory.buffer, PARAMS, L.PARAM_SLOTS);
    for (const [slot, value] of layout.slots) params[slot] = value;
    if (head.logits === "linear") {
      new Float32Array(memory.buffer, layout.offsets.invcw).fill(1, 0, layout.Cp);
    }
    const module = await kernelsModule(PREPARE, kernels);
    const pool = await attachHead(PREPARE, module, memory, CONTROL, layout.threads);
    return wasmHead(head, layout, memory, pool);
  },
};

function wasmHead(
  head: HeadSpec,
  layout: WasmLayout,
  shared: WebAssembly.Memory,
  pool: HeadThreads,
): EngineHead<Float32Array> {
  // Dropped at dispose, so that a disposed head no longer holds the memory.
  let memory: WebAssembly.Memory | undefined = shared;
  let running: Promise<unknown> | undefined;
  return {
    threads: pool.threads,
    async run(view, settings) {
      if (!memory) throw new Error(`${RUN}: the head was disposed`);
      if (running) {
        throw new Error(`${RUN}: a run of this head is in flight (prepareHead queues runs)`);
      }
      // Everything read from the caller's arrays is read here, before the first await.
      const mine = memory, samples = layOutRun(head, layout, mine, view, settings.reduction);
      const bias = view.bias !== undefined;
      const task = pool.run(PARAMS);
      running = task.catch(() => {});
      try {
        await task;
      } finally {
        running = undefined;
      }
      return finishRun(head, layout, mine, samples, { ...settings, bias });
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

/** Writes a run's inputs into the memory; returns the float64 copies the finishing step needs. */
function layOutRun(
  head: HeadSpec,
  layout: WasmLayout,
  memory: WebAssembly.Memory,
  view: CheckedHeadView,
  reduction: Reduction,
): Samples {
  const { C, Np, Dp, Cp, offsets: o } = layout, buffer = memory.buffer;
  const samples = sampleMaths(RUN, head, view);
  const bias = new Float32Array(buffer, o.bias, C);
  if (view.bias) {
    checkFloat32(RUN, "bias", view.bias);
    bias.set(view.bias);
  } else bias.fill(0);
  layOutWeights(new Float32Array(buffer, o.w, Cp * Dp), view.w, layout.D, Dp);
  packSamples(
    samples,
    {
      xpack: new Float32Array(buffer, o.xpack, Np * Dp),
      xpackk: new Float32Array(buffer, o.xpackk, Np * Dp),
      a: new Float32Array(buffer, o.a, Np),
      zy: new Float64Array(buffer, o.zy, Np),
      labels: new Int32Array(buffer, o.labels, Np),
      weight: new Float32Array(buffer, o.weight, Np),
    },
    Dp,
    reductionWeight(reduction, layout.N),
  );
  const params = new Int32Array(buffer, PARAMS, L.PARAM_SLOTS);
  for (const slot of [L.SLOT_BAD, L.SLOT_BAD_W, L.SLOT_BAD_Z]) params[slot] = 0;
  params[L.SLOT_NEXT_FORWARD] = params[L.SLOT_NEXT_BACKWARD] = 0;
  return samples;
}

/** Reads the kernels' results into new arrays and finishes them in float64. */
function finishRun(
  head: HeadSpec,
  layout: WasmLayout,
  memory: WebAssembly.Memory,
  s: Samples,
  settings: RunSettings & { bias: boolean },
): EngineResult<Float32Array> {
  const { N, D, C, Np, Dp, Cp, offsets: o } = layout, buffer = memory.buffer;
  const params = new Int32Array(buffer, PARAMS, L.PARAM_SLOTS);
  if (params[L.SLOT_BAD_W]) throw weightsError(layout, buffer);
  if (params[L.SLOT_BAD_Z]) throw logitsError();
  const losses = lossesOf(new Float64Array(buffer, o.stats, 2 * Np), s.zy, N, settings.reduction);
  const weight = reductionWeight(settings.reduction, N);
  const radius = head.logits === "angular" ? head.radius.kind : undefined;
  const parts = layout.thread.map((t) => ({
    gx: new Float64Array(buffer, t.gx, Np * Dp),
    sumx: new Float64Array(buffer, t.sumx, Np),
    grada: new Float64Array(buffer, t.grada, Np),
  }));
  const gradFeatures = gradFeaturesOf(s, radius, parts, losses, weight, Dp);
  const gradWeights = unpad(new Float32Array(buffer, o.gw, Cp * Dp), C, D, Dp);
  const gradBias = settings.bias ? new Float32Array(buffer, o.gb, C).slice() : undefined;
  addTargetGradients(s, radius, losses, weight, gradWeights, gradBias);
  checkFiniteOutput(RUN, "gradFeatures", gradFeatures, D);
  if (params[L.SLOT_BAD]) checkFiniteOutput(RUN, "gradWeights", gradWeights, D);
  for (const y of s.labels) {
    checkFiniteOutput(RUN, "gradWeights", gradWeights.subarray(y * D, y * D + D), D, y * D);
  }
  if (gradBias) checkFiniteOutput(RUN, "gradBias", gradBias, C);
  const result: EngineResult<Float32Array> = {
    loss: losses.loss,
    losses: losses.losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradWeights: { rows: C, cols: D, data: gradWeights },
  };
  if (gradBias) result.gradBias = gradBias;
  if (settings.logits) {
    const cos = new Float32Array(buffer, o.cos, Cp * Np);
    const nw = radius === "normProduct" ? new Float32Array(buffer, o.nw, C) : undefined;
    result.logits = { rows: N, cols: C, data: logitsOf(s, cos, Np, C, nw) };
  }
  return result;
}

/** The culprit of a row of W the kernels refused: an element beyond float32, or the row's norm. */
function weightsError(layout: WasmLayout, buffer: ArrayBufferLike): RangeError {
  const { C, D, Dp, offsets: o } = layout;
  const w = new Float32Array(buffer, o.w, C * Dp);
  for (let j = 0; j < C; j++) {
    for (let k = 0; k < D; k++) {
      if (!Number.isFinite(w[j * Dp + k])) {
        return float32Error(RUN, "weights", j * D + k, undefined, D);
      }
    }
  }
  const nw = new Float32Array(buffer, o.nw, C);
  const j = nw.findIndex((n) => !Number.isFinite(n));
  return new RangeError(
    `${RUN}: the norm of weights row ${j} exceeds float32's range (${FLOAT32_MAX}); this float32 ` +
      "engine cannot normalise it",
  );
}

function logitsError(): RangeError {
  return new RangeError(
    `${RUN}: the logits a_i·b_j·cos (or x·w + b) exceed float32's range: features, weights or ` +
      "bias too large for this float32 engine",
  );
}

// The host side of the WebAssembly engine: lays the inputs out in one shared memory, runs the
// kernels on worker threads, and finishes the per-sample work (targets, losses, ∂/∂x) in float64.
//
// The algorithm, for c_ij = x̂_i·w_j/‖w_j‖ and z_ij = a_i·b_j·c_ij (j ≠ y_i):
// - host: x̂ (two packed float32 copies), the radius a_i, and each target logit z_iy with c_iy,
//   f(c_iy), f'(c_iy) in float64 through losses/_target.ts (the margin means what the reference
//   means), from float64 copies of the N target rows of W;
// - forward (threads take class tiles of 64 from an atomic counter): ‖w_j‖ of the tile, a 4×8
//   register-blocked SIMD product for the cosines into one Cp×Np float32 buffer (class-major; kept
//   for the backward rather than recomputed: 6·N·D·C flops instead of 8), and an online
//   (max, Σ exp) over the non-target classes per sample and thread;
// - barrier; every thread combines the statistics and z_iy into log Σ_j exp(z_ij);
// - backward, tile by tile, non-targets only: ∂/∂z = w·p, ∂/∂c = ∂/∂z·a·b, the tile's ∂/∂W rows
//   = Σ_i (∂/∂c_ij/‖w_j‖)·x̂_i + (normalisation and radius terms)·w_j/‖w_j‖, and the thread's
//   partial Σ_j (∂/∂c_ij/‖w_j‖)·w_j for ∂/∂x (N×D per thread);
// - host: losses as log(1 + Σ_{j≠y} e^(z_j − z_y)) and 1 − p_y without cancellation, the sum of
//   the partials, the row-norm backward of x, and each target's whole contribution in float64
//   (f'(c) grows without bound near c = 1, where float32 cancellation would cost accuracy).
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { HeadInput, Reduction } from "../../losses/types.ts";
import type { Matrix } from "../../losses/matrix.ts";
import { targetFunction } from "../../losses/_target.ts";
import { reductionWeight } from "../../losses/_cross_entropy.ts";
import { type CheckedHeadView, reductionOption, viewHeadInput } from "../../losses/_validate.ts";
import * as L from "./assembly/layout.ts";

const WHERE = "wasmHeadLoss";
// The runtime's own Worker, taken before anything can replace it: tfjs-backend-wasm's threaded
// build, believing itself in Node.js, sets globalThis.Worker to node:worker_threads' Worker,
// whose workers have no `self`.
const WebWorker = globalThis.Worker;
const NORM_EPS = 1e-12;
/** Where the barrier words live; AssemblyScript's static data ends well below. */
const CONTROL = 32768;
const PARAMS = 65536;
const PAGE = 65536;
const MAX_PAGES = 65536;

/** What one run returns: float32 gradients, float64 losses. */
export interface WasmRunResult {
  loss: number;
  losses: Float64Array;
  gradFeatures: Float32Array;
  gradWeights: Float32Array;
  gradBias?: Float32Array;
  logits?: Matrix;
}

/** Options of the engine. */
export interface WasmEngineOptions {
  /** Worker threads (at most one per class tile is used). @default {navigator.hardwareConcurrency} */
  threads?: number;
  /** Classes per tile (a multiple of 4). @default {64} */
  tile?: number;
  /** Which build of the kernels (for tests of the fallback). @default {relaxed where valid} */
  kernels?: KernelBuild;
}

/** A head laid out in shared memory with its workers started. */
export interface PreparedWasmHead {
  /** Forward and backward; `logits` asks for the N×C logits too (float64, extra time). */
  run(options?: { logits?: boolean }): Promise<WasmRunResult>;
  /** Terminates the workers. */
  dispose(): void;
  /** Threads actually used (at most one per class tile). */
  threads: number;
}

/** The two builds of the kernels: with relaxed SIMD's fused multiply-add, and plain SIMD. */
export type KernelBuild = "relaxed" | "simd";

const modules = new Map<string, Promise<WebAssembly.Module | undefined>>();

function compileBuild(build: KernelBuild): Promise<WebAssembly.Module | undefined> {
  let module = modules.get(build);
  if (!module) {
    module = (async () => {
      const url = new URL(
        `./build/${build === "relaxed" ? "kernels_relaxed" : "kernels"}.wasm`,
        import.meta.url,
      );
      const bytes = url.protocol === "file:"
        ? await Deno.readFile(url)
        : new Uint8Array(await (await fetch(url)).arrayBuffer());
      return WebAssembly.validate(bytes) ? await WebAssembly.compile(bytes) : undefined;
    })();
    modules.set(build, module);
  }
  return module;
}

/** The compiled kernels: the relaxed-SIMD build where this engine validates it, else plain SIMD. */
export async function kernelsModule(build?: KernelBuild): Promise<WebAssembly.Module> {
  for (const name of build ? [build] : ["relaxed", "simd"] as const) {
    const module = await compileBuild(name);
    if (module) return module;
  }
  throw new Error(
    `${WHERE}: this engine validates no kernel build${
      build ? ` "${build}"` : ""
    } (no WebAssembly SIMD?)`,
  );
}

const up = (n: number, k: number) => Math.ceil(n / k) * k;

/** One thread per logical core, at most {@linkcode L.MAX_THREADS}. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(navigator.hardwareConcurrency ?? 1, L.MAX_THREADS));
}

/** Starts the workers on a fresh shared memory holding the inputs. */
export async function prepareWasmHead(
  head: HeadSpec,
  input: HeadInput,
  reduction: Reduction,
  options: WasmEngineOptions = {},
): Promise<PreparedWasmHead> {
  reductionOption(WHERE, reduction);
  // The caller's arrays themselves (read only): a float64 copy of W would double the peak memory.
  let checked: CheckedHeadView | undefined = viewHeadInput(WHERE, input, {
    classes: "weights",
    allowBias: head.logits === "linear",
  });
  const { N, D, C, labels, bias } = checked;
  let x: Float64Array | Float32Array | undefined = checked.x;
  const angular = head.logits === "angular";
  const radius = angular ? ["scale", "featureNorm", "normProduct"].indexOf(head.radius.kind) : 0;
  const tile = options.tile ?? 64;
  if (!Number.isInteger(tile) || tile < 4 || tile % 4 !== 0) {
    throw new RangeError(`${WHERE}: options.tile must be a positive multiple of 4, got ${tile}`);
  }
  const requested = options.threads ?? defaultThreads();
  if (!Number.isInteger(requested) || requested < 1 || requested > L.MAX_THREADS) {
    throw new RangeError(
      `${WHERE}: options.threads must be an integer in [1, ${L.MAX_THREADS}], got ${requested}`,
    );
  }
  const Np = up(N, 8), Dp = up(D, 8), Cp = up(C, 4);
  const T = Math.min(requested, Math.ceil(Cp / tile));

  // Layout, 64-byte aligned: parameters, shared arrays, then one private region per thread.
  let top = PARAMS + L.PARAM_SLOTS * 4;
  const alloc = (bytes: number) => {
    const at = up(top, 64);
    top = at + bytes;
    return at;
  };
  const o = {
    xpack: alloc(Np * Dp * 4),
    xpackk: alloc(Np * Dp * 4),
    w: alloc(Cp * Dp * 4),
    gw: alloc(Cp * Dp * 4),
    cos: alloc(Cp * Np * 4),
    labels: alloc(Np * 4),
    a: alloc(Np * 4),
    zy: alloc(Np * 8),
    weight: alloc(Np * 4),
    bias: alloc(Cp * 4),
    nw: alloc(Cp * 4),
    invcw: alloc(Cp * 4),
    gb: alloc(Cp * 4),
    stats: alloc(Np * 16),
  };
  const threadBytes = up((L.T_TILE + tile) * Np * 4 + Np * Dp * 4 + tile * Dp * 4, 64);
  const threadBase = alloc(T * threadBytes);
  const pages = Math.ceil(top / PAGE);
  if (pages > MAX_PAGES) {
    throw new RangeError(
      `${WHERE}: this head needs ${(top / 2 ** 30).toFixed(1)} GiB, more than WebAssembly's 4 GiB`,
    );
  }
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const buffer = memory.buffer;
  const f32 = (at: number, n: number) => new Float32Array(buffer, at, n);
  const params = new Int32Array(buffer, PARAMS, L.PARAM_SLOTS);
  const slots: [number, number][] = [
    [L.SLOT_N, N],
    [L.SLOT_NP, Np],
    [L.SLOT_DP, Dp],
    [L.SLOT_C, C],
    [L.SLOT_CP, Cp],
    [L.SLOT_ANGULAR, angular ? 1 : 0],
    [L.SLOT_RADIUS, radius],
    [L.SLOT_TILE, tile],
    [L.SLOT_THREADS, T],
    [L.SLOT_XPACK, o.xpack],
    [L.SLOT_XPACKK, o.xpackk],
    [L.SLOT_W, o.w],
    [L.SLOT_GW, o.gw],
    [L.SLOT_COS, o.cos],
    [L.SLOT_LABELS, o.labels],
    [L.SLOT_A, o.a],
    [L.SLOT_ZY, o.zy],
    [L.SLOT_WEIGHT, o.weight],
    [L.SLOT_BIAS, o.bias],
    [L.SLOT_NW, o.nw],
    [L.SLOT_INVCW, o.invcw],
    [L.SLOT_GB, o.gb],
    [L.SLOT_STATS, o.stats],
    [L.SLOT_THREAD_BASE, threadBase],
    [L.SLOT_THREAD_BYTES, threadBytes],
  ];
  for (const [k, v] of slots) params[k] = v;

  // Workers start loading now, in parallel with the copies below.
  const module = await kernelsModule(options.kernels);
  const workers: Worker[] = [];
  const ready: Promise<void>[] = [];
  for (let t = 0; t < T; t++) {
    const worker = new WebWorker(new URL("./_worker.ts", import.meta.url), { type: "module" });
    workers.push(worker);
    ready.push(
      new Promise((resolve, reject) => {
        worker.onmessage = (e) =>
          e.data.type === "ready" ? resolve() : reject(new Error(`${WHERE}: ${e.data.message}`));
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`${WHERE}: worker failed to start: ${e.message}`));
        };
      }),
    );
    worker.postMessage({ type: "init", module, memory, control: CONTROL, tid: t, threads: T });
  }

  const allReady = Promise.all(ready);
  allReady.catch(() => {}); // awaited below; a failure meanwhile must not go unhandled
  // The target rows stay in float64: near c = 1 their rounding to float32 would move θ visibly.
  const wy = new Float64Array(N * D);
  try {
    // The class side is copied once, here; the sample side is laid out by each run.
    const W = f32(o.w, Cp * Dp);
    for (let j = 0; j < C; j++) {
      for (let k = 0; k < D; k++) {
        W[j * Dp + k] = checked.w[j * D + k];
        if (!Number.isFinite(W[j * Dp + k])) {
          throw new RangeError(`${WHERE}: weights exceed the float32 range at ${j * D + k}`);
        }
      }
    }
    for (let i = 0; i < N; i++) wy.set(checked.w.subarray(labels[i] * D, labels[i] * D + D), i * D);
    checked = undefined;
    if (bias) f32(o.bias, C).set(bias);
    if (!angular) f32(o.invcw, Cp).fill(1);
    const labelsOut = new Int32Array(buffer, o.labels, Np).fill(-1);
    labelsOut.set(labels);
    const weightOut = f32(o.weight, Np);
    weightOut.fill(reductionWeight(reduction, N), 0, N);

    await allReady;
  } catch (error) {
    for (const w of workers) w.terminate();
    throw error;
  }
  const sizeX = N * D;
  let disposed = false;
  let abort: ((reason: Error) => void) | undefined;
  // Runs share the memory: a second run waits for the first.
  let last: Promise<unknown> = Promise.resolve();
  function run(runOptions: { logits?: boolean } = {}): Promise<WasmRunResult> {
    const next = last.then(() => runOnce(runOptions));
    last = next.catch(() => {});
    return next;
  }

  async function runOnce(runOptions: { logits?: boolean }): Promise<WasmRunResult> {
    if (disposed) throw new Error(`${WHERE}: run() after dispose()`);
    if (!x) throw new Error(`${WHERE}: internal: features gone`);
    // Samples: x̂ (or x) packed twice, radius factors, and the target logits in float64.
    const xpack = f32(o.xpack, Np * Dp), xpackk = f32(o.xpackk, Np * Dp), a32 = f32(o.a, Np);
    const zy = new Float64Array(buffer, o.zy, Np);
    const a = new Float64Array(N), b = new Float64Array(N), nx = new Float64Array(N);
    const cx = new Float64Array(N), ny = new Float64Array(N), cy = new Float64Array(N);
    const tv = new Float64Array(N), slope = new Float64Array(N), tc = new Float64Array(N);
    const target = angular ? targetFunction(head.margin, head.marginGradient) : undefined;
    for (let i = 0; i < N; i++) {
      let sq = 0;
      for (let k = 0; k < D; k++) sq += x[i * D + k] ** 2;
      nx[i] = Math.sqrt(sq);
      cx[i] = angular ? Math.max(nx[i], NORM_EPS) : 1;
      for (let k = 0; k < D; k++) {
        const v = x[i * D + k] / cx[i];
        xpack[(i >> 3) * Dp * 8 + k * 8 + (i & 7)] = v;
        xpackk[(k >> 3) * Np * 8 + i * 8 + (k & 7)] = v;
      }
      let dot = 0, wsq = 0;
      for (let k = 0; k < D; k++) {
        const wk = wy[i * D + k];
        dot += x[i * D + k] * wk;
        wsq += wk * wk;
      }
      if (!angular) {
        a32[i] = a[i] = b[i] = 1;
        zy[i] = dot + (bias ? bias[labels[i]] : 0);
        continue;
      }
      ny[i] = Math.sqrt(wsq);
      cy[i] = Math.max(ny[i], NORM_EPS);
      const c = dot / (cx[i] * cy[i]);
      const t = target!(c);
      tc[i] = c;
      tv[i] = t.value;
      slope[i] = t.slope;
      a32[i] = a[i] = head.radius.kind === "scale" ? head.radius.scale : nx[i];
      b[i] = head.radius.kind === "normProduct" ? ny[i] : 1;
      zy[i] = a[i] * b[i] * t.value;
    }
    params[L.SLOT_BAD] = 0;
    params[L.SLOT_NEXT_FORWARD] = 0;
    params[L.SLOT_NEXT_BACKWARD] = 0;

    await new Promise<void>((resolve, reject) => {
      abort = reject;
      let done = 0;
      for (const worker of workers) {
        worker.onmessage = (e) => {
          if (e.data.type === "error") {
            reject(new Error(`${WHERE}: kernel failed: ${e.data.message}`));
          } else if (++done === workers.length) resolve();
        };
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`${WHERE}: worker failed: ${e.message}`));
        };
        worker.postMessage({ type: "run", params: PARAMS });
      }
    });

    // Losses: log(1 + Σ_{j≠y} e^(z_j − z_y)), from the non-target (max, sum), stays accurate when
    // the target dominates; 1 − p_y likewise.
    const stats = new Float64Array(buffer, o.stats, 2 * Np);
    const losses = new Float64Array(N), rest = new Float64Array(N);
    let total = 0;
    for (let i = 0; i < N; i++) {
      const gap = stats[2 * i] - zy[i], sum = stats[2 * i + 1];
      const q = sum * Math.exp(gap);
      if (Number.isFinite(q)) {
        losses[i] = Math.log1p(q);
        rest[i] = q / (1 + q);
      } else {
        losses[i] = gap + Math.log(sum + Math.exp(-gap));
        rest[i] = 1 / (1 + Math.exp(-gap) / sum);
      }
      total += losses[i];
    }
    const loss = total * reductionWeight(reduction, N);

    // ∂/∂x: the threads' partial products, then the row-norm backward and the targets.
    const gradFeatures = new Float32Array(sizeX);
    const unit = Np * 4;
    const parts = Array.from({ length: T }, (_, t) => {
      const base = threadBase + t * threadBytes;
      return {
        gx: f32(base + (L.T_TILE + tile) * unit, Np * Dp),
        sumx: f32(base + L.T_SUMX * unit, Np),
        grada: f32(base + L.T_GRADA * unit, Np),
      };
    });
    // ∂/∂W stays where the kernels wrote it when its rows are unpadded (no copy of C×D).
    let gradWeights = f32(o.gw, C * D);
    if (D !== Dp) {
      const GW = f32(o.gw, Cp * Dp);
      gradWeights = new Float32Array(C * D);
      for (let j = 0; j < C; j++) gradWeights.set(GW.subarray(j * Dp, j * Dp + D), j * D);
    }
    const gradBias = bias ? f32(o.gb, C).slice() : undefined;
    const row = new Float64Array(D);
    const weight = reductionWeight(reduction, N);
    for (let i = 0; i < N; i++) {
      row.fill(0);
      let sumx = 0, grada = 0;
      for (const part of parts) {
        for (let k = 0; k < D; k++) row[k] += part.gx[i * Dp + k];
        sumx += part.sumx[i];
        grada += part.grada[i];
      }
      const y = labels[i], gzy = -weight * rest[i]; // ∂loss/∂z_iy
      if (!angular) {
        for (let k = 0; k < D; k++) {
          gradFeatures[i * D + k] = row[k] + gzy * wy[i * D + k];
          gradWeights[y * D + k] += gzy * x[i * D + k];
        }
        if (gradBias) gradBias[y] += gzy;
        continue;
      }
      const icx = 1 / cx[i], icy = 1 / cy[i];
      const kind = head.radius.kind;
      if (kind !== "scale") grada += gzy * b[i] * tv[i];
      const coef = (nx[i] > NORM_EPS ? -sumx * icx : 0) + (kind !== "scale" ? grada : 0);
      const fx = nx[i] > 0 ? coef / nx[i] : 0;
      // ‖w_y‖ as the radius (L-Softmax): its gradient along w_y/‖w_y‖.
      const fw = kind === "normProduct" && ny[i] > 0 ? gzy * a[i] * tv[i] / ny[i] : 0;
      // The target cosine, in float64: dc/dx and dc/dw_y with the normalisation backward.
      const gc = gzy * a[i] * b[i] * slope[i], c = tc[i];
      const xNorm = nx[i] > NORM_EPS ? 1 : 0, wNorm = ny[i] > NORM_EPS ? 1 : 0;
      for (let k = 0; k < D; k++) {
        const xh = x[i * D + k] * icx, wk = wy[i * D + k], wh = wk * icy;
        gradFeatures[i * D + k] = row[k] * icx + fx * x[i * D + k] +
          gc * (wh - xNorm * c * xh) * icx;
        gradWeights[y * D + k] += gc * (xh - wNorm * c * wh) * icy + fw * wk;
      }
    }
    const result: WasmRunResult = { loss, losses, gradFeatures, gradWeights };
    if (gradBias) result.gradBias = gradBias;
    const finite = (name: string, data: ArrayLike<number>) => {
      for (let k = 0; k < data.length; k++) {
        if (!Number.isFinite(data[k])) {
          throw new RangeError(`${WHERE}: ${name} overflowed float32 at ${k} (inputs too large)`);
        }
      }
    };
    if (params[L.SLOT_BAD]) finite("gradWeights", gradWeights);
    finite("loss", [loss]);
    finite("gradFeatures", gradFeatures);
    for (let i = 0; i < N; i++) {
      finite("gradWeights", gradWeights.subarray(labels[i] * D, labels[i] * D + D));
    }
    if (gradBias) finite("gradBias", gradBias);
    if (runOptions.logits) result.logits = logitsOf();
    return result;

    function logitsOf(): Matrix {
      const cos = f32(o.cos, Cp * Np), nw = f32(o.nw, Cp);
      const out = new Float64Array(N * C);
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < C; j++) {
          const bj = angular && head.logits === "angular" && head.radius.kind === "normProduct"
            ? nw[j]
            : 1;
          out[i * C + j] = a[i] * bj * cos[j * Np + i];
        }
        out[i * C + labels[i]] = zy[i];
      }
      finite("logits", out);
      return { rows: N, cols: C, data: out };
    }
  }

  return {
    run,
    threads: T,
    dispose() {
      if (disposed) return;
      disposed = true;
      abort?.(new Error(`${WHERE}: disposed during a run`));
      x = undefined;
      for (const w of workers) w.terminate();
    },
  };
}

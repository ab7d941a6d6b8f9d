/**
 * A bridge from this library's heads to TensorFlow.js training: {@linkcode tfjsHeadLoss} makes a
 * tfjs loss whose gradients are computed by one of the library's engines, chosen by the active
 * tfjs backend: on tfjs-webgpu, engine-webgpu's passes on tfjs's own device and tensors' buffers
 * (nothing read back); on tfjs-wasm and tfjs-cpu, engine-wasm on a prepared synchronous head; or,
 * on request, the float64 reference.
 *
 * @module
 */
import type { HeadSpec } from "../losses/head_spec.ts";
import {
  checkHeadSpec,
  checkMatrix,
  numberOption,
  optionsObject,
  reductionOption,
} from "../losses/checks.ts";
import type { Matrix } from "../losses/matrix.ts";
import type { Reduction } from "../losses/types.ts";
import type { HeadShape } from "../engines/engine.ts";
import { tf } from "./tfjs_setup.ts";
import type { Call, CheckedCenter } from "./_steps.ts";
import { referenceStep } from "./_reference_step.ts";
import { WasmPath } from "./_wasm_step.ts";
import { WebgpuPath } from "./_webgpu_step.ts";

export type { HeadShape, HeadSpec, Matrix, Reduction };
export type { Radius, TargetMargin } from "../losses/head_spec.ts";
export type { MarginGradient } from "../losses/types.ts";

/** The engines that compute {@linkcode tfjsHeadLoss}. */
export type TfjsLossEngine = "reference" | "wasm" | "webgpu";

const ENGINES: readonly TfjsLossEngine[] = ["reference", "wasm", "webgpu"];

/** Options of {@linkcode tfjsHeadLoss}. */
export interface TfjsHeadLossOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /**
   * Adds the center loss λ_c·½‖x_i − c_{y_i}‖² (`weight` λ_c, a finite number ≥ 0) with these
   * centers (C×D, one per class). The centers move by the paper's rule, c ← c − α·Δc (`alpha` in
   * [0, 1], default 0.5), only when the gradient of the loss is taken (an optimizer's `minimize`,
   * `tf.grads`, `tf.valueAndGrads`): once per backward pass, with the Δc of that pass's forward
   * call. A call that only evaluates the loss leaves them as they are. On the engines "reference"
   * and "wasm" they move in place; on "webgpu" a copy of them lives and moves on the GPU, and
   * {@linkcode TfjsHeadLoss.readCenters} copies it back into this matrix. Omit for no center loss.
   */
  center?: { centers: Matrix; weight: number; alpha?: number };
  /**
   * The engine: `"webgpu"` (engine-webgpu on tfjs-webgpu's device and buffers; needs the webgpu
   * backend), `"wasm"` (engine-wasm; reads the tensors back synchronously, free on tfjs-wasm and
   * tfjs-cpu) or `"reference"` (the float64 reference, as exact as the library gets).
   * @default {"webgpu" on tfjs-webgpu, else "wasm" (where SharedArrayBuffer exists, else "reference")}
   */
  engine?: TfjsLossEngine;
  /** engine-wasm's worker threads. @default {the logical cores} */
  threads?: number;
  /**
   * How engine-wasm runs inside tfjs's synchronous loss: `"blocking"`, its worker threads compute
   * while the calling thread waits (Atomics.wait); `"calling-thread"`, the calling thread computes
   * alone. A browser's main thread may not block: there it is always "calling-thread".
   * @default {"blocking" where the calling thread may block}
   */
  wasmMode?: "blocking" | "calling-thread";
}

function checkCenterOptions(where: string, value: unknown): CheckedCenter | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object") {
    throw new TypeError(
      `${where}: options.center must be an object {centers, weight, alpha?}, got ${
        value === null ? "null" : typeof value
      }`,
    );
  }
  const center = value as Record<string, unknown>;
  for (const key of Object.keys(center)) {
    if (!["centers", "weight", "alpha"].includes(key)) {
      throw new TypeError(
        `${where}: unknown option "center.${key}"; options.center takes "centers", "weight", "alpha"`,
      );
    }
  }
  checkMatrix(where, "options.center.centers", center.centers as Matrix);
  if (center.weight === undefined) {
    throw new TypeError(
      `${where}: options.center.weight (λ_c) must be a finite number ≥ 0, got undefined`,
    );
  }
  return {
    centers: center.centers as Matrix,
    weight: numberOption(where, "center.weight", center.weight, 0, {
      min: 0,
      text: "a finite number ≥ 0",
    }),
    alpha: numberOption(where, "center.alpha", center.alpha, 0.5, {
      min: 0,
      max: 1,
      text: "in [0, 1]",
    }),
  };
}

function shapeOf(t: unknown): string {
  const shape = (t as { shape?: unknown })?.shape;
  return Array.isArray(shape) ? `[${shape.join(", ")}]` : "not a tensor";
}

/** Checks the three tensors' shapes in the adapter's words; returns N, D, C. */
function checkTensors(
  where: string,
  features: tf.Tensor,
  weights: tf.Tensor | readonly tf.Tensor[],
  labels: tf.Tensor,
): { N: number; D: number; C: number } {
  if (!(features instanceof tf.Tensor) || features.rank !== 2) {
    throw new TypeError(`${where}: features must be a 2-D tensor N×D, got ${shapeOf(features)}`);
  }
  const [N, D] = features.shape;
  const shards = Array.isArray(weights) ? weights : [weights];
  if (shards.length === 0) {
    throw new RangeError(`${where}: weights must be a 2-D tensor C×D or a list of them, got []`);
  }
  let C = 0;
  for (const [k, shard] of shards.entries()) {
    if (!(shard instanceof tf.Tensor) || shard.rank !== 2 || shard.shape[1] !== D) {
      throw new RangeError(
        `${where}: weights${Array.isArray(weights) ? `[${k}]` : ""} must be a 2-D tensor C×D ` +
          `with D = ${D} (the columns of features), got ${shapeOf(shard)}`,
      );
    }
    C += shard.shape[0];
  }
  if (!(labels instanceof tf.Tensor) || labels.rank !== 1 || labels.shape[0] !== N) {
    throw new RangeError(
      `${where}: labels must be a 1-D tensor of N = ${N} labels (one per row of features), ` +
        `got ${shapeOf(labels)}`,
    );
  }
  return { N, D, C };
}

/**
 * A TensorFlow.js tensor, as far as the types of {@linkcode TfjsHeadLoss} need one (`tf.Tensor`
 * has these members): its shape, and `asScalar`, whose return type names the scalar the loss
 * returns (`tf.Scalar`).
 */
export interface TensorLike {
  /** The sizes. */
  readonly shape: number[];
  /** This tensor as a scalar (tfjs's `Tensor.asScalar`). */
  asScalar(): unknown;
}

/**
 * A tfjs loss: features N×D, weights C×D and int32 labels N give a scalar (a `tf.Scalar`) whose
 * gradients for the features and the weights are the engine's analytic ones; with the methods that
 * manage the engine's prepared heads.
 */
export interface TfjsHeadLoss {
  /**
   * The loss of one batch (call it inside `optimizer.minimize`, `tf.grads`, …). The weights may
   * come in shards of consecutive rows (a list of tensors, C×D in all), for class weights larger
   * than one tensor may be on a backend (tfjs-webgpu's ops bind a tensor whole, at most 128 MiB on
   * some adapters).
   */
  <T extends TensorLike>(
    features: T,
    weights: T | readonly T[],
    labels: TensorLike,
  ): ReturnType<T["asScalar"]>;
  /** The engine that a call makes now (the option, or the one the active tfjs backend picks). */
  engine(): TfjsLossEngine;
  /**
   * Prepares the engine's head for a shape ahead of the first call of that shape, asynchronously:
   * calls prepare what they meet by themselves, synchronously, but a browser cannot compile
   * engine-wasm's kernels synchronously, and on tfjs-webgpu device errors are caught only here.
   */
  prepare(shape: HeadShape): Promise<void>;
  /** The heads prepared now, as `"<engine> N×D×C"`, the least recently used first. */
  prepared(): string[];
  /** On engine "webgpu", copies the centers' GPU copy back into `options.center.centers`. */
  readCenters(): Promise<void>;
  /** Releases the prepared heads (worker threads, memory, GPU buffers) and the centers' GPU copy. */
  dispose(): void;
}

type CustomGradient = Parameters<typeof tf.customGrad>[0];

/**
 * Whether this runtime has the 2-D canvas that tfjs-webgpu's synchronous read-back draws on: Deno
 * has an OffscreenCanvas whose 2-D context is null, where `dataSync` fails deep inside tfjs.
 */
export function hasSyncGpuReadBack(): boolean {
  const g = globalThis as { document?: unknown; OffscreenCanvas?: typeof OffscreenCanvas };
  if (g.document !== undefined) return true;
  try {
    return g.OffscreenCanvas !== undefined && new g.OffscreenCanvas(1, 1).getContext("2d") !== null;
  } catch {
    return false;
  }
}

function checkSyncReadBack(where: string, engine: TfjsLossEngine) {
  if (tf.getBackend() === "webgpu" && !hasSyncGpuReadBack()) {
    throw new Error(
      `${where}: engine "${engine}" reads the tensors back synchronously, which the tfjs webgpu ` +
        'backend cannot do in this runtime (no 2-D canvas); use engine "webgpu" (the default ' +
        "there), the cpu or wasm backend, or webgpu in a browser",
    );
  }
}

/** The engine a call makes: the option, else by the active backend. */
function engineFor(option: TfjsLossEngine | undefined): TfjsLossEngine {
  if (option) return option;
  if (tf.getBackend() === "webgpu") return "webgpu";
  return typeof SharedArrayBuffer === "undefined" ? "reference" : "wasm";
}

function checkEngineOptions(where: string, o: Record<string, unknown>) {
  if (o.engine !== undefined && !ENGINES.includes(o.engine as TfjsLossEngine)) {
    throw new RangeError(
      `${where}: options.engine must be one of ${ENGINES.map((e) => `"${e}"`).join(", ")}, got ` +
        JSON.stringify(o.engine),
    );
  }
  const threads = o.threads === undefined
    ? undefined
    : numberOption(where, "threads", o.threads, 1, {
      min: 1,
      max: 64,
      integer: true,
      text: "an integer from 1 to 64",
    });
  if (o.wasmMode !== undefined && o.wasmMode !== "blocking" && o.wasmMode !== "calling-thread") {
    throw new RangeError(
      `${where}: options.wasmMode must be "blocking" or "calling-thread", got ${
        JSON.stringify(o.wasmMode)
      }`,
    );
  }
  return {
    engine: o.engine as TfjsLossEngine | undefined,
    threads,
    mode: o.wasmMode as "blocking" | "calling-thread" | undefined,
  };
}

/**
 * Turns a head (any {@linkcode HeadSpec}, e.g. `arcFaceHead({ scale: 16, margin: 0.3 })`) into a
 * TensorFlow.js loss through `tf.customGrad`: one fused forward and backward pass per call, on the
 * engine that the active tfjs backend picks (see {@linkcode TfjsHeadLossOptions.engine}):
 * - tfjs-webgpu: engine-webgpu runs on tfjs's own device, reading the tensors' GPU buffers and
 *   writing the loss and both gradients into new tensors' buffers; nothing is read back, so it
 *   works in Deno too (no 2-D canvas needed). A label outside [0, C) or a non-finite input makes
 *   the loss NaN there, since checking would need a read-back.
 * - tfjs-wasm and tfjs-cpu: engine-wasm on a prepared synchronous head: its worker threads compute
 *   while the calling thread waits in Atomics.wait (Deno, Node.js, workers); on a browser's main
 *   thread, which may not block, the calling thread computes alone.
 * - `engine: "reference"`: the float64 reference on the calling thread, from tensors read back
 *   synchronously (`dataSync`; not on tfjs-webgpu without a canvas: a clear error there).
 *
 * The engine's prepared head is kept across calls (the last two shapes, for a short last batch)
 * and released by `dispose()`; engine-wasm's also after 2 s without a call (its worker threads
 * would keep a Deno process alive), to be prepared again by the next call. `head` may be a function of nothing, read at every call, so that a
 * schedule (SphereFace's λ) can change between steps.
 *
 * Everything is checked, with errors that name the argument: the head (see `checkHeadSpec`; a
 * head function's result at every call), the options (unknown keys included) when the loss is
 * made, the tensors' shapes at every call, and their values where they are read on the CPU.
 *
 * @example
 * ```ts ignore
 * import { tf } from "./tfjs_setup.ts";
 * import { arcFaceHead } from "../losses/arcface.ts";
 *
 * const loss = tfjsHeadLoss(arcFaceHead({ scale: 16, margin: 0.3 }));
 * const w = tf.variable(tf.randomNormal([10, 2]));
 * const optimizer = tf.train.adam(0.01);
 * optimizer.minimize(() => loss(model.apply(x) as tf.Tensor2D, w, y));
 * loss.dispose();
 * ```
 *
 * @param head The head, or a function returning the head of the current step.
 * @param options The reduction, an optional center loss (see
 *   {@linkcode TfjsHeadLossOptions.center} for when the centers move), the engine and its threads.
 * @returns The loss function, with `dispose()`.
 */
export function tfjsHeadLoss(
  head: HeadSpec | (() => HeadSpec),
  options?: TfjsHeadLossOptions,
): TfjsHeadLoss {
  const where = "tfjsHeadLoss";
  if (typeof head !== "function") head = checkHeadSpec(where, head);
  const o = optionsObject(where, options, ["reduction", "center", "engine", "threads", "wasmMode"]);
  const reduction = reductionOption(where, o.reduction);
  const center = checkCenterOptions(where, o.center);
  const { engine, threads, mode } = checkEngineOptions(where, o);
  const wasm = new WasmPath({ threads, mode }), webgpu = new WebgpuPath(center);
  const specNow = () => typeof head === "function" ? checkHeadSpec(where, head()) : head;
  const op = tf.customGrad(
    ((features: tf.Tensor2D, labels: tf.Tensor1D, ...rest: [...tf.Tensor2D[], tf.GradSaveFunc]) => {
      const save = rest.pop() as tf.GradSaveFunc, weights = rest as tf.Tensor2D[];
      const { N, D, C } = checkTensors(where, features, weights, labels);
      if (center && (center.centers.rows !== C || center.centers.cols !== D)) {
        throw new RangeError(
          `${where}: options.center.centers must be C×D = ${C}×${D} (one center per row of ` +
            `weights), got ${center.centers.rows}×${center.centers.cols}`,
        );
      }
      const call: Call = {
        where,
        spec: specNow(),
        features,
        weights,
        labels,
        N,
        D,
        C,
        reduction,
        center,
      };
      const chosen = engineFor(engine);
      if (chosen === "webgpu") return webgpu.step(call, save);
      checkSyncReadBack(where, chosen);
      return chosen === "wasm" ? wasm.step(call) : referenceStep(call);
    }) as CustomGradient,
  ) as (f: tf.Tensor, l: tf.Tensor, ...w: tf.Tensor[]) => tf.Scalar;
  const loss = ((features: tf.Tensor, weights: tf.Tensor | tf.Tensor[], labels: tf.Tensor) => {
    // Checked here too: a malformed call should not reach tfjs's own checks first.
    checkTensors(where, features, weights, labels);
    return op(features, labels, ...(Array.isArray(weights) ? weights : [weights]));
  }) as unknown as TfjsHeadLoss;
  return Object.assign(loss, {
    engine: () => engineFor(engine),
    async prepare(shape: HeadShape) {
      const chosen = engineFor(engine), spec = specNow();
      if (chosen === "webgpu") await webgpu.prepare({ where, spec }, shape);
      else if (chosen === "wasm") await wasm.prepare({ spec }, shape);
    },
    prepared: () => [
      ...wasm.heads.keys().map((key) => `wasm ${key}`),
      ...webgpu.heads.keys().map((key) => `webgpu ${key}`),
    ],
    readCenters: () => webgpu.readCenters(),
    dispose() {
      wasm.dispose();
      webgpu.dispose();
    },
  });
}

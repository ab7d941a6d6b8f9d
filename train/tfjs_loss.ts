/**
 * A bridge from this library's heads to TensorFlow.js training: {@linkcode tfjsHeadLoss} makes a
 * tfjs loss whose gradients are computed by one of the library's engines, chosen by the active
 * tfjs backend: on tfjs-webgpu, engine-webgpu's passes on tfjs's own device and tensors' buffers
 * (nothing read back); on tfjs-wasm and tfjs-cpu, engine-wasm on a prepared synchronous head; or,
 * on request, engine-native (the machine's BLAS, in Deno) or the float64 reference. The successor
 * heads of issue 13 (CurricularFace, AdaFace, sub-center ArcFace, MagFace, AdaCos, ElasticFace: a
 * `…Head` builder's {@linkcode SuccessorHeadSpec}) run on engine-wasm (all of them:
 * `supportsSuccessor`) or on request on engine-native or the float64 reference, their state handed
 * back through {@linkcode TfjsHeadLossOptions.onState}.
 *
 * @module
 */
import type { HeadSpec, SuccessorHeadSpec, SuccessorHook } from "../losses/head_spec.ts";
import { checkSuccessorHead, isSuccessorHead } from "../losses/successor_head.ts";
import {
  checkHeadSpec,
  checkMatrix,
  numberOption,
  optionsObject,
  reductionOption,
} from "../losses/checks.ts";
import type { Matrix } from "../losses/matrix.ts";
import type { Reduction } from "../losses/types.ts";
import type { Engine, HeadShape } from "../engines/engine.ts";
import { wasmEngine } from "../engines/wasm/engine.ts";
import { webgpuEngine } from "../engines/webgpu/engine.ts";
import { nativeEngine } from "../engines/native/engine.ts";
import { tf } from "./tfjs_setup.ts";
import type { Call, CheckedCenter } from "./_steps.ts";
import { referenceStep, successorStep } from "./_reference_step.ts";
import { WasmPath } from "./_wasm_step.ts";
import { NativePath } from "./_native_step.ts";
import { WebgpuPath } from "./_webgpu_step.ts";
import { gpuSuccessorLoss } from "./_webgpu_successor.ts";
import { gpuTargetSupport } from "./_webgpu_targets.ts";
import { kernelHead, kernelSubCenters } from "../engines/host/samples.ts";

export type { HeadShape, HeadSpec, Matrix, Reduction, SuccessorHeadSpec, SuccessorHook };
export type { Radius, TargetMargin } from "../losses/head_spec.ts";
export type { MarginGradient } from "../losses/types.ts";

/** The engines that compute {@linkcode tfjsHeadLoss}. */
export type TfjsLossEngine = "reference" | "wasm" | "webgpu" | "native";

const ENGINES: readonly TfjsLossEngine[] = ["reference", "wasm", "webgpu", "native"];

/**
 * A successor head's state after a training step, as its loss returns it: CurricularFace's
 * `{ t }`, AdaFace's `{ mean, std }`, AdaCos's `{ scale }`; `{}` for sub-center ArcFace, MagFace and
 * ElasticFace, which keep none. Build the next step's head from it (`curricularFaceHead({ state })`).
 */
export type SuccessorState =
  | { t: number }
  | { mean: number; std: number }
  | { scale: number }
  | Record<string, never>;

/** A head of either kind, or a function of nothing returning the head of the current step. */
export type TfjsHead =
  | HeadSpec
  | SuccessorHeadSpec
  | (() => HeadSpec | SuccessorHeadSpec);

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
   * tfjs-cpu), `"native"` (engine-native, the machine's BLAS: Deno with `--allow-ffi` and a CBLAS;
   * reads the tensors back like "wasm"; `await loss.prepare(shape)` starts its helper threads; a
   * head made at a call runs on the calling thread alone until its helper threads, started then,
   * are ready) or `"reference"` (the float64 reference, as exact as the library gets).
   * A successor head runs on "reference", on "native" where engine-native computes it, on
   * "wasm" where engine-wasm computes its kind (its
   * `supportsSuccessor`: every successor kind, sub-center ArcFace on C·K rows of weights, AdaCos
   * as two runs of its scale-only head), and on "webgpu" for ElasticFace, MagFace and sub-center
   * ArcFace (their target terms as tfjs ops on the GPU, engine-webgpu for the rest: nothing read
   * back); an engine that does not compute it refuses it, naming the head and the engine's reason
   * ("webgpu": AdaFace, CurricularFace and AdaCos carry a state that would have to be read back
   * every step).
   * @default {for a successor head "webgpu" on tfjs-webgpu where it computes it, else "wasm" where engine-wasm computes it and SharedArrayBuffer exists, else "reference"; for any other head "webgpu" on tfjs-webgpu, else "wasm" (where SharedArrayBuffer exists, else "reference")}
   */
  engine?: TfjsLossEngine;
  /**
   * Where a successor head's state goes (optax-style: the library keeps none): called with the
   * state after the batch ({@linkcode SuccessorState}) once per backward pass (an optimizer's
   * `minimize`, `tf.grads`, `tf.valueAndGrads`), with the state of that pass's forward call, after
   * the gradients are computed; a call that only evaluates the loss does not call it, so
   * evaluation never moves the state. Keep the state in a variable that the head function reads,
   * `() => curricularFaceHead({ state })`, and assign it here. Never called for a
   * {@linkcode HeadSpec}.
   */
  onState?: (state: SuccessorState) => void;
  /** engine-wasm's (and engine-native's) threads. @default {the logical cores} */
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
  /**
   * The engine that a call makes now (the option; else for a successor head "wasm" where
   * engine-wasm computes it, else "reference"; else the one the active tfjs backend picks). A head
   * function is read to tell.
   */
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

/**
 * The engine a call makes: the option; else for a successor head engine-wasm where it computes the
 * head (and has its shared memory), else the reference; else by the backend.
 */
function engineFor(
  option: TfjsLossEngine | undefined,
  spec: HeadSpec | SuccessorHeadSpec,
): TfjsLossEngine {
  if (option) return option;
  const wasm = typeof SharedArrayBuffer !== "undefined";
  if (isSuccessorHead(spec)) {
    if (tf.getBackend() === "webgpu" && successorSupport(spec, "webgpu") === true) return "webgpu";
    return wasm && successorSupport(spec, "wasm") === true ? "wasm" : "reference";
  }
  if (tf.getBackend() === "webgpu") return "webgpu";
  return wasm ? "wasm" : "reference";
}

/** The library's engine behind each engine of tfjsHeadLoss but the reference. */
const ENGINE_OF: Record<Exclude<TfjsLossEngine, "reference">, Engine> = {
  wasm: wasmEngine as Engine,
  webgpu: webgpuEngine as Engine,
  native: nativeEngine as Engine,
};

/**
 * Whether `engine` computes a checked successor head, or why not: the engine's own answer
 * (`supportsSuccessor`: engine-wasm's synchronous head computes what its prepareHead computes);
 * the reference computes them all.
 */
function successorSupport(spec: SuccessorHeadSpec, engine: TfjsLossEngine): true | string {
  if (engine === "reference") return true;
  const e = ENGINE_OF[engine];
  const answer = e.supportsSuccessor?.(spec);
  if (typeof answer === "string") return answer;
  if (answer !== true || !e.prepareSuccessor) return `${e.name} computes no successor head`;
  if (engine !== "webgpu") return true;
  // On tfjs-webgpu's own buffers the target terms are tfjs ops (train/_webgpu_targets.ts).
  const gpu = gpuTargetSupport(spec);
  return gpu === true ? true : `${e.name} on tfjs-webgpu's buffers: ${gpu}`;
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
  if (o.onState !== undefined && typeof o.onState !== "function") {
    throw new TypeError(
      `${where}: options.onState must be a function (state) => void, got ${
        o.onState === null ? "null" : typeof o.onState
      }`,
    );
  }
  return {
    engine: o.engine as TfjsLossEngine | undefined,
    threads,
    mode: o.wasmMode as "blocking" | "calling-thread" | undefined,
    onState: o.onState as ((state: SuccessorState) => void) | undefined,
  };
}

/** A head, checked: a successor head by its loss page's ranges, any other by checkHeadSpec. */
function checkHead(where: string, head: unknown): HeadSpec | SuccessorHeadSpec {
  return isSuccessorHead(head) ? checkSuccessorHead(where, head) : checkHeadSpec(where, head);
}

/** Refuses a successor head on an engine that does not compute it, with the engine's reason. */
function checkSuccessorEngine(where: string, spec: SuccessorHeadSpec, engine: TfjsLossEngine) {
  const supported = successorSupport(spec, engine);
  if (supported === true) return;
  const others = (["reference", "wasm"] as const)
    .filter((e) => e !== engine && successorSupport(spec, e) === true)
    .map((e) => `"${e}"`);
  throw new RangeError(
    `${where}: the ${spec.name} head (successor hook "${spec.successor.kind}") is not computed ` +
      `by engine "${engine}": ${supported} (omit options.engine or pass ${others.join(" or ")})`,
  );
}

/** Refuses centers that are not one per class (C×D; C / K classes for sub-center ArcFace). */
function checkCenterShape(
  where: string,
  center: CheckedCenter | undefined,
  { classes, rows, D }: { classes: number; rows: number; D: number },
): void {
  if (!center || (center.centers.rows === classes && center.centers.cols === D)) return;
  throw new RangeError(
    `${where}: options.center.centers must be C×D = ${classes}×${D} (one center per ${
      classes === rows ? "row of weights" : "class"
    }), got ${center.centers.rows}×${center.centers.cols}`,
  );
}

/** The classes of a head on C rows of weights: C / K for sub-center ArcFace, else C. */
function classesOf(spec: HeadSpec | SuccessorHeadSpec, rows: number): number {
  const hook = isSuccessorHead(spec) ? spec.successor : undefined;
  return hook?.kind === "subCenter" && rows % hook.subCenters === 0 ? rows / hook.subCenters : rows;
}

/**
 * Turns a head (any {@linkcode HeadSpec}, e.g. `arcFaceHead({ scale: 16, margin: 0.3 })`, or a
 * successor head, e.g. `curricularFaceHead()`) into a TensorFlow.js loss through `tf.customGrad`:
 * one fused forward and backward pass per call, on the engine that the active tfjs backend picks
 * (see {@linkcode TfjsHeadLossOptions.engine}):
 * - tfjs-webgpu: engine-webgpu runs on tfjs's own device, reading the tensors' GPU buffers and
 *   writing the loss and both gradients into new tensors' buffers; nothing is read back, so it
 *   works in Deno too (no 2-D canvas needed). A label outside [0, C) or a non-finite input makes
 *   the loss NaN there, since checking would need a read-back. ElasticFace, MagFace and
 *   sub-center ArcFace run there too: their target terms as tfjs ops, which tfjs differentiates,
 *   the rest on engine-webgpu.
 * - tfjs-wasm and tfjs-cpu: engine-wasm on a prepared synchronous head: its worker threads compute
 *   while the calling thread waits in Atomics.wait (Deno, Node.js, workers); on a browser's main
 *   thread, which may not block, the calling thread computes alone.
 * - `engine: "reference"`: the float64 reference on the calling thread, from tensors read back
 *   synchronously (`dataSync`; not on tfjs-webgpu without a canvas: a clear error there).
 *
 * A successor head (issue 13: CurricularFace, AdaFace, sub-center ArcFace with C·K rows of
 * weights and a C·K×D gradient for them, MagFace, AdaCos, ElasticFace) runs on engine-wasm where
 * that engine computes its kind (asked through its `supportsSuccessor`; all six: the per-sample
 * kinds through host targets, sub-center ArcFace in the kernels, AdaCos as two runs of its
 * scale-only head, the first at the old scale giving the new one), else on the reference; an
 * engine that does not compute it ("webgpu": none of them) refuses it with an error naming the
 * head and the engine's reason. On engine-wasm the head is read at every call like any other, so a
 * head that changes every step (ElasticFace's margins, AdaFace's or AdaCos's state) costs no new
 * preparation.
 * Its state is explicit, optax-style: the head carries the state before the batch, and
 * {@linkcode TfjsHeadLossOptions.onState} receives the state after it once per training step (not
 * on evaluation-only calls), on either engine, so the caller keeps the state in a variable that a
 * head function reads. A center loss composes with it (one center per class).
 *
 * The engine's prepared head is kept across calls (the last two shapes, for a short last batch)
 * and released by `dispose()`; engine-wasm's also after 2 s without a call (its worker threads
 * would keep a Deno process alive), to be prepared again by the next call. `head` may be a
 * function of nothing, read at every call, so that a schedule (SphereFace's λ), a state or a
 * step's ElasticFace margins can change between steps.
 *
 * Everything is checked, with errors that name the argument: the head (see `checkHeadSpec` and
 * `checkSuccessorHead`; a head function's result at every call), the options (unknown keys
 * included) when the loss is made, the tensors' shapes at every call, and their values where they
 * are read on the CPU.
 *
 * @example A fixed head on the reference
 * ```ts
 * import { tf, useTfjsBackend } from "./tfjs_setup.ts";
 * import { arcFaceHead } from "../losses/arcface.ts";
 * import assert from "node:assert";
 *
 * await useTfjsBackend("cpu");
 * const loss = tfjsHeadLoss(arcFaceHead({ scale: 16, margin: 0.3 }), { engine: "reference" });
 * const x = tf.variable(tf.randomNormal([8, 4], 0, 1, "float32", 1));
 * const w = tf.variable(tf.randomNormal([3, 4], 0, 1, "float32", 2));
 * const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], "int32");
 * const optimizer = tf.train.adam(0.05);
 * const first = optimizer.minimize(() => loss(x, w, y), true)!.dataSync()[0];
 * for (let step = 0; step < 10; step++) optimizer.minimize(() => loss(x, w, y));
 * assert.ok(loss(x, w, y).dataSync()[0] < first);
 * loss.dispose();
 * ```
 *
 * @example CurricularFace, its state t passed along explicitly
 * ```ts
 * import { tf, useTfjsBackend } from "./tfjs_setup.ts";
 * import { curricularFaceHead, type CurricularFaceState } from "../losses/curricularface.ts";
 * import assert from "node:assert";
 *
 * await useTfjsBackend("cpu");
 * let state: CurricularFaceState = { t: 0 };
 * const loss = tfjsHeadLoss(() => curricularFaceHead({ scale: 16, state }), {
 *   onState: (next) => {
 *     state = next as CurricularFaceState;
 *   },
 * });
 * const x = tf.variable(tf.randomNormal([8, 4], 0, 1, "float32", 1));
 * const w = tf.variable(tf.randomNormal([3, 4], 0, 1, "float32", 2));
 * const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], "int32");
 * tf.train.adam(0.05).minimize(() => loss(x, w, y)); // a training step: t moves once
 * const t = state.t;
 * assert.ok(t !== 0);
 * loss(x, w, y); // an evaluation: t stays
 * assert.equal(state.t, t);
 * loss.dispose();
 * ```
 *
 * @param head The head, or a function returning the head of the current step.
 * @param options The reduction, an optional center loss (see
 *   {@linkcode TfjsHeadLossOptions.center} for when the centers move), the engine and its threads,
 *   and where a successor head's state goes ({@linkcode TfjsHeadLossOptions.onState}).
 * @returns The loss function, with `dispose()`.
 */
export function tfjsHeadLoss(head: TfjsHead, options?: TfjsHeadLossOptions): TfjsHeadLoss {
  const where = "tfjsHeadLoss";
  if (typeof head !== "function") head = checkHead(where, head);
  const o = optionsObject(where, options, [
    "reduction",
    "center",
    "engine",
    "threads",
    "wasmMode",
    "onState",
  ]);
  const reduction = reductionOption(where, o.reduction);
  const center = checkCenterOptions(where, o.center);
  const { engine, threads, mode, onState } = checkEngineOptions(where, o);
  if (typeof head !== "function" && isSuccessorHead(head) && engine) {
    checkSuccessorEngine(where, head, engine);
  }
  const wasm = new WasmPath({ threads, mode }), webgpu = new WebgpuPath(center);
  const native = new NativePath(threads === undefined ? {} : { threads });
  const synchronous = { wasm, native } as const;
  const specNow = () => typeof head === "function" ? checkHead(where, head()) : head;
  const handOver = onState as ((state: Record<string, number>) => void) | undefined;
  let now: HeadSpec | SuccessorHeadSpec | undefined; // the head of the call the op runs
  const op = tf.customGrad(
    ((features: tf.Tensor2D, labels: tf.Tensor1D, ...rest: [...tf.Tensor2D[], tf.GradSaveFunc]) => {
      const save = rest.pop() as tf.GradSaveFunc, weights = rest as tf.Tensor2D[];
      const { N, D, C } = checkTensors(where, features, weights, labels);
      const spec = now!, chosen = engineFor(engine, spec);
      if (isSuccessorHead(spec)) {
        checkSuccessorEngine(where, spec, chosen);
        checkSyncReadBack(where, chosen);
        const hooked = { where, spec, features, weights, labels, N, D, C, reduction, center };
        return chosen === "wasm" || chosen === "native"
          ? synchronous[chosen].step(hooked, handOver)
          : successorStep(hooked, handOver);
      }
      const call: Call = {
        where,
        spec,
        features,
        weights,
        labels,
        N,
        D,
        C,
        reduction,
        center,
      };
      if (chosen === "webgpu") return webgpu.step(call, save);
      checkSyncReadBack(where, chosen);
      return chosen === "reference" ? referenceStep(call) : synchronous[chosen].step(call);
    }) as CustomGradient,
  ) as (f: tf.Tensor, l: tf.Tensor, ...w: tf.Tensor[]) => tf.Scalar;
  const onGpu = gpuSuccessorLoss(where, webgpu, { reduction, center, onState: handOver });
  const loss = ((features: tf.Tensor, weights: tf.Tensor | tf.Tensor[], labels: tf.Tensor) => {
    // Checked here too: a malformed call should not reach tfjs's own checks first.
    const { D, C } = checkTensors(where, features, weights, labels);
    const shards = Array.isArray(weights) ? weights : [weights];
    const spec = now = specNow(); // the head of this call, for the op
    checkCenterShape(where, center, { classes: classesOf(spec, C), rows: C, D });
    if (isSuccessorHead(spec) && engineFor(engine, spec) === "webgpu") {
      checkSuccessorEngine(where, spec, "webgpu");
      return onGpu(spec, features as tf.Tensor2D, shards as tf.Tensor2D[], labels as tf.Tensor1D);
    }
    return op(features, labels, ...shards);
  }) as unknown as TfjsHeadLoss;
  return Object.assign(loss, {
    engine: () => engineFor(engine, specNow()),
    async prepare(shape: HeadShape) {
      const spec = specNow(), chosen = engineFor(engine, spec);
      if (isSuccessorHead(spec)) {
        checkSuccessorEngine(where, spec, chosen);
        if (chosen === "webgpu") {
          await webgpu.prepare({ where, spec: kernelHead(spec) }, shape, {
            subCenters: kernelSubCenters(spec),
          });
        }
      } else if (chosen === "webgpu") await webgpu.prepare({ where, spec }, shape);
      if (chosen === "wasm" || chosen === "native") {
        await synchronous[chosen].prepare({ spec }, shape);
      }
    },
    prepared: () => [
      ...wasm.heads.keys().map((key) => `wasm ${key}`),
      ...native.heads.keys().map((key) => `native ${key.split(" ")[0]}`),
      ...webgpu.heads.keys().map((key) => `webgpu ${key}`),
    ],
    readCenters: () => webgpu.readCenters(),
    dispose() {
      wasm.dispose();
      native.dispose();
      webgpu.dispose();
    },
  });
}

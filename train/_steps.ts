// What every engine path of tfjsHeadLoss shares: one call's checked arguments, and what a path
// returns to tf.customGrad.
import type { HeadSpec } from "../losses/head_spec.ts";
import type { Matrix } from "../losses/matrix.ts";
import type { Reduction } from "../losses/types.ts";
import { tf } from "./tfjs_setup.ts";

/** The center-loss options, checked once. */
export interface CheckedCenter {
  centers: Matrix;
  weight: number;
  alpha: number;
}

/**
 * One call of the loss, checked: the head of this step (a {@linkcode HeadSpec}, or `S`: a successor
 * head on the reference), the tensors and their sizes.
 */
export interface Call<S = HeadSpec> {
  where: string;
  spec: S;
  features: tf.Tensor2D;
  /** The weights' shards: consecutive rows of W, C×D in all (one tensor, mostly). */
  weights: tf.Tensor2D[];
  labels: tf.Tensor1D;
  N: number;
  D: number;
  /** The weights' rows (C·K for sub-center ArcFace). */
  C: number;
  reduction: Reduction;
  center?: CheckedCenter;
}

/**
 * What a path hands to tf.customGrad: the loss, and the gradients for the backward pass, in the
 * op's order: features, labels (zeros), then each shard of the weights.
 */
export interface Step {
  value: tf.Scalar;
  gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => tf.Tensor[];
}

/**
 * A float32 tensor's values without a copy where the backend allows: on tfjs-wasm a view of tfjs's
 * heap (a `dataSync` there copies into a new array, whose first touch costs ~3 ms per MB here),
 * elsewhere `dataSync()`. Valid only until tfjs allocates again: read it at once.
 */
export function valuesNow(tensor: tf.Tensor): Float32Array {
  const backend = tf.backend() as { typedArrayFromHeap?: (t: tf.TensorInfo) => unknown };
  const view = tf.getBackend() === "wasm" && tensor.dtype === "float32" && !tensor.isDisposed &&
    typeof backend.typedArrayFromHeap === "function";
  return (view ? backend.typedArrayFromHeap!(tensor) : tensor.dataSync()) as Float32Array;
}

/** What {@linkcode tensorFrom} uses of tfjs-wasm's backend. */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
  disposeData(dataId: object, force?: boolean): boolean;
}

/**
 * A new float32 tensor holding `values` (a gradient the engine computed). On tfjs-wasm the tensor
 * is allocated first and filled through a view of the heap: tfjs's own `tf.tensor` writes the
 * values at whatever address its malloc returns, 0 when the heap (at most 4 GiB, wasm32) is full,
 * which overwrites the start of the heap without a word; here that is an error naming the size.
 */
export function tensorFrom(
  where: string,
  values: Float32Array,
  shape: [number, number],
): tf.Tensor2D {
  const backend = tf.backend() as unknown as Partial<WasmHeapBackend>;
  if (
    tf.getBackend() !== "wasm" || typeof backend.makeOutput !== "function" ||
    typeof backend.typedArrayFromHeap !== "function" || values.length === 0
  ) {
    return tf.tensor2d(values, shape, "float32");
  }
  const info = backend.makeOutput(shape, "float32");
  const view = backend.typedArrayFromHeap!(info);
  if (view.byteOffset === 0) {
    backend.disposeData?.(info.dataId, true);
    throw new RangeError(
      `${where}: tfjs-wasm could not allocate ${(4 * values.length / 2 ** 20).toFixed(1)} MiB ` +
        `for a ${shape.join("×")} gradient: its heap (at most 4 GiB) is full. Fewer classes per ` +
        `step (Partial FC), a smaller batch, or engine "webgpu" on tfjs-webgpu would fit`,
    );
  }
  view.set(values);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}

/**
 * W's values as one C×D array, read at once (see {@linkcode valuesNow}): the one shard's own values,
 * or the shards' values copied in order into `stage` (a new array when it is absent or too small).
 */
export function weightValues(call: Call<unknown>, stage?: Float32Array): Float32Array {
  if (call.weights.length === 1) return valuesNow(call.weights[0]);
  const out = stage?.length === call.C * call.D ? stage : new Float32Array(call.C * call.D);
  let at = 0;
  for (const shard of call.weights) {
    const data = valuesNow(shard);
    out.set(data, at);
    at += data.length;
  }
  return out;
}

/** ∂W (C×D) as one tensor per shard of the call's weights, each times `scale`. */
export function weightGradients(
  call: Call<unknown>,
  gradWeights: Float32Array,
  scale: number,
): tf.Tensor[] {
  let row = 0;
  return call.weights.map((shard) => {
    const rows = shard.shape[0], D = call.D;
    const part = tensorFrom(call.where, gradWeights.subarray(row * D, (row + rows) * D), [rows, D]);
    row += rows;
    return scale === 1 ? part : tf.mul(part, scale);
  });
}

/** The sizes of a call as a key of prepared heads. */
export function shapeKey(call: Pick<Call<unknown>, "N" | "D" | "C">): string {
  return `${call.N}×${call.D}×${call.C}`;
}

/**
 * Prepared heads by key, the most recent first: at most `keep` of them (a training run meets two
 * shapes, its batch and its last batch), the least recently used disposed beyond.
 */
export class HeadCache<H extends { dispose(): void }> {
  #heads = new Map<string, H>();
  constructor(readonly keep = 2) {}

  /** The head of `key`, made by `make` when there is none. */
  get(key: string, make: () => H): H {
    let head = this.#heads.get(key);
    if (head) this.#heads.delete(key);
    else head = make();
    this.#heads.set(key, head);
    for (const [old, stale] of this.#heads) {
      if (this.#heads.size <= this.keep) break;
      this.#heads.delete(old);
      stale.dispose();
    }
    return head;
  }

  /** The keys of the prepared heads, the least recently used first. */
  keys(): string[] {
    return [...this.#heads.keys()];
  }

  /** Whether a head of `key` is prepared. */
  has(key: string): boolean {
    return this.#heads.has(key);
  }

  /** Adds a head prepared ahead (replacing one of the same key). */
  set(key: string, head: H): void {
    this.#heads.get(key)?.dispose();
    this.#heads.delete(key);
    this.get(key, () => head);
  }

  /** Puts `next` in `current`'s place under `key` where `current` is still there; else drops `next`. */
  replace(key: string, current: H, next: H): void {
    if (this.#heads.get(key) !== current) return next.dispose();
    current.dispose();
    this.#heads.set(key, next);
  }

  /** Disposes every head. */
  clear(): void {
    for (const head of this.#heads.values()) head.dispose();
    this.#heads.clear();
  }
}

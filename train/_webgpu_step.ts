// engine "webgpu" on tfjs-webgpu: engine-webgpu's passes run on tfjs's own GPUDevice, reading the
// GPU buffers of the features, weights and labels tensors and writing the loss, ∂features and
// ∂weights into buffers of new tfjs tensors. Nothing is read back: tfjs's queued work is submitted
// first, then ours, on the same queue, so each sees the other's results in order. This reaches into
// tfjs-webgpu's backend (its tensor map, its buffer upload and allocation, its queue), as its own
// kernels do; the few members used are named in WebgpuBackend below. A successor head runs its
// scale-s head here, each sample's target value read from a tensor that tfjs ops computed
// (train/_webgpu_successor.ts), ∂loss/∂f handed back for it.
import type { HeadShape } from "../engines/engine.ts";
import type { HeadSpec } from "../losses/head_spec.ts";
import {
  createExternalHead,
  type ExternalHead,
  prepareExternalHead,
} from "../engines/webgpu/engine.ts";
import { tf } from "./tfjs_setup.ts";
import { GpuCenters } from "./_centers.ts";
import { type Call, type CheckedCenter, HeadCache, type Step } from "./_steps.ts";

/** The members of tfjs-webgpu's backend (4.x) that this path uses. */
interface WebgpuBackend {
  device: GPUDevice;
  tensorMap: { get(dataId: object): { resource?: unknown; values?: unknown } | undefined };
  uploadToGPU(dataId: object): void;
  makeTensorInfo(
    shape: number[],
    dtype: "float32",
  ): { dataId: object; shape: number[]; dtype: "float32" };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/** tfjs-webgpu's backend, or a clear error where the active backend is another. */
function webgpuBackend(where: string): WebgpuBackend {
  const backend = tf.backend() as unknown as Partial<WebgpuBackend>;
  if (tf.getBackend() !== "webgpu" || !backend.device || !backend.tensorMap) {
    throw new Error(
      `${where}: engine "webgpu" runs on tfjs-webgpu's device; the active tfjs backend is ` +
        `"${tf.getBackend()}" (use the webgpu backend, or engine "wasm")`,
    );
  }
  return backend as WebgpuBackend;
}

/** The GPU buffer of a tensor, uploaded first if its values are still on the CPU. */
function bufferOf(backend: WebgpuBackend, where: string, name: string, t: tf.Tensor): GPUBuffer {
  backend.uploadToGPU(t.dataId);
  const resource = backend.tensorMap.get(t.dataId)?.resource;
  if (!resource || typeof (resource as GPUBuffer).size !== "number") {
    throw new Error(`${where}: ${name} has no GPU buffer on tfjs-webgpu (a texture?)`);
  }
  return resource as GPUBuffer;
}

/** A new float32 tensor of `shape` with a GPU buffer of its own, for a pass to write. */
function output(backend: WebgpuBackend, shape: number[]) {
  const info = backend.makeTensorInfo(shape, "float32");
  backend.uploadToGPU(info.dataId);
  const buffer = backend.tensorMap.get(info.dataId)!.resource as GPUBuffer;
  const tensor = tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor;
  return { tensor, buffer };
}

/**
 * The value of the scalar `dy` where tfjs still holds it on the CPU (the ones tensor that
 * `minimize` and `grads` start the backward pass with), else undefined: never a read-back.
 */
function knownScalar(backend: WebgpuBackend, dy: tf.Tensor): number | undefined {
  const values = backend.tensorMap.get(dy.dataId)?.values as ArrayLike<number> | undefined;
  return values && values.length === 1 ? values[0] : undefined;
}

/** g·dy: g itself (a new handle) when dy is known to be 1, else a multiplication on the GPU. */
function scaled(backend: WebgpuBackend, g: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return knownScalar(backend, dy) === 1 ? tf.clone(g) : tf.mul(g, dy);
}

/** engine-webgpu's prepared heads of one loss on tfjs-webgpu's device, by shape and head kind. */
export class WebgpuPath {
  readonly heads = new HeadCache<ExternalHead>();
  #device?: GPUDevice;
  #centers?: GpuCenters;
  constructor(center: CheckedCenter | undefined) {
    if (center) this.#centers = new GpuCenters(center);
  }

  /** A head's key: its shape and kind, and with targets from a tensor, its sub-centers. */
  #key(spec: HeadSpec, shape: HeadShape, targets?: { subCenters?: number }): string {
    const from = targets ? ` targets K=${targets.subCenters ?? 0}` : "";
    return `${shape.samples}×${shape.dims}×${shape.classes} ${spec.logits}${from}`;
  }

  /** The backend, with this path's heads dropped if its device changed. */
  #backend(where: string): WebgpuBackend {
    const backend = webgpuBackend(where);
    if (this.#device !== backend.device) {
      this.heads.clear();
      this.#centers?.dispose();
      this.#device = backend.device;
    }
    return backend;
  }

  /**
   * Prepares a head of `shape` ahead, asynchronously (with the device's error scopes); `targets`
   * for a successor head's scale-s head, its targets computed outside (see {@linkcode step}).
   */
  async prepare(
    call: Pick<Call, "where" | "spec">,
    shape: HeadShape,
    targets?: { subCenters?: number },
  ): Promise<void> {
    const backend = this.#backend(call.where);
    const key = this.#key(call.spec, shape, targets);
    if (this.heads.has(key)) return;
    const options = targets ? { targets: true, subCenters: targets.subCenters } : {};
    this.heads.set(key, await prepareExternalHead(backend.device, call.spec, shape, options));
  }

  /**
   * One step: the passes submitted, the loss and the gradients as tensors on the GPU. With
   * `targets` (a successor head: `call.spec` is its scale-s head without margin), each sample's
   * target value f comes from that tensor and the backward pass gives it ∂loss/∂f = s·∂loss/∂z_y
   * after the features and the labels; the targets' part of ∂x and ∂W is the caller's (tfjs
   * differentiates the ops that made f).
   */
  step(
    call: Call,
    save: tf.GradSaveFunc,
    targets?: { f: tf.Tensor1D; scale: number; subCenters?: number },
  ): Step {
    const { where, spec, N, D, C, reduction } = call;
    const backend = this.#backend(where);
    const shape = { samples: N, dims: D, classes: C };
    const options = targets ? { targets: true, subCenters: targets.subCenters } : {};
    const head = this.heads.get(
      this.#key(spec, shape, targets),
      () => createExternalHead(backend.device, spec, shape, options),
    );
    const labels = call.labels.dtype === "int32" ? call.labels : tf.cast(call.labels, "int32");
    const inputs = {
      features: bufferOf(backend, where, "features", call.features),
      weights: call.weights.map((w, k) => ({
        buffer: bufferOf(backend, where, `weights shard ${k}`, w),
        rows: w.shape[0],
      })),
      labels: bufferOf(backend, where, "labels", labels),
      ...(targets ? { targets: bufferOf(backend, where, "targets", targets.f) } : {}),
    };
    // tfjs's queued work (which may write our inputs) is submitted before ours.
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.submitQueue();
    const loss = output(backend, []), gx = output(backend, [N, D]);
    const gws = call.weights.map((w) => output(backend, [w.shape[0], D]));
    const gf = targets ? output(backend, [N]) : undefined;
    head.run(spec, {
      ...inputs,
      loss: loss.buffer,
      gradFeatures: gx.buffer,
      gradWeights: gws.map((g) => g.buffer),
      ...(gf ? { targetGrads: gf.buffer } : {}),
    }, reduction);
    let value = loss.tensor as tf.Scalar, gradFeatures = gx.tensor as tf.Tensor2D;
    let centerSaved: tf.Tensor[] = [];
    if (this.#centers) {
      const c = this.#centers.forward(call.features, call.labels, reduction);
      value = tf.add(value, c.loss);
      gradFeatures = tf.add(gradFeatures, c.gradient);
      centerSaved = c.saved;
    }
    const shards = gws.length, ownGrads = 1 + shards + (gf ? 1 : 0);
    save([gradFeatures, ...gws.map((g) => g.tensor), ...(gf ? [gf.tensor] : []), ...centerSaved]);
    return {
      value,
      gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => {
        if (this.#centers) this.#centers.move(saved.slice(ownGrads));
        const gradTargets = gf
          ? [tf.mul(scaled(backend, saved[1 + shards], dy), targets!.scale)]
          : [];
        return [
          scaled(backend, saved[0], dy),
          tf.zerosLike(call.labels),
          ...gradTargets,
          ...saved.slice(1, 1 + shards).map((g) => scaled(backend, g, dy)),
        ];
      },
    };
  }

  /** Copies the centers' GPU copy back into their Matrix. */
  async readCenters(): Promise<void> {
    await this.#centers?.read();
  }

  /** Releases every prepared head and the centers' GPU copy. */
  dispose(): void {
    this.heads.clear();
    this.#centers?.dispose();
  }
}

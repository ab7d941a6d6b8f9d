/**
 * TensorFlow.js 4.22 as backends: `tfjs-cpu` (plain JavaScript), `tfjs-wasm` (WebAssembly SIMD,
 * one thread in Deno) and `tfjs-webgpu` (WGSL shaders), all float32. The head is written with tfjs
 * ops and differentiated by tfjs's own autodiff: a third derivation of every gradient, independent
 * of the analytic float64 one and of PyTorch's.
 *
 * @module
 */
import type { HeadSpec, Reduction } from "../mod.ts";
import { assertFiniteOutput, checkHeadInput, reductionOption } from "../losses/_validate.ts";
import type { Backend, BackendKind, BackendResult, PreparedHead } from "./backend.ts";
import { headLosses } from "./_tfjs_head.ts";
import { tf, type TfjsBackendName, useTfjsBackend } from "./_tfjs_setup.ts";

/**
 * tfjs-webgpu binds each tensor whole; past the adapter's maxStorageBufferBindingSize (128 MiB on
 * lavapipe) it computes silently wrong results (measured at L = 256×512×100 000: softmax returns
 * zeros, the margin losses non-finite values), so such heads are refused up front.
 */
function checkBindingLimit(where: string, N: number, D: number, C: number) {
  const limit = (tf.backend() as unknown as { device?: GPUDevice }).device?.limits
    .maxStorageBufferBindingSize;
  const largest = 4 * Math.max(C * D, N * C, N * D);
  if (limit !== undefined && largest > limit) {
    throw new RangeError(
      `${where}: a ${(largest / 2 ** 20).toFixed(0)} MiB tensor exceeds this adapter's ` +
        `${(limit / 2 ** 20).toFixed(0)} MiB storage-binding limit, where tfjs-webgpu computes ` +
        `wrong results`,
    );
  }
}

function tfjsBackend(name: TfjsBackendName, kind: BackendKind): Backend {
  const where = `tfjs-${name}`;
  const prepare = async (
    head: HeadSpec,
    input: Parameters<Backend["prepare"]>[1],
    reduction: Reduction,
  ): Promise<PreparedHead> => {
    reductionOption(where, reduction);
    const availability = await useTfjsBackend(name);
    if (!availability.available) throw new Error(`${where} is unavailable: ${availability.reason}`);
    const { N, D, C, x, w, labels, bias } = checkHeadInput(where, input, {
      classes: "weights",
      allowBias: head.logits === "linear",
    });
    if (name === "webgpu") checkBindingLimit(where, N, D, C);
    // Uploaded once, outside run(); released by dispose().
    const features = tf.tensor2d(Float32Array.from(x), [N, D]);
    const weights = tf.tensor2d(Float32Array.from(w), [C, D]);
    const labelTensor = tf.tensor1d(labels, "int32");
    const biasTensor = bias ? tf.tensor1d(Float32Array.from(bias)) : undefined;
    // The gradient of Σ weight·loss_i: 1/N for "mean", 1 for "sum" and "none".
    const dy = tf.fill([N], reduction === "mean" ? 1 / N : 1) as tf.Tensor1D;
    const args = biasTensor ? [features, weights, biasTensor] : [features, weights];
    const lossesOf = (...t: tf.Tensor[]) =>
      headLosses(head, {
        features: t[0] as tf.Tensor2D,
        weights: t[1] as tf.Tensor2D,
        labels: labelTensor,
        bias: t[2] as tf.Tensor1D | undefined,
      });
    return {
      async run(): Promise<BackendResult> {
        await useTfjsBackend(name); // another tfjs backend may have run since prepare
        const outputs = tf.tidy(() => {
          const { value: losses, grads } = tf.valueAndGrads(lossesOf)(args, dy);
          const loss = reduction === "mean" ? tf.mean(losses) : tf.sum(losses);
          return [loss, losses, ...grads];
        });
        let data: Float32Array[];
        try {
          data = (await Promise.all(outputs.map((t) => t.data()))) as Float32Array[];
        } finally {
          tf.dispose(outputs);
        }
        const names = ["loss", "losses", "gradFeatures", "gradWeights", "gradBias"];
        data.forEach((d, k) => assertFiniteOutput(where, names[k], d, "float32"));
        const result: BackendResult = {
          loss: data[0][0],
          losses: data[1],
          gradFeatures: data[2],
          gradWeights: data[3],
        };
        if (data[4]) result.gradBias = data[4];
        return result;
      },
      dispose() {
        tf.dispose([features, weights, labelTensor, dy, ...(biasTensor ? [biasTensor] : [])]);
      },
    };
  };
  return {
    name: where,
    kind,
    precision: "float32",
    availability: () => useTfjsBackend(name),
    prepare,
  };
}

/** TensorFlow.js's plain-JavaScript `cpu` backend, float32. */
export const tfjsCpuBackend: Backend = tfjsBackend("cpu", "CPU");

/** TensorFlow.js's `wasm` backend (XNNPACK, WebAssembly SIMD; no threads in Deno), float32. */
export const tfjsWasmBackend: Backend = tfjsBackend("wasm", "WASM");

/** TensorFlow.js's `webgpu` backend, float32; unavailable without a WebGPU adapter. */
export const tfjsWebgpuBackend: Backend = tfjsBackend("webgpu", "WebGPU");

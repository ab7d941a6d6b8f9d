/**
 * TensorFlow.js 4.22 as peer engines: `tfjs-cpu` (plain JavaScript), `tfjs-wasm` (WebAssembly SIMD,
 * one thread in Deno) and `tfjs-webgpu` (WGSL shaders), all float32. The head is written with tfjs
 * ops and differentiated by tfjs's own autodiff: a third derivation of every gradient, independent
 * of the analytic float64 one and of PyTorch's.
 *
 * @module
 */
import type { HeadSpec } from "../losses/head_spec.ts";
import { assertFiniteOutput } from "../losses/checks.ts";
import type { Engine, EngineHead, EngineKind, EngineResult, HeadShape } from "../engines/engine.ts";
import { headLosses } from "./tfjs_head.ts";
import { tf, type TfjsBackendName, useTfjsBackend } from "../train/tfjs_setup.ts";

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

function tfjsEngine(name: TfjsBackendName, kind: EngineKind): Engine<Float32Array> {
  const where = `tfjs-${name}`;
  const prepare = async (head: HeadSpec, shape: HeadShape): Promise<EngineHead<Float32Array>> => {
    const availability = await useTfjsBackend(name);
    if (!availability.available) throw new Error(`${where} is unavailable: ${availability.reason}`);
    const { samples: N, dims: D, classes: C } = shape;
    if (name === "webgpu") checkBindingLimit(where, N, D, C);
    const labelTensors = (labels: Int32Array) => tf.tensor1d(labels, "int32");
    // Copied before the first await (the caller may reuse its arrays at once) into arrays kept from
    // run to run: runs never overlap (prepareOn queues them) and each run's tensors are disposed
    // before it ends; a new C×D array per run would cost its first touch.
    const x = new Float32Array(N * D), w = new Float32Array(C * D);
    return {
      async run(view, { reduction }) {
        x.set(view.x);
        w.set(view.w);
        const labels = view.labels.slice(), bias = view.bias && Float32Array.from(view.bias);
        await useTfjsBackend(name); // another tfjs backend may have run since
        const outputs = tf.tidy(() => {
          const args: tf.Tensor[] = [tf.tensor2d(x, [N, D]), tf.tensor2d(w, [C, D])];
          if (bias) args.push(tf.tensor1d(bias));
          const labelTensor = labelTensors(labels);
          // The gradient of Σ weight·loss_i: 1/N for "mean", 1 for "sum" and "none".
          const dy = tf.fill([N], reduction === "mean" ? 1 / N : 1) as tf.Tensor1D;
          const lossesOf = (...t: tf.Tensor[]) =>
            headLosses(head, {
              features: t[0] as tf.Tensor2D,
              weights: t[1] as tf.Tensor2D,
              labels: labelTensor,
              bias: t[2] as tf.Tensor1D | undefined,
            });
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
        const result: EngineResult<Float32Array> = {
          loss: data[0][0],
          losses: Float64Array.from(data[1]),
          gradFeatures: { rows: N, cols: D, data: data[2] },
          gradWeights: { rows: C, cols: D, data: data[3] },
        };
        if (data[4]) result.gradBias = data[4];
        return result;
      },
      dispose() {},
    };
  };
  return {
    name: where,
    kind,
    precision: "float32",
    threaded: false,
    checksValues: false,
    availability: () => useTfjsBackend(name),
    supports: () => true,
    prepare,
  };
}

/** TensorFlow.js's plain-JavaScript `cpu` backend, float32, with tfjs's own autodiff. */
export const tfjsCpuEngine: Engine<Float32Array> = tfjsEngine("cpu", "CPU");

/** TensorFlow.js's `wasm` backend (XNNPACK, WebAssembly SIMD; no threads in Deno), float32. */
export const tfjsWasmEngine: Engine<Float32Array> = tfjsEngine("wasm", "WASM");

/** TensorFlow.js's `webgpu` backend, float32; unavailable without a WebGPU adapter. */
export const tfjsWebgpuEngine: Engine<Float32Array> = tfjsEngine("webgpu", "WebGPU");

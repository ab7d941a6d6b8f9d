/**
 * onnxruntime-web 1.30 as peer engines: `ort-wasm` (its WebAssembly execution provider, one thread) and
 * `ort-webgpu` (its WebGPU execution provider), both float32. ORT-web has no training API, so each
 * head runs an ONNX graph that computes the loss and its gradients with an explicit backward,
 * exported from PyTorch and checked against autograd by fixtures/onnx_export.py: one graph per
 * structure of a {@linkcode HeadSpec}, with the numbers (scale, margins, λ, the reduction) as inputs.
 *
 * @module
 */
import * as ortWasm from "onnxruntime-web";
import * as ortWebgpu from "onnxruntime-web/webgpu";
import type { HeadSpec } from "../losses/head_spec.ts";
import { assertFiniteOutput } from "../losses/checks.ts";
import { readAsset } from "../engines/platform.ts";
import type {
  Availability,
  Engine,
  EngineHead,
  EngineKind,
  EngineResult,
  HeadShape,
} from "../engines/engine.ts";
import {
  type GraphEntry,
  graphFor,
  type GraphIndex,
  graphIndex,
  ONNX_FOLDER,
  paramValue,
} from "./_onnx_graphs.ts";

type Ort = typeof ortWasm;

/** One execution provider of one onnxruntime-web build. */
interface Provider {
  name: string;
  kind: EngineKind;
  ort: Ort;
  executionProvider: "wasm" | "webgpu";
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function configure(ort: Ort) {
  // Threads: the first run of a gradient graph often hangs with numThreads > 1 in Deno.
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "error"; // not the "nodes not assigned to the preferred EP" warning
}

function ortEngine(provider: Provider): Engine<Float32Array> {
  const { name: where, ort, executionProvider } = provider;
  configure(ort);
  const sessions = new Map<string, Promise<ortWasm.InferenceSession>>();

  /** One session per graph, created on first use and kept: creation is seconds on WebGPU. */
  const session = (graph: GraphEntry) => {
    let s = sessions.get(graph.file);
    if (!s) {
      s = readAsset(new URL(graph.file, ONNX_FOLDER)).then((bytes) =>
        ort.InferenceSession.create(bytes, {
          executionProviders: [executionProvider],
          logSeverityLevel: 3,
        })
      );
      sessions.set(graph.file, s);
      s.catch(() => sessions.delete(graph.file)); // retry next time rather than cache a failure
    }
    return s;
  };

  let availability: Promise<Availability> | undefined;
  let indexRead: GraphIndex | undefined;
  const probe = async (): Promise<Availability> => {
    try {
      if (executionProvider === "webgpu") {
        const gpu = (navigator as { gpu?: GPU }).gpu;
        if (!gpu) return { available: false, reason: "navigator.gpu is missing (no WebGPU)" };
        if (!(await gpu.requestAdapter())) {
          return { available: false, reason: "navigator.gpu.requestAdapter() found no adapter" };
        }
      }
      const graphs = await graphIndex().catch((error) => {
        throw new Error(`cannot read fixtures/onnx/index.json (${errorText(error)})`);
      });
      const missing = graphs.graphs.map((g) => g.file).filter((file) => {
        if (ONNX_FOLDER.protocol !== "file:" || typeof Deno === "undefined") return false;
        try {
          return !Deno.statSync(new URL(file, ONNX_FOLDER)).isFile;
        } catch {
          return true;
        }
      });
      if (missing.length) {
        throw new Error(
          `fixtures/onnx lacks ${missing.length} graph(s) of its index (${missing.join(", ")}); ` +
            "regenerate them: deno task fixtures",
        );
      }
      indexRead = graphs;
      const linear = graphFor(graphs, { name: "probe", logits: "linear" });
      if (typeof linear === "string") throw new Error(linear);
      await session(linear); // loads the runtime (and for WebGPU, the device)
      return { available: true };
    } catch (error) {
      return { available: false, reason: `${where}: ${errorText(error)}` };
    }
  };

  const supports = (head: HeadSpec): true | string => {
    // The index is read by availability(); before that, prepare() decides.
    if (!indexRead) return true;
    const graph = graphFor(indexRead, head);
    return typeof graph === "string" ? graph : true;
  };

  const prepare = async (head: HeadSpec, shape: HeadShape): Promise<EngineHead<Float32Array>> => {
    const available = await (availability ??= probe());
    if (!available.available) throw new Error(`${where} is unavailable: ${available.reason}`);
    const { samples: N, dims: D, classes: C } = shape;
    const graphs = await graphIndex();
    const graph = graphFor(graphs, head);
    if (typeof graph === "string") throw new Error(`${where}: ${graph}`);
    const s = await session(graph);
    // On WebGPU the two big inputs live in GPU buffers made once and written by each run, as
    // tfjs-webgpu and our own engine do; on wasm they are new tensors each run.
    const device = executionProvider === "webgpu"
      ? (await ort.env.webgpu.device) as GPUDevice
      : undefined;
    const gpuBuffers: GPUBuffer[] = [];
    const matrixTensor = (dims: number[]) => {
      if (!device) return (values: Float32Array) => new ort.Tensor("float32", values, dims);
      const buffer = device.createBuffer({
        size: 4 * dims[0] * dims[1],
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      gpuBuffers.push(buffer);
      const tensor = ort.Tensor.fromGpuBuffer(buffer, { dataType: "float32", dims });
      return (values: Float32Array) => {
        device.queue.writeBuffer(buffer, 0, values as Float32Array<ArrayBuffer>);
        return tensor;
      };
    };
    const featuresOf = matrixTensor([N, D]), weightsOf = matrixTensor([C, D]);
    // The caller's arrays copied at once into arrays kept from run to run (runs never overlap:
    // prepareOn queues them); a new C×D array per run would cost its first touch.
    const stage = { x: new Float32Array(N * D), w: new Float32Array(C * D) };
    return {
      async run(view, { reduction }) {
        stage.x.set(view.x);
        stage.w.set(view.w);
        const tensors: Record<string, ortWasm.Tensor> = {
          features: featuresOf(stage.x),
          weights: weightsOf(stage.w),
          labels: new ort.Tensor("int64", BigInt64Array.from(view.labels, (y) => BigInt(y)), [N]),
          bias: new ort.Tensor(
            "float32",
            view.bias ? Float32Array.from(view.bias) : new Float32Array(C),
            [C],
          ),
        };
        const feeds: Record<string, ortWasm.Tensor> = {};
        for (const inputName of s.inputNames) {
          const value = tensors[inputName] ?? paramValue(graphs, inputName, { head, reduction, N });
          feeds[inputName] = typeof value !== "number"
            ? value
            : inputName === "psi_margin"
            ? new ort.Tensor("int64", BigInt64Array.of(BigInt(value)), [])
            : new ort.Tensor("float32", Float32Array.of(value), []);
        }
        const hasBias = view.bias !== undefined;
        const outputs = await s.run(feeds);
        const read = async (output: string) => {
          // getData() downloads a GPU-located output; CPU outputs are returned as they are.
          const data = (await outputs[output].getData()) as Float32Array;
          assertFiniteOutput(where, output, data, "float32");
          return data;
        };
        const result: EngineResult<Float32Array> = {
          loss: (await read("loss"))[0],
          losses: Float64Array.from(await read("losses")),
          gradFeatures: { rows: N, cols: D, data: await read("grad_features") },
          gradWeights: { rows: C, cols: D, data: await read("grad_weights") },
        };
        if (hasBias) result.gradBias = await read("grad_bias");
        for (const tensor of Object.values(outputs)) tensor.dispose();
        return result;
      },
      dispose() {
        for (const buffer of gpuBuffers) buffer.destroy();
      },
    };
  };

  return {
    name: where,
    kind: provider.kind,
    precision: "float32",
    threaded: false,
    checksValues: false,
    availability: () => availability ??= probe(),
    supports,
    prepare,
  };
}

/** onnxruntime-web's WebAssembly execution provider (SIMD, one thread), float32. */
export const ortWasmEngine: Engine<Float32Array> = ortEngine({
  name: "ort-wasm",
  kind: "WASM",
  ort: ortWasm,
  executionProvider: "wasm",
});

/** onnxruntime-web's WebGPU execution provider, float32; unavailable without a WebGPU adapter. */
export const ortWebgpuEngine: Engine<Float32Array> = ortEngine({
  name: "ort-webgpu",
  kind: "WebGPU",
  ort: ortWebgpu as unknown as Ort,
  executionProvider: "webgpu",
});

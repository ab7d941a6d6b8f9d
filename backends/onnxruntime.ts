/**
 * onnxruntime-web 1.30 as backends: `ort-wasm` (its WebAssembly execution provider, one thread) and
 * `ort-webgpu` (its WebGPU execution provider), both float32. ORT-web has no training API, so each
 * head runs an ONNX graph that computes the loss and its gradients with an explicit backward,
 * exported from PyTorch and checked against autograd by fixtures/onnx_export.py: one graph per
 * structure of a {@linkcode HeadSpec}, with the numbers (scale, margins, λ, the reduction) as inputs.
 *
 * @module
 */
import * as ortWasm from "onnxruntime-web";
import * as ortWebgpu from "onnxruntime-web/webgpu";
import type { HeadInput, HeadSpec, Reduction } from "../mod.ts";
import { assertFiniteOutput, checkHeadInput, reductionOption } from "../losses/_validate.ts";
import type { Availability, Backend, BackendKind, BackendResult, PreparedHead } from "./backend.ts";
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
  kind: BackendKind;
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

function ortBackend(provider: Provider): Backend {
  const { name: where, ort, executionProvider } = provider;
  configure(ort);
  const sessions = new Map<string, Promise<ortWasm.InferenceSession>>();

  /** One session per graph, created on first use and kept: creation is seconds on WebGPU. */
  const session = (graph: GraphEntry) => {
    let s = sessions.get(graph.file);
    if (!s) {
      s = Deno.readFile(new URL(graph.file, ONNX_FOLDER)).then((bytes) =>
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

  const prepare = async (
    head: HeadSpec,
    input: HeadInput,
    reduction: Reduction,
  ): Promise<PreparedHead> => {
    reductionOption(where, reduction);
    const available = await (availability ??= probe());
    if (!available.available) throw new Error(`${where} is unavailable: ${available.reason}`);
    const { N, D, C, x, w, labels, bias } = checkHeadInput(where, input, {
      classes: "weights",
      allowBias: head.logits === "linear",
    });
    const graphs = await graphIndex();
    const graph = graphFor(graphs, head);
    if (typeof graph === "string") throw new Error(`${where}: ${graph}`);
    const s = await session(graph);
    // Every tensor is built here, outside run(); a linear head without bias gets zeros. On WebGPU
    // the two big ones are uploaded here too, as tfjs-webgpu and our own engine do.
    const gpuBuffers: GPUBuffer[] = [];
    const matrixTensor = async (data: Float64Array, dims: number[]) => {
      const values = Float32Array.from(data);
      if (executionProvider !== "webgpu") return new ort.Tensor("float32", values, dims);
      const device = (await ort.env.webgpu.device) as GPUDevice;
      const buffer = device.createBuffer({
        size: values.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(buffer, 0, values);
      gpuBuffers.push(buffer);
      return ort.Tensor.fromGpuBuffer(buffer, { dataType: "float32", dims });
    };
    const tensors: Record<string, ortWasm.Tensor> = {
      features: await matrixTensor(x, [N, D]),
      weights: await matrixTensor(w, [C, D]),
      labels: new ort.Tensor("int64", BigInt64Array.from(labels, (y) => BigInt(y)), [N]),
      bias: new ort.Tensor("float32", bias ? Float32Array.from(bias) : new Float32Array(C), [C]),
    };
    const feeds: Record<string, ortWasm.Tensor> = {};
    for (const inputName of s.inputNames) {
      if (tensors[inputName]) {
        feeds[inputName] = tensors[inputName];
        continue;
      }
      const value = paramValue(graphs, inputName, { head, reduction, N });
      feeds[inputName] = inputName === "psi_margin"
        ? new ort.Tensor("int64", BigInt64Array.of(BigInt(value)), [])
        : new ort.Tensor("float32", Float32Array.of(value), []);
    }
    return {
      async run(): Promise<BackendResult> {
        const outputs = await s.run(feeds);
        const read = async (output: string) => {
          // getData() downloads a GPU-located output; CPU outputs are returned as they are.
          const data = (await outputs[output].getData()) as Float32Array;
          assertFiniteOutput(where, output, data, "float32");
          return data;
        };
        const result: BackendResult = {
          loss: (await read("loss"))[0],
          losses: await read("losses"),
          gradFeatures: await read("grad_features"),
          gradWeights: await read("grad_weights"),
        };
        if (bias) result.gradBias = await read("grad_bias");
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
    availability: () => availability ??= probe(),
    supports,
    prepare,
  };
}

/** onnxruntime-web's WebAssembly execution provider (SIMD, one thread), float32. */
export const ortWasmBackend: Backend = ortBackend({
  name: "ort-wasm",
  kind: "WASM",
  ort: ortWasm,
  executionProvider: "wasm",
});

/** onnxruntime-web's WebGPU execution provider, float32; unavailable without a WebGPU adapter. */
export const ortWebgpuBackend: Backend = ortBackend({
  name: "ort-webgpu",
  kind: "WebGPU",
  ort: ortWebgpu as unknown as Ort,
  executionProvider: "webgpu",
});

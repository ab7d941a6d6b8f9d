/**
 * onnxruntime-node 1.30 as a peer engine, `ort-node`: onnxruntime's native CPU build (MLAS kernels)
 * through Node-API, running the project's ONNX graphs (fixtures/onnx, chosen by
 * ./_onnx_graphs.ts, as for onnxruntime-web) in its best configuration: intra-op threads = the
 * logical cores, sequential execution, every graph optimisation. float32.
 *
 * Needs `npm:onnxruntime-node@1.30.0` (its install script downloads CUDA parts and is not needed:
 * the CPU build is inside the package; Deno does not run it) and `--allow-ffi` (Node-API addons),
 * so the package is imported when availability() is first asked, not with this module.
 *
 * @module
 */
import type { InferenceSession, Tensor } from "onnxruntime-node";
import type { HeadSpec } from "../losses/head_spec.ts";
import { assertFiniteOutput } from "../losses/checks.ts";
import type {
  Availability,
  Engine,
  EngineHead,
  EngineOptions,
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

type Ort = typeof import("onnxruntime-node");

const WHERE = "ort-node";

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

let ortModule: Promise<Ort> | undefined;
let indexRead: GraphIndex | undefined;
let probe: Promise<Availability> | undefined;

async function loadOrt(): Promise<Ort> {
  ortModule ??= import("onnxruntime-node").then((m) => {
    const ort = ((m as { default?: Ort }).default ?? m) as Ort;
    ort.env.logLevel = "error";
    return ort;
  });
  ortModule.catch(() => ortModule = undefined);
  return await ortModule;
}

async function availability(): Promise<Availability> {
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return { available: false, reason: `${WHERE}: needs --allow-ffi (a Node-API addon)` };
    }
  } catch {
    return { available: false, reason: `${WHERE}: needs --allow-ffi (a Node-API addon)` };
  }
  try {
    await loadOrt();
  } catch (error) {
    return {
      available: false,
      reason: `${WHERE}: cannot load npm:onnxruntime-node@1.30.0 (${errorText(error)}); ` +
        "run `deno install`",
    };
  }
  try {
    const graphs = await graphIndex();
    const missing = graphs.graphs.map((g) => g.file).filter((file) => {
      try {
        return !Deno.statSync(new URL(file, ONNX_FOLDER)).isFile;
      } catch {
        return true;
      }
    });
    if (missing.length) {
      return {
        available: false,
        reason: `${WHERE}: fixtures/onnx lacks ${missing.length} graph(s) of its index; ` +
          "regenerate them: deno task fixtures",
      };
    }
    indexRead = graphs;
  } catch (error) {
    return {
      available: false,
      reason: `${WHERE}: cannot read fixtures/onnx/index.json (${errorText(error)})`,
    };
  }
  const cores = navigator.hardwareConcurrency ?? 1;
  return {
    available: true,
    detail: `onnxruntime-node 1.30 CPU (MLAS kernels), intra-op threads ${cores} by default`,
  };
}

function supports(head: HeadSpec): true | string {
  // The index is read by availability(); before that, prepare() decides.
  if (!indexRead) return true;
  const graph = graphFor(indexRead, head);
  return typeof graph === "string" ? graph : true;
}

/** One session per graph and thread count, kept: creation optimises the graph. */
const sessions = new Map<string, Promise<InferenceSession>>();

function session(ort: Ort, graph: GraphEntry, threads: number): Promise<InferenceSession> {
  const key = `${graph.file}/${threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = Deno.readFile(new URL(graph.file, ONNX_FOLDER)).then((bytes) =>
      ort.InferenceSession.create(bytes, {
        executionProviders: ["cpu"],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: "sequential",
        graphOptimizationLevel: "all",
        logSeverityLevel: 3,
      })
    );
    sessions.set(key, s);
    s.catch(() => sessions.delete(key)); // retry next time rather than cache a failure
  }
  return s;
}

async function prepare(
  head: HeadSpec,
  shape: HeadShape,
  options: EngineOptions,
): Promise<EngineHead<Float32Array>> {
  const available = await (probe ??= availability());
  if (!available.available) throw new Error(`${WHERE} is unavailable: ${available.reason}`);
  const ort = await loadOrt();
  const threads = options.threads ?? navigator.hardwareConcurrency ?? 1;
  const { samples: N, classes: C, dims: D } = shape;
  const graphs = await graphIndex();
  const graph = graphFor(graphs, head);
  if (typeof graph === "string") throw new Error(`${WHERE}: ${graph}`);
  const s = await session(ort, graph, threads);
  // The caller's arrays are copied before the first await (the session reads them later), into
  // arrays kept from run to run: runs of a prepared head never overlap (prepareOn queues them), and
  // a new 200 MB array per run would cost ort-node its first touch (~0.7 s at L here).
  const stage = {
    x: new Float32Array(N * D),
    w: new Float32Array(C * D),
    labels: new BigInt64Array(N),
    bias: new Float32Array(C),
  };
  const tensors: Record<string, Tensor> = {
    features: new ort.Tensor("float32", stage.x, [N, D]),
    weights: new ort.Tensor("float32", stage.w, [C, D]),
    labels: new ort.Tensor("int64", stage.labels, [N]),
    bias: new ort.Tensor("float32", stage.bias, [C]),
  };
  return {
    threads,
    async run(view, { reduction }) {
      stage.x.set(view.x);
      stage.w.set(view.w);
      for (let i = 0; i < N; i++) stage.labels[i] = BigInt(view.labels[i]);
      if (view.bias) stage.bias.set(view.bias);
      else stage.bias.fill(0);
      const feeds: Record<string, Tensor> = {};
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
      const read = (output: string) => {
        const data = outputs[output].data as Float32Array;
        assertFiniteOutput(WHERE, output, data, "float32");
        return data;
      };
      const result: EngineResult<Float32Array> = {
        loss: read("loss")[0],
        losses: Float64Array.from(read("losses")),
        gradFeatures: { rows: N, cols: D, data: read("grad_features") },
        gradWeights: { rows: C, cols: D, data: read("grad_weights") },
      };
      if (hasBias) result.gradBias = read("grad_bias");
      return result;
    },
    dispose() {},
  };
}

/**
 * onnxruntime-node's CPU execution provider (native MLAS kernels, intra-op threads = the logical
 * cores unless `threads` says otherwise), float32; unavailable without `--allow-ffi` or the
 * package.
 */
export const ortNodeEngine: Engine<Float32Array> = {
  name: WHERE,
  kind: "CPU",
  precision: "float32",
  threaded: true,
  checksValues: false,
  availability: () => probe ??= availability(),
  supports,
  prepare,
};

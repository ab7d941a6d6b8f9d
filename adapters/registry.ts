/**
 * The peers our engines are measured against: TensorFlow.js (cpu, wasm, webgpu, with tfjs's own
 * autodiff) and onnxruntime-web (wasm, webgpu, running the project's ONNX graphs), behind the same
 * engine contract. The bench and the parity matrix iterate over {@linkcode CONTENDERS}.
 *
 * @module
 */
import type { Engine } from "../engines/engine.ts";
import { ENGINES } from "../engines/registry.ts";
import { tfjsCpuEngine, tfjsWasmEngine, tfjsWebgpuEngine } from "./tfjs.ts";
import { ortWasmEngine, ortWebgpuEngine } from "./onnxruntime.ts";
import { ortNodeEngine } from "./onnxruntime_node.ts";

/** Every peer adapter. */
export const PEERS: readonly Engine<Float32Array>[] = [
  tfjsCpuEngine,
  tfjsWasmEngine,
  tfjsWebgpuEngine,
  ortWasmEngine,
  ortWebgpuEngine,
  ortNodeEngine,
];

/** Our engines (the reference first), then the peers: what the bench and parity compare. */
export const CONTENDERS: readonly Engine[] = [
  ...(Object.values(ENGINES) as Engine[]),
  ...PEERS,
];

// Every backend the parity tests and the benches iterate over. Registering here is all it takes.
import type { Backend } from "./backend.ts";
import { referenceBackend } from "./reference.ts";
import { tfjsCpuBackend, tfjsWasmBackend, tfjsWebgpuBackend } from "./tfjs.ts";
import { wasmBackend } from "../engines/wasm/backend.ts";
import { webgpuEngineBackend } from "../engines/webgpu/backend.ts";
import { ortWasmBackend, ortWebgpuBackend } from "./onnxruntime.ts";

/** All known backends, the reference first. */
export const BACKENDS: Backend[] = [
  referenceBackend,
  tfjsCpuBackend,
  tfjsWasmBackend,
  tfjsWebgpuBackend,
  wasmBackend,
  webgpuEngineBackend,
  ortWasmBackend,
  ortWebgpuBackend,
];

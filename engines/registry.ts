/**
 * Our engines, by name: the one list that {@linkcode prepareHead}, the bench, the parity matrix and
 * the training adapter read. Adding an engine is adding it here.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { referenceEngine } from "./reference/engine.ts";
import { wasmEngine } from "./wasm/engine.ts";
import { webgpuEngine } from "./webgpu/engine.ts";
import { nativeEngine } from "./native/engine.ts";

/** Every engine of the library, the float64 reference first. */
export const ENGINES = {
  reference: referenceEngine,
  wasm: wasmEngine,
  webgpu: webgpuEngine,
  native: nativeEngine,
} as const satisfies Record<string, Engine<Float32Array> | Engine<Float64Array>>;

/** The name of one of our engines: `"reference"`, `"wasm"`, `"webgpu"` or `"native"`. */
export type EngineName = keyof typeof ENGINES;

/** The names of {@linkcode ENGINES}, in order. */
export const ENGINE_NAMES = Object.keys(ENGINES) as EngineName[];

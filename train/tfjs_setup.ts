// TensorFlow.js 4.22 in Deno: one global engine, three of its backends, each initialised once.
// The union package, not tfjs-core alone: only its bundle registers the gradients (and cpu).
import * as tf from "@tensorflow/tfjs";
import * as tfWasm from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import type { Availability } from "../engines/engine.ts";

/** The tfjs namespace, with the cpu, wasm and webgpu backends and every gradient registered. */
export { tf };

/** The tfjs backends this project uses. */
export type TfjsBackendName = "cpu" | "wasm" | "webgpu";

const initialised = new Map<TfjsBackendName, Promise<Availability>>();

function errorText(error: unknown): string {
  return error instanceof Error
    ? error.message
    : String((error as { message?: unknown })?.message ?? error);
}

/**
 * The folder holding the wasm backend's `.wasm` binaries, as a file-system path: the package's
 * `dist/` folder, found through the import map (Deno's node_modules or its npm cache). Undefined
 * outside Deno (a page, a bundle): there the binaries are wherever they are served, and the caller
 * names that folder with tfjs-backend-wasm's `setWasmPaths` before the backend's first use.
 */
function wasmFolder(): string | undefined {
  if (typeof Deno === "undefined") return undefined;
  const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
  const candidates = [
    new URL("./", entry), // …/tfjs-backend-wasm/dist/tf-backend-wasm.node.js → dist/
    new URL("../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url),
  ];
  for (const folder of candidates) {
    if (folder.protocol !== "file:") continue;
    try {
      Deno.statSync(new URL("tfjs-backend-wasm-simd.wasm", folder));
      return decodeURIComponent(folder.pathname);
    } catch {
      // try the next candidate
    }
  }
  throw new Error(
    `cannot find tfjs-backend-wasm-simd.wasm (looked in ${candidates.join(", ")})`,
  );
}

async function initialise(name: TfjsBackendName): Promise<Availability> {
  try {
    const folder = name === "wasm" ? wasmFolder() : undefined;
    if (folder) tfWasm.setWasmPaths(folder);
    if (name === "webgpu") {
      // Ask first, so that a missing adapter gets its own reason rather than tfjs's warning.
      const gpu = (navigator as { gpu?: GPU }).gpu;
      if (!gpu) return { available: false, reason: "navigator.gpu is missing (no WebGPU)" };
      const adapter = await gpu.requestAdapter();
      if (!adapter) {
        return { available: false, reason: "navigator.gpu.requestAdapter() found no adapter" };
      }
    }
    if (!(await tf.setBackend(name))) {
      return { available: false, reason: `tf.setBackend("${name}") failed to initialise it` };
    }
    await tf.ready();
    if (name === "cpu") {
      // The cpu backend's first write advises installing tfjs-node (it thinks Deno is Node.js):
      // noise in every test and bench log. Make that first write here, with warnings muted.
      const warn = console.warn;
      console.warn = () => {};
      try {
        tf.dispose(tf.scalar(0));
      } finally {
        console.warn = warn;
      }
    }
    return { available: true };
  } catch (error) {
    return { available: false, reason: `tfjs ${name}: ${errorText(error)}` };
  }
}

/**
 * Makes `name` the active tfjs backend, initialising it on first use, and says whether it can run
 * (with the reason when it cannot, e.g. no WebGPU adapter). tfjs has one global engine: call this
 * before creating tensors for a backend and again before using them after another backend ran.
 * Switching to an initialised backend is cheap.
 *
 * @example
 * ```ts ignore
 * const availability = await useTfjsBackend("wasm");
 * if (availability.available) tf.square(tf.scalar(3)).print();
 * ```
 *
 * @param name "cpu", "wasm" or "webgpu".
 * @returns Whether the backend is now active, and why not.
 */
export async function useTfjsBackend(name: TfjsBackendName): Promise<Availability> {
  let availability = initialised.get(name);
  if (!availability) {
    availability = initialise(name);
    initialised.set(name, availability);
  }
  const result = await availability;
  if (result.available && tf.getBackend() !== name) {
    if (!(await tf.setBackend(name))) {
      return { available: false, reason: `tf.setBackend("${name}") failed on a switch` };
    }
  }
  return result;
}

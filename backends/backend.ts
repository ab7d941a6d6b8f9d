/**
 * The backend interface: a backend computes any head a {@linkcode HeadSpec} describes, forward and
 * backward, on its own hardware and precision. It knows nothing about individual losses, and a loss
 * knows nothing about backends.
 *
 * @module
 */
import type { HeadInput, HeadSpec, Reduction } from "../mod.ts";

/** Where a backend runs. */
export type BackendKind = "CPU" | "WASM" | "WebGPU";

/** Whether a backend can run here, and why not. */
export type Availability = { available: true } | { available: false; reason: string };

/** What a backend returns: the reduced loss, per-sample losses and the gradients, row-major. */
export interface BackendResult {
  loss: number;
  losses: Float32Array | Float64Array;
  gradFeatures: Float32Array | Float64Array;
  gradWeights: Float32Array | Float64Array;
  gradBias?: Float32Array | Float64Array;
}

/**
 * A head whose inputs are already where the backend wants them (uploaded, sessions built): `run`
 * is exactly what a user waits for, forward and backward with the results read back.
 */
export interface PreparedHead {
  run(): Promise<BackendResult>;
  dispose(): void | Promise<void>;
}

/** One engine that computes heads. */
export interface Backend {
  /** Unique name, e.g. "tfjs-wasm". */
  name: string;
  kind: BackendKind;
  /** The precision of its arithmetic. */
  precision: "float32" | "float64";
  /** Loads what the backend needs (once) and says whether it can run. */
  availability(): Promise<Availability>;
  /** Whether this backend computes that head; a reason when it does not. */
  supports?(head: HeadSpec): true | string;
  /** Moves the inputs in and builds what a run needs; setup stays out of `run`. */
  prepare(head: HeadSpec, input: HeadInput, reduction: Reduction): Promise<PreparedHead>;
}

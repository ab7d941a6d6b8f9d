/**
 * The engine contract: what every engine (the float64 reference, engine-wasm, engine-webgpu) and
 * every peer adapter (TensorFlow.js, onnxruntime) implements, and what {@linkcode prepareHead}, the
 * bench, the parity matrix and the tests read. An engine knows nothing about individual losses: it
 * compiles a {@linkcode HeadSpec}.
 *
 * @module
 */
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import type { Matrix } from "../losses/matrix.ts";
import type { HeadResult, Reduction } from "../losses/types.ts";

/** Where an engine runs. */
export type EngineKind = "CPU" | "WASM" | "WebGPU";

/**
 * Whether an engine can run here, and why not; where it can, optionally one line on how (e.g.
 * engine-wasm's threads: worker threads of which kind, or the calling thread alone).
 */
export type Availability =
  | { available: true; detail?: string }
  | { available: false; reason: string };

/** The sizes a head is prepared for: N samples of D features, C classes. */
export interface HeadShape {
  /** N, rows of the features (the batch size). */
  samples: number;
  /** D, columns of the features and of the weights. */
  dims: number;
  /** C, rows of the weights. */
  classes: number;
}

/**
 * What every engine returns: a {@linkcode HeadResult} in the engine's precision `T`, with the N×C
 * logits only when the run asked for them.
 */
export type EngineResult<T extends Float32Array | Float64Array = Float32Array | Float64Array> =
  & Omit<HeadResult<T>, "logits">
  & {
    logits?: Matrix<T>;
    /** A successor head with state (AdaFace's `{ mean, std }`): the state after this step. */
    state?: Record<string, number>;
    /** An ElasticFace head: the margins as applied (after the "+" ordering). */
    margins?: Float64Array;
  };

/**
 * A run's input after validation, as engines receive it: the sizes, the caller's own matrices (to
 * be read only, and only before the run's first `await`), labels as integers and the bias.
 */
export interface RunInput {
  /** N, samples. */
  N: number;
  /** D, dims. */
  D: number;
  /** C, classes. */
  C: number;
  /** Features, N×D row-major. */
  x: Float64Array | Float32Array;
  /** Weights, C×D row-major. */
  w: Float64Array | Float32Array;
  /** N labels in [0, C). */
  labels: Int32Array;
  /** The bias, C values, for a linear head that has one. */
  bias?: Float64Array;
}

/**
 * What a forward-only run ({@linkcode EngineHead.forward}) returns: the loss and the per-sample
 * losses, no gradients (AdaCos's first run, engines/adacos.ts).
 */
export type ForwardResult = Pick<HeadResult, "loss" | "losses">;

/** Options of one run of a prepared head. */
export interface RunOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /** Also return the N×C logits (an extra N×C pass and read-back). @default {false} */
  logits?: boolean;
  /**
   * An earlier result of this head that the caller gives back: the run writes its gradients (and
   * its bias gradient and logits, where `into` has them at the same size) into that result's
   * arrays and returns them, instead of new arrays. A new C×D gradient costs its first touch,
   * page by page (about 0.7 s for 200 MB on our machines, more than a run at that size without
   * it); a training loop writes `result = await head.run(batch, { into: result })`. The arrays
   * must share no memory with the input or with a run of this head still in flight.
   */
  into?: EngineResult;
  /**
   * A successor head with state: this run's state instead of the prepared head's (CurricularFace's
   * `{ t }`, AdaFace's `{ mean, std }`, AdaCos's `{ scale }`), so that a training loop passes each
   * run's `result.state` to the next without preparing again. Checked as the loss's builder checks
   * `options.state`. @default {the prepared head's state}
   */
  state?: Readonly<Record<string, number>>;
  /**
   * An ElasticFace head: this run's per-sample margins (one per sample) instead of the prepared
   * head's, as a training loop draws new ones every step (`elasticFaceMargins`).
   * @default {the prepared head's margins}
   */
  margins?: ArrayLike<number>;
}

/** The arrays a run writes into: checked, of the engine's precision and the run's sizes. */
export interface RunTargets {
  /** C×D. */
  gradWeights: Float32Array | Float64Array;
  /** N×D. */
  gradFeatures: Float32Array | Float64Array;
  /** C, where `into` has a bias gradient of that size. */
  gradBias?: Float32Array | Float64Array;
  /** N × the head's classes, where `into` has logits of that size. */
  logits?: Float32Array | Float64Array;
}

/** A run's settings after validation, as engines receive them. */
export interface RunSettings {
  /** How per-sample losses are combined. */
  reduction: Reduction;
  /** Whether to return the N×C logits. */
  logits: boolean;
  /**
   * A head of scale radius only: this run's scale s instead of the prepared head's, everything else
   * as prepared (AdaCos recomputes s every batch: engines/adacos.ts). Never set by `prepareOn`;
   * engine-wasm, engine-native and engine-webgpu honour it (the scale is per-run data in each).
   */
  scale?: number;
  /**
   * This run's input holds the values of the head's last call (AdaCos's second run, at a new
   * scale: engines/adacos.ts): where that call was `forward` on the same arrays, an engine may
   * reuse what it kept from that pass (engine-wasm: W's norms and the cosines; engine-webgpu: the
   * uploaded inputs and the cosines, so it skips the forward passes; engine-native: W's norms and
   * the products, rescaled to the run's scale) instead of computing it again. Never set by
   * `prepareOn`.
   */
  sameInput?: boolean;
  /**
   * `options.into`'s arrays, checked: the engine may write gradWeights (C×D, of its precision)
   * there directly; `prepareOn` copies whatever else into place.
   */
  into?: RunTargets;
  /**
   * This run's successor head where `RunOptions.state` or `margins` gave new numbers: the prepared
   * head's loss and options with only its state or margins changed (checked by `prepareOn`), so
   * the prepared structure (kernels, clamp, tiles) still fits. Engines read a run's head as
   * `settings.head ?? head`.
   */
  head?: SuccessorHeadSpec;
}

/**
 * What an engine's `prepare` returns: the expensive state (workers, memory, GPU pipelines and
 * buffers) for one head and shape. `run` receives validated input whose arrays may be the caller's
 * own: it must read everything it needs from them before its first `await`, since the caller may
 * reuse them as soon as `run` returns its promise.
 */
export interface EngineHead<T extends Float32Array | Float64Array = Float32Array | Float64Array> {
  /**
   * Forward and backward on new features, weights, labels (and bias); results are new arrays, or
   * ∂W in `settings.into.gradWeights` where given (engines that write it in place: `writesInto`).
   */
  run(input: RunInput, settings: RunSettings): Promise<EngineResult<T>>;
  /**
   * The forward pass alone (no backward, no gradient products), where the engine has one: the
   * loss and per-sample losses that `run` would return (bit for bit where the engine's runs are
   * deterministic), nothing else; `settings.logits` is ignored. The same input rules as `run`.
   * Used inside the engines only: engines/adacos.ts calls it for AdaCos's first run (and `run`
   * where it is absent); `prepareOn` never exposes it.
   */
  forward?(input: RunInput, settings: RunSettings): Promise<ForwardResult>;
  /** Releases everything `prepare` took; idempotent. */
  dispose(): void | Promise<void>;
  /** Worker threads in use, where the engine has threads. */
  threads?: number;
}

/** Options every engine understands; engines may take more of their own. */
export interface EngineOptions {
  /** Worker threads, for engines with threads (`"wasm"`). @default {the logical cores} */
  threads?: number;
}

/** One engine: ours (in the registry that {@linkcode prepareHead} reads) or a peer's adapter. */
export interface Engine<
  T extends Float32Array | Float64Array = Float32Array | Float64Array,
  O extends EngineOptions = EngineOptions,
> {
  /** Unique name, e.g. `"wasm"` or `"tfjs-webgpu"`. */
  name: string;
  /** Where it runs. */
  kind: EngineKind;
  /** The precision of its arithmetic. */
  precision: T extends Float64Array ? "float64" : "float32";
  /** Whether it takes the `threads` option. */
  threaded: boolean;
  /**
   * Whether its `run` refuses non-finite features and weights itself, naming the argument and the
   * index, while it reads them anyway; {@linkcode prepareOn} then skips its own pass over them.
   */
  checksValues: boolean;
  /**
   * Whether its `run` writes `settings.into.gradWeights` in place (ours do); for an engine that
   * does not, `prepareOn` copies its new arrays into `options.into`'s.
   */
  writesInto?: boolean;
  /** Loads what the engine needs (once) and says whether it can run here. */
  availability(): Promise<Availability>;
  /** Whether it computes that (valid) head; a reason when it does not. */
  supports(head: HeadSpec): true | string;
  /** Builds what runs of one head and shape need; the head and shape are already validated. */
  prepare(head: HeadSpec, shape: HeadShape, options: O): Promise<EngineHead<T>>;
  /**
   * Whether it computes that (valid) successor head (the per-sample kinds of
   * losses/successor_targets.ts, AdaCos through engines/adacos.ts, sub-center ArcFace where its
   * kernels reduce the sub-centers); a reason naming the hook when it does not. Absent: it computes
   * none.
   */
  supportsSuccessor?(head: SuccessorHeadSpec): true | string;
  /** {@linkcode Engine.prepare} for a successor head it supports (checked, with its shape). */
  prepareSuccessor?(head: SuccessorHeadSpec, shape: HeadShape, options: O): Promise<EngineHead<T>>;
}

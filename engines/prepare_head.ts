import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import type { HeadInput } from "../losses/types.ts";
import {
  booleanOption,
  type CheckedHeadView,
  optionsObject,
  reductionOption,
  viewHeadInput,
} from "../losses/checks.ts";
import type {
  Engine,
  EngineHead,
  EngineOptions,
  EngineResult,
  HeadShape,
  RunOptions,
  RunSettings,
} from "./engine.ts";
import { ENGINE_NAMES, type EngineName, ENGINES } from "./registry.ts";
import { checkHeadSpec } from "../losses/checks.ts";
import { checkSuccessorHead } from "../losses/successor_head.ts";
import { checkInto, placeInto } from "./_into.ts";
import { runSuccessorHead } from "./_run_head.ts";

/** A head prepared on one engine: run it on new inputs as often as needed, then dispose of it. */
export interface PreparedHead<T extends Float32Array | Float64Array = Float32Array | Float64Array>
  extends Disposable, AsyncDisposable {
  /** The engine's name. */
  readonly engine: string;
  /** The head it computes. */
  readonly head: HeadSpec | SuccessorHeadSpec;
  /** The sizes every run's input must have. */
  readonly shape: Readonly<HeadShape>;
  /** Worker threads in use, for engines with threads. */
  readonly threads?: number;
  /**
   * Forward and backward on new features, weights, labels (and bias, for a linear head). The
   * arrays are read before the returned promise is created, so the caller may reuse them at once;
   * results are new arrays, or `options.into`'s. Runs of one prepared head queue one after another.
   * A successor head's state (`options.state`) and ElasticFace's margins (`options.margins`) may
   * change from run to run; nothing else of the head may.
   */
  run(input: HeadInput, options?: RunOptions): Promise<EngineResult<T>>;
  /** Releases the engine's workers, memory or GPU buffers; a later `run` is an error. */
  dispose(): Promise<void>;
}

/** Checks `shape`: three positive integers. */
function checkShape(where: string, shape: HeadShape): HeadShape {
  if (shape === null || typeof shape !== "object") {
    throw new TypeError(`${where}: shape must be an object {samples, dims, classes}`);
  }
  for (const key of Object.keys(shape)) {
    if (!["samples", "dims", "classes"].includes(key)) {
      throw new TypeError(
        `${where}: shape has an unknown key "${key}"; it takes samples, dims, classes`,
      );
    }
  }
  for (const name of ["samples", "dims", "classes"] as const) {
    const value = shape[name];
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`${where}: shape.${name} must be a positive integer, got ${value}`);
    }
  }
  return { samples: shape.samples, dims: shape.dims, classes: shape.classes };
}

/** Checks a run's input against the prepared head; `checksValues`: the engine checks the values. */
function checkRunInput(
  where: string,
  input: HeadInput,
  { head, shape, checksValues }: {
    head: HeadSpec | SuccessorHeadSpec;
    shape: HeadShape;
    checksValues: boolean;
  },
): CheckedHeadView {
  const view = viewHeadInput(where, input, {
    classes: "weights",
    allowBias: head.logits === "linear",
    values: !checksValues,
  });
  const want = `${shape.samples}×${shape.dims} features and ${shape.classes}×${shape.dims} weights`;
  if (view.N !== shape.samples || view.D !== shape.dims || view.C !== shape.classes) {
    throw new RangeError(
      `${where}: this head was prepared for ${want}, got ${view.N}×${view.D} and ` +
        `${view.C}×${view.D}; prepare another head for other sizes`,
    );
  }
  return view;
}

/** A private copy of a view, for a run that must wait for the one before it. */
function snapshot(view: CheckedHeadView): CheckedHeadView {
  return { ...view, x: view.x.slice(), w: view.w.slice(), labels: view.labels.slice() };
}

/** A run's options as engines receive them; `head`: the prepared head (its successor copy). */
function runSettings(
  where: string,
  options: RunOptions | undefined,
  { head, samples }: { head: HeadSpec | SuccessorHeadSpec; samples: number },
): RunSettings {
  const o = optionsObject(where, options, ["reduction", "logits", "into", "state", "margins"]);
  const settings: RunSettings = {
    reduction: reductionOption(where, o.reduction),
    logits: booleanOption(where, "logits", o.logits, false),
  };
  const own = runSuccessorHead(where, head, o, samples);
  if (own) settings.head = own;
  return settings;
}

/**
 * Prepares `head` for `shape` on `engine`: the shared wrapper behind {@linkcode prepareHead}, the
 * bench, the parity matrix and the adapters. Validates the head, the shape and, on every run, the
 * input and the run options.
 */
export async function prepareOn<
  T extends Float32Array | Float64Array,
  O extends EngineOptions,
>(
  engine: Engine<T, O>,
  head: HeadSpec | SuccessorHeadSpec,
  shape: HeadShape,
  options: O,
): Promise<PreparedHead<T>> {
  const { checkedShape, hooked } = checkPrepare(engine as Engine, head, shape, options);
  const inner: EngineHead<T> = hooked
    ? await engine.prepareSuccessor!(hooked, checkedShape, options)
    : await engine.prepare(head as HeadSpec, checkedShape, options);
  let disposed = false;
  let busy: Promise<unknown> | undefined;
  const runWhere = `${engine.name} run`;
  const pending = new Set<ArrayBufferView>(); // `into` arrays of the runs not finished
  // The logits' columns: sub-center ArcFace's W has K rows per class.
  const classes = checkedShape.classes /
    (hooked?.successor.kind === "subCenter" ? hooked.successor.subCenters : 1);

  async function run(input: HeadInput, options?: RunOptions): Promise<EngineResult<T>> {
    if (disposed) throw new Error(`${runWhere}: the head was disposed`);
    const settings = runSettings(runWhere, options, {
      head: hooked ?? head,
      samples: checkedShape.samples,
    });
    let view = checkRunInput(runWhere, input, {
      head,
      shape: checkedShape,
      checksValues: engine.checksValues,
    });
    const into = checkInto(runWhere, options?.into, {
      shape: checkedShape,
      classes,
      precision: engine.precision,
      input,
      pending,
    });
    if (busy) view = snapshot(view);
    const waitFor = busy;
    const targets = into ? Object.values(into) as ArrayBufferView[] : [];
    for (const array of targets) pending.add(array);
    const task = (async () => {
      try {
        if (waitFor) await waitFor.catch(() => {});
        if (disposed) throw new Error(`${runWhere}: the head was disposed`);
        if (!into) return await inner.run(view, settings);
        return placeInto(await inner.run(view, { ...settings, into }), into);
      } finally {
        for (const array of targets) pending.delete(array);
      }
    })();
    const current = task.catch(() => {}).finally(() => {
      if (busy === current) busy = undefined;
    });
    busy = current;
    return await task;
  }

  async function dispose(): Promise<void> {
    if (disposed) return;
    disposed = true;
    await inner.dispose();
  }

  return {
    engine: engine.name,
    head,
    shape: Object.freeze(checkedShape),
    threads: inner.threads,
    run,
    dispose,
    [Symbol.dispose]: () => void dispose().catch(() => {}),
    [Symbol.asyncDispose]: dispose,
  };
}

/**
 * What `prepareOn` checks before the engine prepares: the head (a successor head checked and
 * copied: its margins and state cannot change under the runs), the shape, whether the engine
 * computes the head, and the options the engine takes.
 */
function checkPrepare(
  engine: Engine,
  head: HeadSpec | SuccessorHeadSpec,
  shape: HeadShape,
  options: EngineOptions,
): { checkedShape: HeadShape; hooked?: SuccessorHeadSpec } {
  const where = `prepareHead (${engine.name})`;
  const successor = head !== null && typeof head === "object" && "successor" in head;
  if (!successor) checkHeadSpec(where, head);
  const checkedShape = checkShape(where, shape);
  const hooked = successor ? checkEngineSuccessor(where, head, checkedShape.samples) : undefined;
  const supported = hooked ? supportsSuccessor(engine, hooked) : engine.supports(head as HeadSpec);
  if (supported !== true) throw new RangeError(`${where}: ${supported}`);
  if (options.threads !== undefined && !engine.threaded) {
    throw new TypeError(
      `${where}: options.threads is not an option of ${engine.name}, which has no threads`,
    );
  }
  return { checkedShape, hooked };
}

/**
 * Checks a successor head that an engine is asked to compute and returns a fresh copy: checked by
 * its loss page's builder (`checkSuccessorHead`), with ElasticFace's margins one per sample of the
 * shape. Whether the engine computes its hook is the engine's answer (`supportsSuccessor`).
 */
function checkEngineSuccessor(where: string, head: unknown, samples: number): SuccessorHeadSpec {
  const checked = checkSuccessorHead(where, head);
  const { successor } = checked;
  if (successor.kind === "elastic" && successor.margins.length !== samples) {
    throw new RangeError(
      `${where}: head.successor.margins must hold one margin per sample (shape.samples = ` +
        `${samples}), got ${successor.margins.length}`,
    );
  }
  return checked;
}

/** Whether `engine` computes a checked successor head, or why not (naming the hook). */
function supportsSuccessor(engine: Engine, head: SuccessorHeadSpec): true | string {
  const kind = JSON.stringify(head.successor.kind);
  const supported = engine.supportsSuccessor?.(head);
  if (typeof supported === "string") return supported;
  if (!engine.prepareSuccessor) {
    return `head.successor (${kind}) is a successor hook that ${engine.name} does not compute; ` +
      `the reference engine computes every successor`;
  }
  return true;
}

/** Options of {@linkcode prepareHead}. */
export interface PrepareHeadOptions extends EngineOptions {
  /** The engine that computes the head. @default {"reference"} */
  engine?: EngineName;
  /** engine-native only: the path or name of a CBLAS library. @default {the system's OpenBLAS} */
  library?: string;
}

/** The option keys of {@linkcode PrepareHeadOptions}. */
export const PREPARE_OPTIONS = ["engine", "threads", "library"] as const;

/**
 * Prepares a head on one engine: the engine's expensive state (worker threads and their shared
 * memory, GPU pipelines and buffers) is built once, and each `run` computes the loss, per-sample
 * losses and gradients for new features AND weights, as a training loop needs. Release it with
 * `dispose()` (or `using` / `await using`): in Deno and browsers its threads are Web Workers, which
 * keep a Deno process alive until the head is disposed.
 *
 * Engines: `"reference"` (float64, exact, on the calling thread), `"wasm"` (float32 WebAssembly
 * SIMD on worker threads; the fast CPU engine), `"webgpu"` (float32 WGSL where a WebGPU adapter
 * exists) and `"native"` (the machine's BLAS through Deno's FFI, with a WebAssembly epilogue). The
 * float32 engines agree with the reference to the error the README states.
 *
 * @example ArcFace on the WebAssembly engine, run twice with new inputs, the second run writing
 * into the first one's arrays (`into`: no new C×D gradient each step)
 * ```ts
 * import { arcFaceHead, type EngineResult, matrix, prepareHead } from "../mod.ts";
 * import assert from "node:assert";
 *
 * await using head = await prepareHead(arcFaceHead(), { samples: 2, dims: 3, classes: 4 }, {
 *   engine: "wasm",
 *   threads: 1,
 * });
 * let result: EngineResult | undefined;
 * for (const shift of [0, 0.5]) {
 *   const last = result?.gradWeights.data;
 *   result = await head.run({
 *     features: matrix(2, 3, [1, shift, 0, 0, 1, shift]),
 *     weights: matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
 *     labels: [0, 1],
 *   }, { into: result });
 *   assert.ok(Number.isFinite(result.loss));
 *   assert.equal(result.gradWeights.rows, 4);
 *   if (last) assert.strictEqual(result.gradWeights.data, last);
 * }
 * ```
 *
 * @param head What to compute, e.g. `arcFaceHead({ scale: 64, margin: 0.5 })`; validated here.
 * @param shape The sizes of every run's input: N samples, D dims, C classes.
 * @param options The engine and, for `"wasm"`, its thread count.
 * @returns The prepared head.
 */
export async function prepareHead(
  head: HeadSpec | SuccessorHeadSpec,
  shape: HeadShape,
  options?: PrepareHeadOptions,
): Promise<PreparedHead> {
  const { engine, ...rest } = optionsObject("prepareHead", options, PREPARE_OPTIONS);
  return await prepareOn(engineNamed("prepareHead", engine), head, shape, rest);
}

/** The engine of {@linkcode ENGINES} named `name` (the reference when undefined), or a clear error. */
export function engineNamed(where: string, name: unknown): Engine {
  if (name === undefined) return ENGINES.reference;
  if (!ENGINE_NAMES.includes(name as EngineName)) {
    throw new RangeError(
      `${where}: options.engine must be one of ${ENGINE_NAMES.map((e) => `"${e}"`).join(", ")}` +
        `, got ${JSON.stringify(name)}`,
    );
  }
  return ENGINES[name as EngineName] as Engine;
}

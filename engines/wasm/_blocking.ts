// Synchronous runs of engine-wasm, for callers that cannot await (tf.customGrad's forward function,
// train/tfjs_loss.ts). Two ways, both on the head's one shared memory:
// - "blocking": the head's worker threads run the kernels as for an asynchronous run while the
//   calling thread waits in Atomics.wait on the head's third control word, which each thread bumps
//   when it is done (_thread.ts). Deno's and Node's main threads and every worker may block.
// - "calling-thread": the calling thread instantiates the kernels itself and runs them alone, as
//   one thread. A browser's main thread may not block (Atomics.wait throws there): this is its way.
import type { HeadSpec, SuccessorHeadSpec } from "../../losses/head_spec.ts";
import type { HeadInput } from "../../losses/types.ts";
import { checkSuccessorHead, isSuccessorHead } from "../../losses/successor_head.ts";
import {
  checkSubCenters,
  type HostHeadSpec,
  hostSuccessorSupport,
  kernelClamp,
  kernelHardNegatives,
  kernelHead,
  kernelSubCenters,
} from "../host/samples.ts";
import {
  type CheckedHeadView,
  checkHeadSpec,
  checkLabels,
  viewHeadInput,
} from "../../losses/checks.ts";
import type { EngineResult, HeadShape, RunTargets } from "../engine.ts";
import { CONTROL, PARAMS, type WasmLayout, wasmLayout } from "./_layout.ts";
import { attachHeadSync, type HeadThreads, type KernelBuild, kernelsModule } from "./_runtime.ts";
import { runThread, type ThreadHead } from "./_thread.ts";
import { checkScale, finishLosses, finishRun, headMemory, layOutRun, writeSlots } from "./_run.ts";
import type { Reduction } from "../../losses/types.ts";
import { adaCosBaseHead, runAdaCosSync } from "../adacos.ts";

const RUN = "wasm runSync";
/** The longest a blocked caller waits for the threads before it gives up. */
const WAIT_LIMIT_MS = 600_000;

/** How a synchronous head runs: see {@linkcode SyncWasmHead.mode}. */
export type SyncMode = "blocking" | "calling-thread";

/** Options of {@linkcode SyncWasmHead.runSync}. */
export interface SyncRunOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /**
   * A C×D array the caller gives up, sharing no memory with the input: ∂W is written there (and
   * returned as `gradWeights`) instead of into a new array, whose first touch costs more than
   * the run at large C (see `RunOptions.into` of a prepared head).
   */
  gradWeightsInto?: Float32Array;
}

/** A head of engine-wasm whose runs return their result synchronously. */
export interface SyncWasmHead {
  /** The sizes every run's input must have. */
  readonly shape: Readonly<HeadShape>;
  /** Threads that compute a run. */
  readonly threads: number;
  /**
   * `"blocking"`: the worker threads compute and the calling thread waits for them (Atomics.wait);
   * `"calling-thread"`: the calling thread computes alone.
   */
  readonly mode: SyncMode;
  /**
   * Forward and backward on new features, weights and labels, synchronously. `head` may change
   * from run to run (a λ schedule, another loss, a successor head's state or ElasticFace's margins
   * of this step): its numbers are read at every run. A successor head must be of a kind the
   * engine computes (`wasmEngine.supportsSuccessor`); its state and margins come back in the result.
   */
  runSync(
    head: HostHeadSpec,
    input: HeadInput,
    options?: SyncRunOptions,
  ): EngineResult<Float32Array>;
  /** Releases the threads and the memory; idempotent. */
  dispose(): void;
}

/** `options.gradWeightsInto` of a run, checked: C×D float32 sharing no memory with the input. */
function gradWeightsInto(
  array: Float32Array | undefined,
  layout: { C: number; D: number },
  input: HeadInput,
): Pick<RunTargets, "gradWeights"> | undefined {
  if (array === undefined) return undefined;
  if (!(array instanceof Float32Array) || array.length !== layout.C * layout.D) {
    throw new TypeError(
      `${RUN}: options.gradWeightsInto must be a Float32Array of C×D = ${layout.C * layout.D}`,
    );
  }
  for (
    const [name, data] of [["features", input.features?.data], ["weights", input.weights?.data]]
  ) {
    if (ArrayBuffer.isView(data) && data.buffer === array.buffer) {
      throw new RangeError(`${RUN}: options.gradWeightsInto shares memory with input.${name}`);
    }
  }
  return { gradWeights: array };
}

/** Whether this thread may block in Atomics.wait (a browser's main thread may not). */
export function canBlock(): boolean {
  if (typeof SharedArrayBuffer === "undefined") return false;
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

/** The settings of a synchronous head, already checked by engine.ts. */
export interface SyncSettings {
  threads: number;
  tile: number;
  kernels?: KernelBuild;
  mode?: SyncMode;
}

/** Waits until `count` threads have counted themselves done in `control[2]`. */
function waitForThreads(control: Int32Array, count: number): void {
  const deadline = performance.now() + WAIT_LIMIT_MS;
  for (;;) {
    const done = Atomics.load(control, 2);
    if (done >= count) return;
    Atomics.wait(control, 2, done, 1000);
    if (performance.now() > deadline) {
      throw new Error(`${RUN}: the worker threads did not finish in ${WAIT_LIMIT_MS / 1000} s`);
    }
  }
}

/** The calling thread's own instance of the kernels, as thread 0 of 1. */
function callingThread(module: WebAssembly.Module, memory: WebAssembly.Memory): ThreadHead {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return {
    kernels: instance.exports as unknown as ThreadHead["kernels"],
    control: new Int32Array(memory.buffer, CONTROL, 3),
    tid: 0,
    threads: 1,
  };
}

/** Compiled kernels that synchronous preparation can use at once, by build. */
const compiled = new Map<KernelBuild | "default", WebAssembly.Module>();

/**
 * The kernels, synchronously: compiled before by {@linkcode prepareBlocking}, or compiled here from
 * the file read synchronously (Deno); elsewhere an error that says to prepare asynchronously first.
 */
function kernelsNow(where: string, build?: KernelBuild): WebAssembly.Module {
  const known = compiled.get(build ?? "default");
  if (known) return known;
  const read = (globalThis as { Deno?: { readFileSync?(url: URL): Uint8Array } }).Deno
    ?.readFileSync;
  for (const name of build ? [build] : ["relaxed", "simd"] as const) {
    const url = new URL(
      `./build/${name === "relaxed" ? "kernels_relaxed" : "kernels"}.wasm`,
      import.meta.url,
    );
    if (!read || url.protocol !== "file:") break;
    const bytes = read(url) as Uint8Array<ArrayBuffer>;
    if (!WebAssembly.validate(bytes)) continue;
    const module = new WebAssembly.Module(bytes);
    compiled.set(build ?? "default", module);
    return module;
  }
  throw new Error(
    `${where}: the kernels cannot be compiled synchronously here; prepare the head with ` +
      "prepareSyncWasmHead (asynchronous) first",
  );
}

/**
 * Prepares a synchronous head asynchronously: compiles the kernels and waits for the worker
 * threads to instantiate them (the head and the settings are checked by the caller).
 */
export async function prepareBlocking(
  where: string,
  head: HostHeadSpec,
  shape: HeadShape,
  settings: SyncSettings,
): Promise<SyncWasmHead> {
  compiled.set(settings.kernels ?? "default", await kernelsModule(where, settings.kernels));
  const prepared = prepareNow(where, head, shape, settings);
  await prepared.attached;
  return prepared.head;
}

/**
 * Prepares a synchronous head at once: the worker threads instantiate the kernels while its first
 * run is on its way to them. Where the kernels cannot be compiled synchronously (a browser that has
 * not prepared a head asynchronously before), throws.
 */
export function prepareNow(
  where: string,
  head: HostHeadSpec,
  shape: HeadShape,
  settings: SyncSettings,
): { head: SyncWasmHead; attached: Promise<void> } {
  const mode = settings.mode ??
    (settings.threads > 1 && canBlock() ? "blocking" : "calling-thread");
  if (mode === "blocking" && !canBlock()) {
    throw new Error(`${where}: this thread may not block (Atomics.wait); use "calling-thread"`);
  }
  const threads = mode === "blocking" ? settings.threads : 1;
  // Laid out for the head's kernel view (a sub-center tile, the hard-negative thresholds): a run
  // of another structure lays out again within this memory and these threads.
  const first = kernelView(where, head, shape.classes), sizes = { tile: settings.tile, threads };
  const initial = wasmLayout(where, first.base, shape, { ...sizes, ...first.kernel });
  const memory = headMemory(initial);
  writeSlots(first.base, initial, memory);
  const module = kernelsNow(where, settings.kernels);
  let pool: HeadThreads | undefined, thread: ThreadHead | undefined;
  let attached = Promise.resolve();
  if (mode === "blocking") {
    ({ head: pool, attached } = attachHeadSync(where, module, memory, CONTROL, initial.threads));
  } else thread = callingThread(module, memory);
  const state = { shape, sizes, initial, memory, pool, thread };
  return { head: new SyncHead(mode, structureOf(first.base, first.kernel), state), attached };
}

/** What a synchronous head runs on: its memory, its threads (or the calling thread), its layout. */
interface SyncState {
  shape: HeadShape;
  sizes: { tile: number; threads: number };
  /** The layout it was prepared with: a run of another structure lays out within its memory. */
  initial: WasmLayout;
  memory?: WebAssembly.Memory;
  pool?: HeadThreads;
  thread?: ThreadHead;
}

/** A prepared synchronous head of engine-wasm ({@linkcode SyncWasmHead}). */
class SyncHead implements SyncWasmHead {
  readonly shape: Readonly<HeadShape>;
  readonly threads: number;
  #layout: WasmLayout;

  constructor(readonly mode: SyncMode, private structure: string, private state: SyncState) {
    this.shape = Object.freeze({ ...state.shape });
    this.#layout = state.initial;
    this.threads = state.initial.threads;
  }

  runSync(head: HostHeadSpec, input: HeadInput, options: SyncRunOptions = {}) {
    if (!this.state.memory) throw new Error(`${RUN}: the head was disposed`);
    // A successor head runs the kernels as its kernel head (scale s, no margin); its targets,
    // state and margins are the host's, from the head of this run.
    const checked = checkSyncHead(RUN, head);
    const run = (spec: HostHeadSpec, reuseCosines: boolean) => {
      const { next, view, samples, reduction, memory, into } = this.#pass(spec, input, options, {
        reuseCosines,
      });
      const bias = view.bias !== undefined;
      return finishRun(next, this.#layout, memory, samples, {
        reduction,
        logits: false,
        bias,
        into,
      });
    };
    if (!isAdaCos(checked)) return run(checked, false);
    // AdaCos: its scale-only head, the losses alone at the old scale, then the run at the new one
    // on that pass's cosines (engines/adacos.ts).
    const classes = this.shape.classes;
    const view = checkedView(adaCosBaseHead(RUN, checked, classes), this.#layout, input);
    return runAdaCosSync(RUN, checked, view, {
      first: (base) => {
        const { samples, reduction, memory } = this.#pass(base, input, options, {
          forwardOnly: true,
        });
        return finishLosses(this.#layout, memory, samples, reduction);
      },
      run,
    });
  }

  /**
   * One pass of the kernels on a checked head, laid out for it: a full run, one on the cosines of
   * the pass just before (`reuseCosines`: the same input and head structure), or the losses alone.
   */
  #pass(
    checked: HostHeadSpec,
    input: HeadInput,
    options: SyncRunOptions,
    passes: { forwardOnly?: boolean; reuseCosines?: boolean },
  ) {
    const { memory, shape, sizes, initial, thread, pool } = this.state;
    if (!memory) throw new Error(`${RUN}: the head was disposed`);
    const { base: next, kernel } = kernelView(RUN, checked, shape.classes);
    const view = checkedView(next, this.#layout, input);
    if (structureOf(next, kernel) !== this.structure) {
      // The kernels read the head's structure (linear or angular, radius kind, the non-targets'
      // step, the sub-centers) from the slots.
      this.#layout = relayout(next, kernel, shape, sizes, initial);
      writeSlots(next, this.#layout, memory);
      this.structure = structureOf(next, kernel);
    }
    const reduction = options.reduction ?? "mean";
    const into = gradWeightsInto(options.gradWeightsInto, this.#layout, input);
    const samples = layOutRun(checked, this.#layout, memory, view, reduction, passes);
    if (thread) runThread(thread, PARAMS);
    else {
      const control = new Int32Array(memory.buffer, CONTROL, 3);
      Atomics.store(control, 2, 0);
      pool!.post(PARAMS);
      waitForThreads(control, this.#layout.threads);
    }
    return { next, view, samples, reduction, memory, into };
  }

  dispose(): void {
    this.state.memory = undefined;
    this.state.thread = undefined;
    this.state.pool?.detach();
  }
}

/**
 * The layout of a run whose head's structure differs from the last run's, within the memory and
 * the threads of the layout the head was prepared with (`prepared`).
 */
function relayout(
  head: HeadSpec,
  kernel: ReturnType<typeof kernelView>["kernel"],
  shape: HeadShape,
  options: { tile: number; threads: number },
  prepared: WasmLayout,
): WasmLayout {
  const layout = wasmLayout(RUN, head, shape, { ...options, ...kernel });
  if (layout.pages > prepared.pages || layout.threads !== prepared.threads) {
    // Past the memory the threads would fault, and the caller would wait for them in vain.
    throw new RangeError(
      `${RUN}: head "${head.name}" (${structureOf(head, kernel)}) needs another layout than ` +
        `this head was prepared for; prepare a head for it`,
    );
  }
  return layout;
}

/**
 * A synchronous head's head (a run's, or the one it is prepared with), checked: a successor head
 * by its loss page's ranges and by engine-wasm's test of its kind (the one
 * `wasmEngine.supportsSuccessor` runs).
 */
export function checkSyncHead(where: string, head: HostHeadSpec): HostHeadSpec {
  if (!isSuccessorHead(head)) return checkHeadSpec(where, head);
  const checked = checkSuccessorHead(where, head);
  const supported = hostSuccessorSupport("engine-wasm", checked);
  if (supported !== true) throw new RangeError(`${where}: ${supported}`);
  return checked;
}

function isAdaCos(head: HostHeadSpec): head is SuccessorHeadSpec {
  return isSuccessorHead(head) && head.successor.kind === "adaCos";
}

/**
 * What the kernels compute of a head (checked) on `rows` rows of W: the head itself, a successor
 * head's scale-s head without margin (AdaCos's at the scale before the batch), and the kernels'
 * options (AdaFace's clamp, sub-center ArcFace's K, CurricularFace's hard negatives).
 */
function kernelView(where: string, head: HostHeadSpec, rows: number) {
  const base = isAdaCos(head) ? adaCosBaseHead(where, head, rows) : kernelHead(head);
  checkScale(where, base);
  checkSubCenters(where, head, rows);
  const kernel = {
    clamp: kernelClamp(head),
    subCenters: kernelSubCenters(head),
    hard: kernelHardNegatives(head),
  };
  return { base, kernel };
}

/**
 * What of a head the kernels' slots hold: linear or angular, the radius kind, the clamp, the
 * sub-centers, the hard negatives.
 */
function structureOf(
  head: HeadSpec,
  kernel: { clamp?: readonly [number, number]; subCenters?: number; hard?: boolean },
): string {
  const { clamp, subCenters, hard } = kernel;
  return (head.logits === "angular" ? `angular ${head.radius.kind}` : "linear") +
    (clamp ? ` clamp ${clamp[0]} ${clamp[1]}` : "") +
    (subCenters ? ` subCenters ${subCenters}` : "") + (hard ? " hard" : "");
}

/**
 * The run's input, checked. Float32 matrices of the right sizes skip viewHeadInput's scan for
 * non-finite values: the engine refuses those itself (the features and the target rows on the
 * host, any other row of W in the kernels), naming the argument and the index.
 */
function checkedView(head: HeadSpec, layout: WasmLayout, input: HeadInput): CheckedHeadView {
  const { N, D, C } = layout, x = input?.features, w = input?.weights;
  const plain = input !== null && typeof input === "object" &&
    Object.keys(input).every((key) => key === "features" || key === "weights" || key === "labels");
  if (
    plain && x?.data instanceof Float32Array && w?.data instanceof Float32Array &&
    x.rows === N && x.cols === D && x.data.length === N * D &&
    w.rows === C && w.cols === D && w.data.length === C * D
  ) {
    return { N, D, C, x: x.data, w: w.data, labels: checkLabels(RUN, input.labels, { N, C }) };
  }
  const view = viewHeadInput(RUN, input, {
    classes: "weights",
    allowBias: head.logits === "linear",
  });
  if (view.N !== N || view.D !== D || view.C !== C) {
    throw new RangeError(
      `${RUN}: this head was prepared for ${N}×${D} features and ${C}×${D} weights, got ` +
        `${view.N}×${view.D} and ${view.C}×${view.D}; prepare another`,
    );
  }
  return view;
}

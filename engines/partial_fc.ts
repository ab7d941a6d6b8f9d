/**
 * Partial FC on any engine: each step samples the class set ({@linkcode partialFcClasses}),
 * gathers those rows of the weights (and bias), remaps the labels, and runs the head on a
 * {@linkcode PreparedHead} of the sub-shape, kept from step to step. No kernel knows about it.
 *
 * @module
 */
import type { HeadInput, Reduction } from "../losses/types.ts";
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import {
  checkClassSet,
  gatherPartialFc,
  partialFc,
  partialFcClasses,
  type PartialFcSpec,
} from "../losses/partial_fc.ts";
import { checkHeadSpec, checkLabels, optionsObject } from "../losses/checks.ts";
import { checkSuccessorHead, isSuccessorHead } from "../losses/successor_head.ts";
import { adaCosOldScale } from "../losses/adacos_scale.ts";
import type { EngineResult, HeadShape } from "./engine.ts";
import { inputShape } from "./_input_shape.ts";
import {
  engineNamed,
  PREPARE_OPTIONS,
  type PreparedHead,
  type PrepareHeadOptions,
  prepareOn,
} from "./prepare_head.ts";

/** Options of one step of a {@linkcode PreparedPartialFc}. */
export interface PartialFcRunOptions {
  /** The training step, which seeds this step's sample with the view's seed. @default {0} */
  step?: number;
  /**
   * The class set to use instead of sampling one: ascending, distinct, in [0, C), holding every
   * label (e.g. a set drawn elsewhere, or a fixture's).
   */
  classes?: ArrayLike<number>;
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
  /** Also return the N×|classes| logits of the sub-head. @default {false} */
  logits?: boolean;
  /**
   * A successor head with state: this step's (`RunOptions.state` of the sub-head), e.g. the last
   * step's `result.state`. @default {the view's head's state}
   */
  state?: Readonly<Record<string, number>>;
  /** ElasticFace: this step's per-sample margins. @default {the view's head's margins} */
  margins?: ArrayLike<number>;
  /**
   * An earlier step's result that the caller gives back: this step writes its gradients into its
   * arrays (`RunOptions.into` of a prepared head) where this step's class count is the same, and
   * into new arrays where it is not (a step whose positives outnumber ⌊rate·C⌋).
   */
  into?: PartialFcResult;
}

/**
 * One step of Partial FC: the head's result on the sampled classes, with the class set and the
 * remapped labels (and a successor head's `state` after the step). `gradWeights` has one row per
 * sampled class (row k is class `classes[k]`; K rows per class for sub-center ArcFace, row k·K + j
 * for its sub-center j); every other row of W has a zero gradient and is not returned. `gradBias`, for a linear head with a
 * bias, likewise has one entry per sampled class.
 */
export type PartialFcResult<T extends Float32Array | Float64Array = Float32Array | Float64Array> =
  & EngineResult<T>
  & {
    /** The sampled class indices, ascending: row k of `gradWeights` belongs to class `classes[k]`. */
    classes: Int32Array;
    /** The labels remapped into the class set: `classes[labels[i]]` is the i-th original label. */
    labels: Int32Array;
  };

/** A {@linkcode PartialFcSpec} prepared on one engine for one full shape (N, D, C). */
export interface PreparedPartialFc extends Disposable, AsyncDisposable {
  /** The engine's name. */
  readonly engine: string;
  /** The view it computes. */
  readonly spec: PartialFcSpec;
  /** The full sizes every step's input must have: C is the rows of the full weights. */
  readonly shape: Readonly<HeadShape>;
  /**
   * One step: samples the class set (or takes `options.classes`), gathers, runs the head on the
   * sub-shape. Reads the caller's arrays before the returned promise is created; never writes them.
   */
  run(input: HeadInput, options?: PartialFcRunOptions): Promise<PartialFcResult>;
  /** Releases every prepared sub-head; a later `run` is an error. */
  dispose(): Promise<void>;
}

const RUN_OPTIONS = [
  "step",
  "classes",
  "reduction",
  "logits",
  "into",
  "state",
  "margins",
] as const;

/**
 * The gathered sub-head weights, kept from step to step: a new |classes|×D array per step (200 MB
 * at C = 10⁶, rate 0.1) would cost its first touch, page by page. A step holds the stage from its
 * gather until its sub-head's run is called (which reads its input at once); a step gathered
 * meanwhile gets a new array.
 */
class GatherStage {
  #array?: Float32Array | Float64Array;
  #holder?: object;

  gather(where: string, input: HeadInput, classes: Int32Array, subCenters: number) {
    const holds = this.#holder === undefined ? {} : undefined;
    const sub = gatherPartialFc(where, "options.classes", input, classes, {
      weightsInto: holds && this.#array,
      subCenters,
    });
    if (holds) {
      this.#array = sub.weights.data as Float32Array | Float64Array; // kept, or its successor
      this.#holder = holds;
    }
    const release = () => {
      if (holds && this.#holder === holds) this.#holder = undefined;
    };
    return { sub, release };
  }
}

/** How many sub-shapes (class counts) stay prepared: the usual one and the last other one. */
const KEPT_SHAPES = 2;

interface SubHead {
  head: Promise<PreparedHead>;
  last: Promise<unknown>;
}

/** The prepared sub-heads by class count, the {@linkcode KEPT_SHAPES} used last. */
class SubHeads {
  readonly #subs = new Map<number, SubHead>();
  constructor(readonly prepare: (classes: number) => Promise<PreparedHead>) {}

  get(classes: number): SubHead {
    const subs = this.#subs;
    let sub = subs.get(classes);
    if (sub) {
      subs.delete(classes); // re-inserted: the map's order is the order of use
    } else {
      const head = this.prepare(classes);
      sub = { head, last: head };
    }
    subs.set(classes, sub);
    for (const [size, old] of subs) {
      if (subs.size <= KEPT_SHAPES) break;
      subs.delete(size);
      old.last.catch(() => {}).finally(() => old.head.then((h) => h.dispose()).catch(() => {}));
    }
    return sub;
  }

  /** Disposes of every sub-head once its last run has settled. */
  async dispose(): Promise<void> {
    const all = [...this.#subs.values()];
    this.#subs.clear();
    await Promise.all(all.map(async (s) => {
      await s.last.catch(() => {});
      await (await s.head.catch(() => undefined))?.dispose();
    }));
  }
}

function checkFullShape(where: string, shape: HeadShape): HeadShape {
  if (shape === null || typeof shape !== "object") {
    throw new TypeError(`${where}: shape must be an object {samples, dims, classes}`);
  }
  for (const name of ["samples", "dims", "classes"] as const) {
    if (!Number.isInteger(shape[name]) || shape[name] < 1) {
      throw new RangeError(
        `${where}: shape.${name} must be a positive integer, got ${shape[name]}`,
      );
    }
  }
  return { samples: shape.samples, dims: shape.dims, classes: shape.classes };
}

function checkInputShape(where: string, input: HeadInput, shape: HeadShape): void {
  const n = input?.features?.rows, d = input?.features?.cols;
  const c = input?.weights?.rows, dw = input?.weights?.cols;
  if (n !== shape.samples || d !== shape.dims || c !== shape.classes || dw !== shape.dims) {
    throw new RangeError(
      `${where}: this view was prepared for ${shape.samples}×${shape.dims} features and ` +
        `${shape.classes}×${shape.dims} weights, got ${n}×${d} and ${c}×${dw}; ` +
        `prepare another for other sizes`,
    );
  }
}

/**
 * Prepares a Partial FC view on one engine, for full inputs of `shape` (N samples, D dims, C
 * classes). Each `run` is one training step: the class set is every label of the batch plus a
 * seeded uniform sample of the others, max(P, ⌊rate·C⌋) classes ({@linkcode partialFcClasses}, with
 * the view's seed and `options.step`); those rows of W (and of the bias) are gathered, the labels
 * remapped, and the head runs on a {@linkcode PreparedHead} of the sub-shape N×D, |classes|×D on
 * the chosen engine. Where N ≤ ⌊rate·C⌋ (the usual case: a large C), every step has the same
 * sub-shape, and one prepared sub-head (workers, memory, GPU pipelines) serves every step; it is
 * prepared here. Otherwise a step with more positives than ⌊rate·C⌋ keeps only the positives, and
 * the sub-heads of the last two class counts stay prepared.
 *
 * The result is optax-style, nothing hidden: the loss, per-sample losses, ∂loss/∂features, and
 * ∂loss/∂W for the sampled rows only (row k for class `classes[k]`), the bias gradient likewise,
 * the class set and the remapped labels. Apply the update to those rows of W yourself. A successor
 * head (see {@linkcode partialFc}) returns its `state` after the step: pass it to the next step as
 * `options.state` (and ElasticFace's new margins as `options.margins`), nothing is prepared again.
 *
 * @example CosFace through Partial FC on the WebAssembly engine, two steps
 * ```ts
 * import { cosFaceHead, matrix, partialFc, preparePartialFc } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const C = 1000, D = 4;
 * const weights = matrix(C, D, Array.from({ length: C * D }, (_, k) => Math.sin(k)));
 * const features = matrix(2, D, [1, 0, 0, 0, 0, 1, 0, 0]);
 * const view = partialFc(cosFaceHead(), { rate: 0.05, seed: 3 });
 * await using pfc = await preparePartialFc(view, { samples: 2, dims: D, classes: C }, {
 *   engine: "wasm",
 *   threads: 1,
 * });
 * for (const step of [0, 1]) {
 *   const r = await pfc.run({ features, weights, labels: [17, 900] }, { step });
 *   assert.equal(r.classes.length, 50); // ⌊0.05·1000⌋, labels 17 and 900 among them
 *   assert.equal(r.gradWeights.rows, 50); // one row per sampled class
 *   assert.equal(r.classes[r.labels[1]], 900);
 * }
 * ```
 *
 * @param spec The view: `partialFc(head, { rate, seed })`.
 * @param shape The full sizes: N samples, D dims, C classes (rows of the full weights: C·K for
 * sub-center ArcFace's K sub-centers per class).
 * @param options The engine (`"reference"` by default) and its options, as {@linkcode prepareHead}.
 * @returns The prepared view.
 */
export async function preparePartialFc(
  spec: PartialFcSpec,
  shape: HeadShape,
  options?: PrepareHeadOptions,
): Promise<PreparedPartialFc> {
  const where = "preparePartialFc";
  checkSpec(where, spec);
  const full = checkFullShape(where, shape);
  const { head, K } = viewHead(where, spec.head, full.classes);
  const C = full.classes / K; // the classes the sampler draws from
  const { engine: name, ...rest } = optionsObject(where, options, PREPARE_OPTIONS);
  const engine = engineNamed(where, name);
  const subs = new SubHeads((classes) =>
    prepareOn(engine, head, { ...full, classes: classes * K }, rest)
  );
  let disposed = false;
  const subHead = (classes: number) => subs.get(classes);
  const stable = Math.floor(spec.rate * C);
  if (stable >= Math.min(full.samples, C)) await subHead(stable).head;
  const runWhere = `partialFc run (${engine.name})`;
  const stage = new GatherStage();

  function run(input: HeadInput, runOptions?: PartialFcRunOptions): Promise<PartialFcResult> {
    if (disposed) return Promise.reject(new Error(`${runWhere}: the view was disposed`));
    try {
      checkInputShape(runWhere, input, full);
      const o = optionsObject(runWhere, runOptions, RUN_OPTIONS);
      const classes = classSet(runWhere, input, { N: full.samples, C }, spec, o);
      const { sub, release } = stage.gather(runWhere, input, classes, K);
      const entry = subHead(classes.length);
      const features = { ...sub.features, data: sub.features.data.slice() };
      const into = o.into?.gradWeights?.rows === sub.weights.rows ? o.into : undefined;
      const { reduction, logits, state, margins } = o;
      const task = entry.head.then((h) => {
        try {
          return h.run({ ...sub, features }, { reduction, logits, into, state, margins });
        } finally {
          release(); // the sub-head has read the stage
        }
      });
      task.catch(release); // a sub-head that failed to prepare
      entry.last = task.catch(() => {});
      return task.then((r) => ({ ...r, classes, labels: sub.labels }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async function dispose(): Promise<void> {
    if (disposed) return;
    disposed = true;
    await subs.dispose();
  }

  return {
    engine: engine.name,
    spec,
    shape: Object.freeze(full),
    run,
    dispose,
    [Symbol.dispose]: () => void dispose().catch(() => {}),
    [Symbol.asyncDispose]: dispose,
  };
}

function checkSpec(where: string, spec: PartialFcSpec): void {
  if (spec === null || typeof spec !== "object" || !("rate" in spec) || !("head" in spec)) {
    throw new TypeError(`${where}: spec must be a Partial FC view, partialFc(head, {rate, seed})`);
  }
  if (isSuccessorHead(spec.head)) checkSuccessorHead(where, spec.head);
  else checkHeadSpec(where, spec.head);
  partialFc(spec.head, { rate: spec.rate, seed: spec.seed }); // a hand-built view: rate and seed
}

/**
 * The head the sub-heads compute and the weights' rows per class (sub-center ArcFace's K, else 1),
 * for `rows` rows of full weights: AdaCos without a state starts from √2·ln(C − 1) of the full C
 * classes, not of a sub-head's.
 */
function viewHead(
  where: string,
  head: HeadSpec | SuccessorHeadSpec,
  rows: number,
): { head: HeadSpec | SuccessorHeadSpec; K: number } {
  if (!isSuccessorHead(head)) return { head, K: 1 };
  const hook = head.successor;
  const K = hook.kind === "subCenter" ? hook.subCenters : 1;
  if (rows % K !== 0) {
    throw new RangeError(
      `${where}: shape.classes (the weights' rows) must be a multiple of subCenters (${K}), ` +
        `got ${rows}`,
    );
  }
  if (hook.kind !== "adaCos" || hook.scale !== null) return { head, K };
  const scale = adaCosOldScale(where, null, rows);
  return { head: { ...head, successor: { ...hook, scale } }, K };
}

/** The step's class set among C classes: the caller's (checked) or the view's sample. */
function classSet(
  where: string,
  input: HeadInput,
  { N, C }: { N: number; C: number },
  spec: PartialFcSpec,
  o: PartialFcRunOptions,
): Int32Array {
  if (o.classes !== undefined) {
    if (o.step !== undefined) {
      throw new TypeError(`${where}: give options.classes or options.step, not both`);
    }
    const labels = checkLabels(where, input.labels, { N, C });
    return checkClassSet(where, "options.classes", o.classes, { C, labels });
  }
  const step = o.step ?? 0;
  if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) {
    throw new RangeError(`${where}: options.step must be an integer in [0, 2³²), got ${o.step}`);
  }
  return partialFcClasses(input.labels, C, { rate: spec.rate, seed: spec.seed, step });
}

/** Options of {@linkcode partialFcLoss}. */
export interface PartialFcLossOptions extends PrepareHeadOptions, PartialFcRunOptions {}

/**
 * One step of Partial FC, once: {@linkcode preparePartialFc}, one run, dispose. For a training
 * loop keep the prepared view instead (preparing starts workers or builds GPU pipelines). On the
 * default `"reference"` engine the result is float64 and equals the head's reference loss on the
 * gathered sub-head ({@linkcode partialFcInput}) exactly.
 *
 * @example ArcFace through Partial FC on the float64 reference, a given class set
 * ```ts
 * import { arcFaceHead, matrix, partialFc, partialFcLoss } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 3, [1, 0.2, 0, 0, 1, 0.3]),
 *   weights: matrix(5, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, -1, 0, 1]),
 *   labels: [0, 3],
 * };
 * const view = partialFc(arcFaceHead(), { rate: 0.6, seed: 0 });
 * const r = await partialFcLoss(input, view, { classes: [0, 2, 3] });
 * assert.deepEqual(Array.from(r.labels), [0, 2]);
 * assert.equal(r.gradWeights.rows, 3);
 * ```
 *
 * @param input Features (N×D), the full weights (C×D), labels (N) and, for a linear head, a bias.
 * @param spec The view: `partialFc(head, { rate, seed })`.
 * @param options The engine and its options, the step (or an explicit class set), the reduction.
 * @returns The step's result with the class set and the remapped labels.
 */
export async function partialFcLoss(
  input: HeadInput,
  spec: PartialFcSpec,
  options?: PartialFcLossOptions,
): Promise<PartialFcResult> {
  const where = "partialFcLoss";
  const { step, classes, reduction, logits, state, margins, ...prepare } = optionsObject(
    where,
    options,
    [...PREPARE_OPTIONS, "step", "classes", "reduction", "logits", "state", "margins"],
  );
  const shape = inputShape(where, input);
  await using view = await preparePartialFc(spec, shape, prepare);
  return await view.run(input, { step, classes, reduction, logits, state, margins });
}

/**
 * Partial FC (An et al., "Partial FC: Training 10 Million Identities on a Single Machine", ICCV-W
 * 2021, and "Killing Two Birds with One Stone: Efficient and Robust Training of Face Recognition
 * CNNs by Partial FC", CVPR 2022), after insightface's recognition/arcface_torch/partial_fc_v2.py:
 * not a loss but a view of a head. Each step keeps every positive class of the batch (the labels)
 * and a seeded uniform sample of the negative classes, up to max(P, ⌊rate·C⌋) classes in all (P:
 * the distinct labels); the head runs on those rows of W only, with the labels remapped into the
 * sampled set, and only those rows get a gradient.
 *
 * This module is the pure part: the description ({@linkcode partialFc}), the seeded sampler
 * ({@linkcode partialFcClasses}) and the gather ({@linkcode partialFcInput}). Running the view on an
 * engine is engines/partial_fc.ts (`preparePartialFc`, `partialFcLoss`).
 *
 * @module
 */
import type { HeadSpec, SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput } from "./types.ts";
import type { Matrix } from "./matrix.ts";
import { checkHeadSpec } from "./_head_spec_check.ts";
import { checkLabels, describe, optionsObject } from "./_validate.ts";
import { isSeed, xoshiro128 } from "./_seeded_random.ts";
import { checkSuccessorHead, isSuccessorHead } from "./successor_head.ts";

/** Options of {@linkcode partialFc}. */
export interface PartialFcOptions {
  /** The sample rate r, in (0, 1]: each step keeps max(P, ⌊r·C⌋) classes. */
  rate: number;
  /** The sampler's seed, an integer in [0, 2³²). */
  seed: number;
}

/** A head viewed through Partial FC: {@linkcode partialFc}'s validated, frozen description. */
export interface PartialFcSpec {
  /** The head every step computes on the sampled classes (a successor head's checked copy). */
  readonly head: HeadSpec | SuccessorHeadSpec;
  /** The sample rate r, in (0, 1]. */
  readonly rate: number;
  /** The sampler's seed, an integer in [0, 2³²). */
  readonly seed: number;
}

/** Options of {@linkcode partialFcClasses}. */
export interface PartialFcSampleOptions extends PartialFcOptions {
  /** The training step: each step draws its own sample. An integer in [0, 2³²). @default {0} */
  step?: number;
}

/** Checks the sample rate: a number in (0, 1]. */
function rateOption(where: string, rate: unknown): number {
  if (typeof rate !== "number" || !(rate > 0 && rate <= 1)) {
    throw new RangeError(
      `${where}: options.rate must be a number in (0, 1], got ${describe(rate)}`,
    );
  }
  return rate;
}

function seedOption(where: string, name: string, seed: unknown, fallback?: number): number {
  if (seed === undefined && fallback !== undefined) return fallback;
  if (!isSeed(seed)) {
    throw new RangeError(
      `${where}: options.${name} must be an integer in [0, 2³²), got ${describe(seed)}`,
    );
  }
  return seed;
}

/**
 * Views `head` through Partial FC: the description that `preparePartialFc` and `partialFcLoss`
 * (engines/partial_fc.ts) run on any engine. Each step keeps every class of the batch's labels
 * and a seeded uniform sample of the other classes, max(P, ⌊rate·C⌋) classes in all (see
 * {@linkcode partialFcClasses}), and computes `head` on those rows of the weights only.
 *
 * @example ArcFace through Partial FC at rate 0.1
 * ```ts
 * import { arcFaceHead, partialFc } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const view = partialFc(arcFaceHead(), { rate: 0.1, seed: 7 });
 * assert.equal(view.head.name, "arcFace");
 * assert.ok(Object.isFrozen(view));
 * ```
 *
 * Any head may be viewed so, the successors included: their batch statistics (AdaFace's norms,
 * CurricularFace's t, AdaCos's B and median) come from the sub-head, as they would from
 * partial_fc_v2.py's sampled logits; sub-center ArcFace samples classes and keeps all K rows of
 * each (its weights hold C·K rows); AdaCos's initial scale √2·ln(C − 1) counts the full C classes.
 *
 * @param head Any head: a {@linkcode HeadSpec} (`arcFaceHead()`, `cosFaceHead()`, …) or a successor
 * head (`curricularFaceHead()`, `subCenterArcFaceHead()`, …); validated.
 * @param options The sample rate in (0, 1] and the seed, an integer in [0, 2³²).
 * @returns The frozen description `{ head, rate, seed }`.
 */
export function partialFc(
  head: HeadSpec | SuccessorHeadSpec,
  options: PartialFcOptions,
): PartialFcSpec {
  const where = "partialFc";
  if (isSuccessorHead(head)) head = checkSuccessorHead(where, head);
  else checkHeadSpec(where, head);
  if (options === undefined) {
    throw new TypeError(`${where}: options {rate, seed} are required`);
  }
  const o = optionsObject(where, options, ["rate", "seed"]);
  return Object.freeze({
    head,
    rate: rateOption(where, o.rate),
    seed: seedOption(where, "seed", o.seed),
  });
}

/**
 * How many classes a step of Partial FC keeps: max(`positives`, ⌊rate·C⌋), as partial_fc_v2.py's
 * `num_sample = int(sample_rate * num_local)` and its "positives only" branch where they exceed it.
 *
 * @example A million classes at rate 0.1 with 128 distinct labels
 * ```ts
 * import { partialFcSize } from "../mod.ts";
 * import assert from "node:assert";
 *
 * assert.equal(partialFcSize(1_000_000, 0.1, 128), 100_000);
 * assert.equal(partialFcSize(50, 0.1, 16), 16); // more positives than ⌊r·C⌋ = 5
 * ```
 *
 * @param classes C, the rows of the full weights.
 * @param rate The sample rate, in (0, 1].
 * @param positives P, the number of distinct labels of the batch.
 * @returns The size of the sampled class set.
 */
export function partialFcSize(classes: number, rate: number, positives: number): number {
  const where = "partialFcSize";
  if (!Number.isInteger(classes) || classes < 1) {
    throw new RangeError(`${where}: classes must be a positive integer, got ${describe(classes)}`);
  }
  if (!Number.isInteger(positives) || positives < 0 || positives > classes) {
    throw new RangeError(
      `${where}: positives must be an integer in [0, classes], got ${describe(positives)}`,
    );
  }
  return Math.max(positives, Math.floor(rateOption(where, rate) * classes));
}

/**
 * The 32-bit seed of one step's stream: fmix32(seed ⊕ step·0x9E3779B9 mod 2³²), MurmurHash3's
 * finaliser. For a fixed seed, distinct steps give distinct streams, and for a fixed step, distinct
 * seeds (the multiplier is odd and fmix32 a bijection).
 */
function stepSeed(seed: number, step: number): number {
  let z = (seed ^ Math.imul(step, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The distinct labels, ascending. */
function positivesOf(labels: Int32Array): Int32Array {
  const sorted = labels.slice().sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i];
  }
  return sorted.slice(0, n);
}

/**
 * The class set of one step of Partial FC: every class of `labels` (the positives, P of them) and a
 * seeded uniform sample of the other classes, max(P, ⌊rate·C⌋) classes in all, ascending. As
 * insightface's partial_fc_v2.py `sample()`: the positives are always kept; the negatives are a
 * uniform random subset (partial_fc_v2 draws a random score per class and keeps the highest; this
 * draws the same distribution of subsets, not torch's numbers); where P ≥ ⌊rate·C⌋ the set is the
 * positives alone.
 *
 * The generator, written out so that any runtime reproduces it: the stream seed is
 * fmix32(seed ⊕ step·0x9E3779B9 mod 2³²) (MurmurHash3's finaliser); from it, xoshiro128**
 * seeded by SplitMix32 (losses/_seeded_random.ts), and a uniform u in [0, 1) from two outputs a, b:
 * ((a >>> 5)·2²⁶ + (b >>> 6)) / 2⁵³. The negatives are chosen by selection sampling (Knuth's
 * Algorithm S): visiting the negative classes in increasing order, with `left` of them still to
 * visit and `need` still to choose, class j is chosen when u·left < need; one u per visited class,
 * until `need` is 0. Cost O(C) time, O(P + size) memory; the result is already sorted.
 *
 * @example Positives always in, sorted, the same set for the same seed and step
 * ```ts
 * import { partialFcClasses } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const classes = partialFcClasses([42, 7, 42], 1000, { rate: 0.01, seed: 1, step: 0 });
 * assert.equal(classes.length, 10);
 * assert.ok(classes.includes(7) && classes.includes(42));
 * assert.ok(classes.every((c, k) => k === 0 || classes[k - 1] < c));
 * assert.deepEqual(classes, partialFcClasses([42, 7, 42], 1000, { rate: 0.01, seed: 1 }));
 * ```
 *
 * @param labels The batch's N labels, integers in [0, C).
 * @param classes C, the number of classes (rows of the full weights).
 * @param options The rate in (0, 1], the seed and the step (integers in [0, 2³²)).
 * @returns The sampled class indices, ascending and distinct.
 */
export function partialFcClasses(
  labels: ArrayLike<number>,
  classes: number,
  options: PartialFcSampleOptions,
): Int32Array {
  const where = "partialFcClasses";
  if (!Number.isInteger(classes) || classes < 1) {
    throw new RangeError(`${where}: classes must be a positive integer, got ${describe(classes)}`);
  }
  if (options === undefined) throw new TypeError(`${where}: options {rate, seed} are required`);
  const o = optionsObject(where, options, ["rate", "seed", "step"]);
  const rate = rateOption(where, o.rate);
  const seed = seedOption(where, "seed", o.seed);
  const step = seedOption(where, "step", o.step, 0);
  const labelArray = checkLabels(where, labels, { N: labels?.length ?? 0, C: classes });
  if (labelArray.length === 0) throw new RangeError(`${where}: labels must not be empty`);
  const positives = positivesOf(labelArray);
  const size = Math.max(positives.length, Math.floor(rate * classes));
  if (size === positives.length) return positives;
  const next = xoshiro128(stepSeed(seed, step));
  const uniform = () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  const out = new Int32Array(size);
  let need = size - positives.length, left = classes - positives.length, n = 0, p = 0;
  for (let j = 0; j < classes && n < size; j++) {
    if (p < positives.length && positives[p] === j) {
      out[n++] = j;
      p++;
    } else if (need > 0) {
      if (uniform() * left < need) {
        out[n++] = j;
        need--;
      }
      left--;
    }
  }
  return out;
}

/** Checks a class set against C and the labels: ascending, distinct, in [0, C), every label in. */
export function checkClassSet(
  where: string,
  name: string,
  set: ArrayLike<number>,
  { C, labels }: { C: number; labels: Int32Array },
): Int32Array {
  if (set === null || typeof set !== "object" || typeof set.length !== "number") {
    throw new TypeError(`${where}: ${name} must be an Int32Array or an array of class indices`);
  }
  if (set.length === 0) throw new RangeError(`${where}: ${name} must not be empty`);
  const out = new Int32Array(set.length);
  for (let k = 0; k < set.length; k++) {
    const j = set[k];
    if (!Number.isInteger(j) || j < 0 || j >= C) {
      throw new RangeError(
        `${where}: ${name} must hold integers in [0, C) = [0, ${C}), got ${describe(j)} at ${k}`,
      );
    }
    if (k > 0 && j <= out[k - 1]) {
      throw new RangeError(
        `${where}: ${name} must be strictly increasing, got ${out[k - 1]} then ${j} at ${k}`,
      );
    }
    out[k] = j;
  }
  for (let i = 0; i < labels.length; i++) {
    if (searchSorted(out, labels[i]) < 0) {
      throw new RangeError(
        `${where}: ${name} must hold every label (the positives), but not ${labels[i]} ` +
          `(labels[${i}])`,
      );
    }
  }
  return out;
}

/** The position of `value` in the ascending `sorted`, or −1. */
function searchSorted(sorted: Int32Array, value: number): number {
  let lo = 0, hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] === value) return mid;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** The weights' rows of the classes `set`: row c·K + k for sub-center k of class c. */
function rowsOf(set: Int32Array, K: number): Int32Array {
  if (K === 1) return set;
  const rows = new Int32Array(set.length * K);
  for (let k = 0; k < set.length; k++) {
    for (let j = 0; j < K; j++) rows[k * K + j] = set[k] * K + j;
  }
  return rows;
}

/** The rows `rows` of `m` (C×D) as a new matrix of the same precision; each value must be finite. */
function gatherRows<T extends Float32Array | Float64Array>(
  where: string,
  name: string,
  data: T,
  D: number,
  rows: Int32Array,
  into?: Float32Array | Float64Array,
): T {
  const fits = into?.constructor === data.constructor && into.length === rows.length * D;
  const out =
    (fits
      ? into
      : data instanceof Float32Array
      ? new Float32Array(rows.length * D)
      : new Float64Array(rows.length * D)) as T;
  for (let k = 0; k < rows.length; k++) {
    const start = rows[k] * D;
    const row = data.subarray(start, start + D);
    for (let d = 0; d < D; d++) {
      if (!Number.isFinite(row[d])) {
        throw new RangeError(
          `${where}: ${name} must hold finite numbers, got ${row[d]} at ${start + d} ` +
            `(row ${rows[k]}, a sampled class)`,
        );
      }
    }
    out.set(row, k * D);
  }
  return out;
}

/** Options of {@linkcode partialFcInput}. */
export interface PartialFcInputOptions {
  /**
   * Sub-center ArcFace's K: the weights hold K rows per class (row c·K + k), and the sub-head
   * takes all K rows of each sampled class. @default {1}
   */
  subCenters?: number;
}

/**
 * The sub-head of one step of Partial FC: the rows `classes` of the weights (and of the bias), in
 * the weights' own precision, and the labels remapped into the class set (label y becomes the
 * position of y in `classes`, as partial_fc_v2.py's `torch.searchsorted`). With `subCenters` K,
 * the K rows of each class. The features are passed through as they are (not copied). Only the
 * gathered rows' values are checked (finite); the inputs are never written to.
 *
 * @example Two classes of four, the labels remapped
 * ```ts
 * import { matrix, partialFcInput } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const sub = partialFcInput({
 *   features: matrix(2, 2, [1, 0, 0, 1]),
 *   weights: matrix(4, 2, [1, 0, 0, 1, -1, 0, 0, -1]),
 *   labels: [3, 1],
 * }, [1, 3]);
 * assert.deepEqual(Array.from(sub.weights.data), [0, 1, 0, -1]);
 * assert.deepEqual(Array.from(sub.labels), [1, 0]);
 * ```
 *
 * @param input Features (N×D), the full weights (C×D, or C·K×D), labels (N), an optional bias (C).
 * @param classes The class set: ascending, distinct, in [0, C), holding every label.
 * @param options Sub-center ArcFace's K, where the weights hold K rows per class.
 * @returns The sub-head's input: the same features, |classes|×D weights (|classes|·K×D),
 * remapped labels, bias.
 */
export function partialFcInput(
  input: HeadInput,
  classes: ArrayLike<number>,
  options?: PartialFcInputOptions,
): HeadInput & { weights: Matrix; labels: Int32Array } {
  const where = "partialFcInput";
  const { subCenters } = optionsObject(where, options, ["subCenters"]);
  return gatherPartialFc(where, "classes", input, classes, { subCenters });
}

/** {@linkcode partialFcInput} with the caller's names, for the engines' view. */
export function gatherPartialFc(
  where: string,
  name: string,
  input: HeadInput,
  classes: ArrayLike<number>,
  options: {
    /** An array the gathered weights may be written into, where it has their type and size. */
    weightsInto?: Float32Array | Float64Array;
    /** Rows per class (sub-center ArcFace's K). @default {1} */
    subCenters?: number;
  } = {},
): HeadInput & { weights: Matrix; labels: Int32Array } {
  const K = options.subCenters ?? 1;
  if (!Number.isInteger(K) || K < 1) {
    throw new RangeError(
      `${where}: options.subCenters must be a positive integer, got ${describe(K)}`,
    );
  }
  if (input === null || typeof input !== "object") {
    throw new TypeError(`${where}: input must be an object {features, weights, labels}`);
  }
  const w = input.weights;
  if (w === null || typeof w !== "object" || !Number.isInteger(w.rows) || w.rows < 1) {
    throw new TypeError(`${where}: weights must be a Matrix {rows, cols, data}`);
  }
  if (!(w.data instanceof Float32Array || w.data instanceof Float64Array)) {
    throw new TypeError(`${where}: weights.data must be a Float64Array or Float32Array`);
  }
  if (w.data.length !== w.rows * w.cols) {
    throw new RangeError(
      `${where}: weights.data must have rows × cols = ${w.rows} × ${w.cols} elements, ` +
        `got ${w.data.length}`,
    );
  }
  const N = input.features?.rows;
  if (!Number.isInteger(N) || N < 1) {
    throw new RangeError(`${where}: features.rows must be a positive integer, got ${describe(N)}`);
  }
  if (w.rows % K !== 0) {
    throw new RangeError(
      `${where}: weights.rows must be a multiple of subCenters (${K} rows per class), got ${w.rows}`,
    );
  }
  const C = w.rows / K;
  const labels = checkLabels(where, input.labels, { N, C });
  const set = checkClassSet(where, name, classes, { C, labels });
  const sub: HeadInput & { weights: Matrix; labels: Int32Array } = {
    features: input.features,
    weights: {
      rows: set.length * K,
      cols: w.cols,
      data: gatherRows(where, "weights", w.data, w.cols, rowsOf(set, K), options.weightsInto),
    },
    labels: labels.map((y) => searchSorted(set, y)),
  };
  if (input.bias !== undefined) {
    if (input.bias === null || input.bias.length !== w.rows) {
      throw new RangeError(
        `${where}: bias must have one entry per class (C = ${w.rows}), got ${describe(input.bias)}`,
      );
    }
    const bias = Float64Array.from(input.bias);
    sub.bias = gatherRows(where, "bias", bias, 1, set);
  }
  return sub;
}

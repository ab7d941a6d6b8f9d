// Input validation for every loss: one place, one message style ("<fn>: <argument> must …, got …").
import type { Matrix } from "./matrix.ts";
import type { HeadInput, MarginGradient, Reduction } from "./types.ts";

/** Inputs converted once to float64, with their sizes. */
export interface CheckedHead {
  N: number;
  D: number;
  C: number;
  x: Float64Array;
  w: Float64Array;
  labels: Int32Array;
  bias?: Float64Array;
}

/** A short description of a bad value for an error message (never a whole array). */
export function describe(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  if (ArrayBuffer.isView(value)) {
    return `${value.constructor.name} of ${
      (value as unknown as ArrayLike<unknown>).length
    } elements`;
  }
  return typeof value;
}

/** Checks that every element is a finite number; typed arrays are only read. */
function checkFinite(where: string, name: string, data: ArrayLike<number>): void {
  for (let k = 0; k < data.length; k++) {
    const v = data[k];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(
        `${where}: ${name} must hold finite numbers, got ${describe(v)} at ${k}`,
      );
    }
  }
}

function finiteCopy(where: string, name: string, data: ArrayLike<number>): Float64Array {
  const out = new Float64Array(data.length);
  for (let k = 0; k < data.length; k++) {
    const v = data[k];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(
        `${where}: ${name} must hold finite numbers, got ${describe(v)} at ${k}`,
      );
    }
    out[k] = v;
  }
  return out;
}

/** Checks a matrix's shape and values and returns its elements as a new Float64Array. */
export function checkMatrix(where: string, name: string, m: Matrix): Float64Array {
  checkMatrixShape(where, name, m);
  return finiteCopy(where, name, m.data);
}

/**
 * Checks a matrix like {@linkcode checkMatrix} but returns the caller's typed array itself (only
 * to be read), so that engines that convert to float32 anyway skip the float64 copy.
 */
export function viewMatrix(where: string, name: string, m: Matrix): Float64Array | Float32Array {
  checkMatrixShape(where, name, m);
  if (m.data instanceof Float64Array || m.data instanceof Float32Array) {
    checkFinite(where, name, m.data);
    return m.data;
  }
  return finiteCopy(where, name, m.data);
}

function checkMatrixShape(where: string, name: string, m: Matrix): void {
  if (m === null || typeof m !== "object") {
    throw new TypeError(
      `${where}: ${name} must be a Matrix {rows, cols, data}, got ${describe(m)}`,
    );
  }
  const { rows, cols, data } = m;
  if (!Number.isInteger(rows) || rows < 1) {
    throw new RangeError(
      `${where}: ${name}.rows must be a positive integer${
        name === "features" && rows === 0 ? " (the batch is empty)" : ""
      }, got ${describe(rows)}`,
    );
  }
  if (!Number.isInteger(cols) || cols < 1) {
    throw new RangeError(
      `${where}: ${name}.cols must be a positive integer, got ${describe(cols)}`,
    );
  }
  if (data === null || typeof data !== "object" || typeof data.length !== "number") {
    throw new TypeError(`${where}: ${name}.data must be a Float64Array or Float32Array`);
  }
  if (data.length !== rows * cols) {
    throw new RangeError(
      `${where}: ${name}.data must have rows × cols = ${rows} × ${cols} = ${
        rows * cols
      } elements, got ${data.length}`,
    );
  }
}

/** Checks labels: N integers in [0, C). */
export function checkLabels(
  where: string,
  labels: ArrayLike<number>,
  size: { N: number; C: number },
): Int32Array {
  if (labels === null || typeof labels !== "object" || typeof labels.length !== "number") {
    throw new TypeError(`${where}: labels must be an Int32Array or an array of integers`);
  }
  if (labels.length !== size.N) {
    throw new RangeError(
      `${where}: labels must have one entry per row of features (N = ${size.N}), got ${labels.length}`,
    );
  }
  const out = new Int32Array(size.N);
  for (let i = 0; i < size.N; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= size.C) {
      throw new RangeError(
        `${where}: labels must be integers in [0, C) = [0, ${size.C}), got ${describe(y)} at ${i}`,
      );
    }
    out[i] = y;
  }
  return out;
}

/** {@linkcode CheckedHead} whose matrices may be the caller's own arrays, to be read only. */
export interface CheckedHeadView extends Omit<CheckedHead, "x" | "w"> {
  x: Float64Array | Float32Array;
  w: Float64Array | Float32Array;
}

/** Checks a features / class-matrix / labels triple (and the bias where one is allowed). */
export function checkHeadInput(
  where: string,
  input: Omit<HeadInput, "weights">,
  names: { classes: string; allowBias: boolean },
): CheckedHead {
  return checkHead(where, input, names, checkMatrix);
}

/** {@linkcode checkHeadInput} without copying typed-array matrices (see {@linkcode viewMatrix}). */
export function viewHeadInput(
  where: string,
  input: Omit<HeadInput, "weights">,
  names: { classes: string; allowBias: boolean; values?: boolean },
): CheckedHeadView {
  return checkHead(where, input, names, names.values === false ? viewMatrixShape : viewMatrix);
}

/**
 * {@linkcode viewMatrix} without the pass over the values of a typed array, for an engine that
 * refuses non-finite values itself while it reads them (naming the argument and the index).
 */
function viewMatrixShape(where: string, name: string, m: Matrix): Float64Array | Float32Array {
  checkMatrixShape(where, name, m);
  if (m.data instanceof Float64Array || m.data instanceof Float32Array) return m.data;
  return finiteCopy(where, name, m.data);
}

function checkHead<T extends Float64Array | Float32Array>(
  where: string,
  input: Omit<HeadInput, "weights">,
  names: { classes: string; allowBias: boolean },
  matrixOf: (where: string, name: string, m: Matrix) => T,
): Omit<CheckedHead, "x" | "w"> & { x: T; w: T } {
  if (input === null || typeof input !== "object") {
    throw new TypeError(`${where}: input must be an object {features, ${names.classes}, labels}`);
  }
  // A misspelt key ("bais", "feature") would otherwise be ignored or reported as a missing field.
  // "bias" is always a known key: where no bias is allowed, the bias check below says so.
  const known = ["features", names.classes, "labels", "bias"];
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) {
      const takes = ["features", names.classes, "labels", ...(names.allowBias ? ["bias"] : [])];
      throw new TypeError(
        `${where}: input has an unknown key "${key}"; it takes ${
          takes.map((k) => `"${k}"`).join(", ")
        }`,
      );
    }
  }
  const classes = (input as unknown as Record<string, Matrix>)[names.classes];
  const x = matrixOf(where, "features", input.features);
  const w = matrixOf(where, names.classes, classes);
  const N = input.features.rows, D = input.features.cols, C = classes.rows;
  if (classes.cols !== D) {
    throw new RangeError(
      `${where}: ${names.classes}.cols must equal features.cols (D = ${D}), got ${classes.cols}`,
    );
  }
  const labels = checkLabels(where, input.labels, { N, C });
  let bias: Float64Array | undefined;
  if (input.bias !== undefined) {
    if (!names.allowBias) {
      throw new TypeError(`${where}: bias is not used by this loss; only softmaxLoss takes one`);
    }
    if (input.bias === null || typeof input.bias.length !== "number") {
      throw new TypeError(`${where}: bias must be an array of C = ${C} numbers`);
    }
    if (input.bias.length !== C) {
      throw new RangeError(
        `${where}: bias must have one entry per class (C = ${C}), got ${input.bias.length}`,
      );
    }
    bias = finiteCopy(where, "bias", input.bias);
  }
  return { N, D, C, x, w, labels, bias };
}

/** A numeric option's valid range; bounds are inclusive unless marked open. */
export interface Range {
  min?: number;
  max?: number;
  minOpen?: boolean;
  maxOpen?: boolean;
  integer?: boolean;
  text: string;
}

/** Returns the option's value, or its default when absent, after checking its range. */
export function numberOption(
  where: string,
  name: string,
  value: unknown,
  fallback: number,
  range: Range,
): number {
  if (value === undefined) return fallback;
  const ok = typeof value === "number" && Number.isFinite(value) &&
    (!range.integer || Number.isInteger(value)) &&
    (range.min === undefined || (range.minOpen ? value > range.min : value >= range.min)) &&
    (range.max === undefined || (range.maxOpen ? value < range.max : value <= range.max));
  if (!ok) {
    throw new RangeError(`${where}: options.${name} must be ${range.text}, got ${describe(value)}`);
  }
  return value as number;
}

/** Returns a boolean option, or its default. */
export function booleanOption(where: string, name: string, value: unknown, fallback: boolean) {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`${where}: options.${name} must be true or false, got ${describe(value)}`);
  }
  return value;
}

function choice<T extends string>(
  where: string,
  name: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (value === undefined) return allowed[0];
  if (!allowed.includes(value as T)) {
    throw new RangeError(
      `${where}: options.${name} must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${
        describe(value)
      }`,
    );
  }
  return value as T;
}

const REDUCTIONS = ["mean", "sum", "none"] as const;
const MARGIN_GRADIENTS = ["exact", "detached"] as const;

/** Returns the reduction option, "mean" by default. */
export function reductionOption(where: string, value: unknown): Reduction {
  return choice(where, "reduction", value, REDUCTIONS);
}

/** Returns the marginGradient option, "exact" by default. */
export function marginGradientOption(where: string, value: unknown): MarginGradient {
  return choice(where, "marginGradient", value, MARGIN_GRADIENTS);
}

/** Checks that options is absent or an object with only known keys (a typo is an error). */
export function optionsObject<T extends object>(
  where: string,
  options: T | undefined,
  known: readonly string[],
): Partial<T> {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object") {
    throw new TypeError(`${where}: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `${where}: unknown option "${key}"; this loss takes ${
          known.map((k) => `"${k}"`).join(", ")
        }`,
      );
    }
  }
  return options;
}

/** The last guard: no NaN or Infinity leaves the library, whatever the precision it ran in. */
export function assertFiniteOutput(
  where: string,
  name: string,
  data: ArrayLike<number>,
  precision: "float32" | "float64" = "float64",
): void {
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) {
      throw new RangeError(
        `${where}: ${name} overflowed ${precision} at ${k} (inputs too large for this loss)`,
      );
    }
  }
}

/** The Euclidean norm of each row of D elements (sums in order, float64). */
export function rowNorms(a: Float64Array, D: number): Float64Array {
  const norms = new Float64Array(a.length / D);
  for (let r = 0; r < norms.length; r++) {
    let sq = 0;
    for (let k = 0; k < D; k++) sq += a[r * D + k] ** 2;
    norms[r] = Math.sqrt(sq);
  }
  return norms;
}

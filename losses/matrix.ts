import { describe } from "./_validate.ts";

/** A dense row-major matrix: element (i, j) is `data[i * cols + j]`. */
export interface Matrix<T extends Float64Array | Float32Array = Float64Array | Float32Array> {
  /** Number of rows. */
  rows: number;
  /** Number of columns. */
  cols: number;
  /** The `rows * cols` elements, row after row. */
  data: T;
}

/**
 * Makes a {@linkcode Matrix}, checking that the data has `rows * cols` elements. The data is copied
 * into a new `Float64Array` unless it already is a typed array of float32 or float64, which is kept
 * as it is (the losses never write to their inputs). Without data the matrix is all zeros.
 *
 * @example Build the 2×3 matrix [[1, 2, 3], [4, 5, 6]]
 * ```ts
 * import { matrix } from "./matrix.ts";
 * import assert from "node:assert";
 *
 * const m = matrix(2, 3, [1, 2, 3, 4, 5, 6]);
 * assert.equal(m.data[1 * m.cols + 2], 6);
 * ```
 *
 * @param rows Number of rows, a positive integer.
 * @param cols Number of columns, a positive integer.
 * @param data Row-major elements; zeros when omitted.
 * @returns The matrix.
 */
export function matrix(
  rows: number,
  cols: number,
  data?: ArrayLike<number>,
): Matrix {
  for (const [name, value] of [["rows", rows], ["cols", cols]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(
        `matrix: ${name} must be a positive integer, got ${describe(value)}` +
          (typeof value === "number" ? "" : " (the arguments are rows, cols, data)"),
      );
    }
  }
  if (data === undefined) return { rows, cols, data: new Float64Array(rows * cols) };
  if (data.length !== rows * cols) {
    throw new RangeError(
      `matrix: data must have rows × cols = ${rows} × ${cols} = ${
        rows * cols
      } elements, got ${data.length}`,
    );
  }
  const kept = data instanceof Float64Array || data instanceof Float32Array
    ? data
    : Float64Array.from(data);
  return { rows, cols, data: kept };
}

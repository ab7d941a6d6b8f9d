import { type Matrix, matrix } from "./matrix.ts";
import { checkMatrix, numberOption, optionsObject } from "./_validate.ts";

/** Options of {@linkcode updateCenters}. */
export interface UpdateCentersOptions {
  /** The center learning rate α, in [0, 1]. @default {0.5} */
  alpha?: number;
}

/**
 * The center-loss paper's update c_j ← c_j − α·Δc_j, returned as a new matrix (the centers passed
 * in are not changed). Δc comes from {@linkcode centerLoss}'s `centerDelta`.
 *
 * @example
 * ```ts
 * import { centerLoss, matrix, updateCenters } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const centers = matrix(1, 1, [0]);
 * const { centerDelta } = centerLoss({ features: matrix(1, 1, [2]), centers, labels: [0] });
 * assert.equal(updateCenters(centers, centerDelta, { alpha: 1 }).data[0], 1); // 0 − (0 − 2)/2
 * ```
 *
 * @param centers The current centers, C×D.
 * @param centerDelta Δc from centerLoss, C×D.
 * @param options The learning rate α.
 * @returns The updated centers. Never ±Infinity: a result beyond the float64 range (impossible with
 *   a Δc from centerLoss on these centers) is an error.
 */
export function updateCenters(
  centers: Matrix,
  centerDelta: Matrix,
  options?: UpdateCentersOptions,
): Matrix {
  const where = "updateCenters";
  const alpha = numberOption(
    where,
    "alpha",
    optionsObject(where, options, ["alpha"]).alpha,
    0.5,
    { min: 0, max: 1, text: "in [0, 1]" },
  );
  const c = checkMatrix(where, "centers", centers);
  const d = checkMatrix(where, "centerDelta", centerDelta);
  if (centerDelta.rows !== centers.rows || centerDelta.cols !== centers.cols) {
    throw new RangeError(
      `${where}: centerDelta must be ${centers.rows}×${centers.cols} like centers, got ${centerDelta.rows}×${centerDelta.cols}`,
    );
  }
  for (let k = 0; k < c.length; k++) {
    const updated = c[k] - alpha * d[k];
    // α·Δc never overflows (α ≤ 1), so only a result beyond ±1.8e308 does: a Δc that centerLoss
    // gives for these centers never leads there (the update is a convex combination of the center
    // and its samples), so say so rather than return ±Infinity.
    if (!Number.isFinite(updated)) {
      throw new RangeError(
        `${where}: the updated center at ${k}, centers − α·centerDelta = ${c[k]} − ${alpha} × ${
          d[k]
        }, overflows float64; a centerDelta that centerLoss returns for these centers never does`,
      );
    }
    c[k] = updated;
  }
  return matrix(centers.rows, centers.cols, c);
}

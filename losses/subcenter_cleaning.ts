import type { HeadInput } from "./types.ts";
import { checkLabels, checkMatrix, numberOption, optionsObject } from "./_validate.ts";
import { NORM_EPS } from "./_constants.ts";

/** Options of {@linkcode subCenterCleaning}. */
export interface SubCenterCleaningOptions {
  /** K, sub-centers per class (row c·K + k is sub-center k of class c). @default {3} */
  subCenters?: number;
  /** The largest angle, in radians, a kept sample makes with its class's dominant sub-center. @default {75° = 5π/12} */
  maxAngle?: number;
}

/** What {@linkcode subCenterCleaning} finds. */
export interface SubCenterCleaning {
  /** Per class, the dominant sub-center k (0…K−1), or −1 for a class without samples. */
  dominant: Int32Array;
  /** Per sample, whether it is within `maxAngle` of its class's dominant sub-center. */
  keep: boolean[];
  /** The indices of the samples not kept (pytorch-metric-learning's `outliers`), ascending. */
  outliers: number[];
}

const WHERE = "subCenterCleaning";

/**
 * The cleaning step of sub-center ArcFace (Deng et al., ECCV 2020; insightface
 * recognition/subcenter_arcface drop.py, pytorch-metric-learning SubCenterArcFaceLoss.get_outliers):
 * for each class, every sample votes for the sub-center closest to it (largest cosine); the most
 * voted one is dominant (the first on a tie, like torch.argmax), and a sample is kept when its
 * cosine with its class's dominant sub-center is at least cos(maxAngle), i.e. within 75° by default.
 *
 * @example
 * ```ts
 * import { matrix, subCenterCleaning } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const weights = matrix(2, 2, [1, 0, 0, 1]); // one class, two sub-centers
 * const features = matrix(3, 2, [1, 0.1, 1, -0.2, -1, 0.05]);
 * const { dominant, keep } = subCenterCleaning({ features, weights, labels: [0, 0, 0] }, {
 *   subCenters: 2,
 * });
 * assert.deepEqual(Array.from(dominant), [0]);
 * assert.deepEqual(keep, [true, true, false]);
 * ```
 *
 * @param input Features (N×D), weights (C·K×D) and labels in [0, C).
 * @param options K and the largest angle kept.
 * @returns The dominant sub-center per class, which samples are kept, and the outliers.
 */
export function subCenterCleaning(
  input: HeadInput,
  options?: SubCenterCleaningOptions,
): SubCenterCleaning {
  const o = optionsObject(WHERE, options, ["subCenters", "maxAngle"]);
  const K = numberOption(WHERE, "subCenters", o.subCenters, 3, {
    min: 1,
    integer: true,
    text: "an integer ≥ 1",
  });
  const maxAngle = numberOption(WHERE, "maxAngle", o.maxAngle, (75 * Math.PI) / 180, {
    min: 0,
    max: Math.PI,
    text: "an angle in radians in [0, π]",
  });
  if (input === null || typeof input !== "object") {
    throw new TypeError(`${WHERE}: input must be an object {features, weights, labels}`);
  }
  const x = checkMatrix(WHERE, "features", input.features);
  const w = checkMatrix(WHERE, "weights", input.weights);
  const N = input.features.rows, D = input.features.cols, R = input.weights.rows;
  if (input.weights.cols !== D) {
    throw new RangeError(
      `${WHERE}: weights.cols must equal features.cols (D = ${D}), got ${input.weights.cols}`,
    );
  }
  if (R % K !== 0) {
    throw new RangeError(
      `${WHERE}: weights.rows must be a multiple of options.subCenters (K = ${K}), got ${R}`,
    );
  }
  const C = R / K;
  const labels = checkLabels(WHERE, input.labels, { N, C });
  const norm = (a: Float64Array, r: number) => {
    let sq = 0;
    for (let d = 0; d < D; d++) sq += a[r * D + d] ** 2;
    return Math.max(Math.sqrt(sq), NORM_EPS);
  };
  const cosine = (i: number, r: number) => {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += x[i * D + d] * w[r * D + d];
    return dot / (norm(x, i) * norm(w, r));
  };
  const votes = new Int32Array(R);
  for (let i = 0; i < N; i++) {
    const c = labels[i];
    let best = 0;
    for (let k = 1; k < K; k++) if (cosine(i, c * K + k) > cosine(i, c * K + best)) best = k;
    votes[c * K + best]++;
  }
  const dominant = new Int32Array(C).fill(-1);
  for (let c = 0; c < C; c++) {
    let best = -1;
    for (let k = 0; k < K; k++) {
      if (votes[c * K + k] > 0 && (best < 0 || votes[c * K + k] > votes[c * K + best])) best = k;
    }
    dominant[c] = best;
  }
  const threshold = Math.cos(maxAngle);
  const keep = Array.from(
    { length: N },
    (_, i) => !(cosine(i, labels[i] * K + dominant[labels[i]]) < threshold),
  );
  const outliers = keep.flatMap((k, i) => (k ? [] : [i]));
  return { dominant, keep, outliers };
}

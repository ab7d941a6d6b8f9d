// Tolerance-aware comparison of tensors, in the spirit of torch.testing.assert_close.

/** The measured disagreement between two arrays. */
export interface Closeness {
  /** Index of the worst element. */
  worstIndex: number;
  /** Largest |actual − expected|. */
  maxAbsError: number;
  /** maxAbsError divided by the largest |expected| (or 1 when every expected value is 0). */
  relError: number;
}

/** Measures how far `actual` is from `expected`, relative to the largest expected magnitude. */
export function closeness(actual: ArrayLike<number>, expected: ArrayLike<number>): Closeness {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  }
  let scale = 0, maxAbsError = 0, worstIndex = -1;
  for (let k = 0; k < expected.length; k++) scale = Math.max(scale, Math.abs(expected[k]));
  for (let k = 0; k < expected.length; k++) {
    const a = actual[k];
    const err = Number.isFinite(a) ? Math.abs(a - expected[k]) : Infinity;
    if (err > maxAbsError || worstIndex < 0) {
      maxAbsError = err;
      worstIndex = k;
    }
  }
  return { worstIndex, maxAbsError, relError: maxAbsError / (scale || 1) };
}

/**
 * Throws when max |actual − expected| > rtol·max |expected| (+ atol), naming the worst element,
 * the absolute and the relative error. Returns the measured closeness.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: { rtol: number; atol?: number; name: string },
): Closeness {
  const c = closeness(actual, expected);
  let scale = 0;
  for (let k = 0; k < expected.length; k++) scale = Math.max(scale, Math.abs(expected[k]));
  if (!(c.maxAbsError <= options.rtol * scale + (options.atol ?? 0))) {
    const k = c.worstIndex;
    throw new Error(
      `${options.name}: not close. Worst element ${k}: actual ${actual[k]}, expected ${
        expected[k]
      }; max abs error ${c.maxAbsError.toExponential(3)}, relative to max |expected| ${
        scale.toExponential(3)
      }: ${c.relError.toExponential(3)} > rtol ${options.rtol}`,
    );
  }
  return c;
}

/**
 * AdaCos's per-batch scale (FaceX-Zoo head/AdaCos.py), in float64: the one implementation that the
 * float64 reference (losses/_successor.ts) and the float32 engines (engines/adacos.ts, which get
 * each sample's non-target sum from a first run's per-sample loss) both call.
 *
 * @module
 */

/** AdaCos clamps the target cosines to ±(1 − 1e-7) before the acos of its median. */
export const ADACOS_EPS = 1e-7;

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

/**
 * The scale before a batch: `scale` where the head gives one, else s₀ = √2·ln(C − 1), which needs
 * C ≥ 3 (it is 0 at C = 2): without a given scale a smaller C throws, naming `where`.
 */
export function adaCosOldScale(where: string, scale: number | null, classes: number): number {
  if (scale !== null) return scale;
  if (classes < 3) {
    throw new RangeError(
      `${where}: the initial scale √2·ln(C − 1) is not positive for C = ${classes} classes (it ` +
        `needs C ≥ 3); give options.state = { scale } (a finite number > 0)`,
    );
  }
  return Math.SQRT2 * Math.log(classes - 1);
}

/**
 * ln(e^v − 1) for v ≥ 0 without overflow (v + ln(1 − e^(−v)) past ln 2, where expm1 would
 * overflow for v > 709) or loss of precision near 0 (ln expm1(v)); −∞ at 0.
 */
export function logExpm1(v: number): number {
  return v > Math.LN2 ? v + Math.log1p(-Math.exp(-v)) : Math.log(Math.expm1(v));
}

/**
 * AdaCos's scale after a batch, from the old scale s, each sample's
 * `logSums[i]` = ln Σ_{j≠y_i} exp(s·c_ij) (−∞ without a non-target class) and its target cosine
 * c_iy: s_new = ln B / cos(min(π/4, θ_med)) with ln B = ln(Σ_i e^(logSums_i) / N) summed as a
 * log-sum-exp (so no exp overflows, whatever s), θ_med the median of acos(clamp(c_iy, ±(1 − 1e-7)))
 * (for an even N the lower of the two middle values, as `torch.median`). Where ln B ≤ 0 (few
 * classes, non-targets mostly negative) or s_new is not finite (C = 1: ln B = −∞), the old scale
 * is kept instead of a scale ≤ 0.
 */
export function adaCosNextScale(
  old: number,
  logSums: ArrayLike<number>,
  targetCosines: ArrayLike<number>,
): number {
  const N = logSums.length;
  let max = -Infinity;
  for (let i = 0; i < N; i++) max = Math.max(max, logSums[i]);
  let sum = 0;
  if (max > -Infinity) { for (let i = 0; i < N; i++) sum += Math.exp(logSums[i] - max); }
  const logB = max + Math.log(sum) - Math.log(N);
  const thetas = Array.from(
    { length: N },
    (_, i) => Math.acos(clamp(targetCosines[i], -1 + ADACOS_EPS, 1 - ADACOS_EPS)),
  ).sort((p, q) => p - q);
  const median = thetas[Math.floor((N - 1) / 2)]; // torch.median: the lower middle
  const next = logB / Math.cos(Math.min(Math.PI / 4, median));
  return Number.isFinite(next) && next > 0 ? next : old;
}

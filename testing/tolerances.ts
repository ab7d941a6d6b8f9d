/**
 * The parity tolerance of every backend, in one place: how far a backend's loss and gradients may be
 * from the float64 PyTorch fixtures, relative to the largest expected magnitude of each array
 * (max |actual − expected| ≤ rtol·max |expected|). The parity test and `deno task parity` read it.
 *
 * @module
 */
import type { Engine } from "../engines/engine.ts";

/** A tolerance and why it is what it is. */
export interface Tolerance {
  /** Relative to the largest expected magnitude, for the loss, the losses and each gradient. */
  rtol: number;
  /** Why this value: the precision it follows from, or what was measured. */
  reason: string;
}

/** The default per precision: float64 matches PyTorch's float64 autograd to rounding. */
export const PRECISION_TOLERANCE: Readonly<Record<Engine["precision"], Tolerance>> = {
  float64: { rtol: 1e-10, reason: "float64 arithmetic" },
  float32: { rtol: 1e-4, reason: "float32 arithmetic (ε ≈ 1.2e-7, sums over D and C)" },
};

/**
 * Measured per-backend exceptions to {@linkcode PRECISION_TOLERANCE}, by backend name. Each entry
 * must say what was measured and why the default cannot hold (e.g. a reduced-precision exp or a
 * GPU's fast-math), so a loosened tolerance is never silent.
 */
export const TOLERANCE_OVERRIDES: Readonly<Record<string, Tolerance>> = {};

/** The tolerance a backend is held to. */
export function toleranceOf(engine: Pick<Engine, "name" | "precision">): Tolerance {
  return TOLERANCE_OVERRIDES[engine.name] ?? PRECISION_TOLERANCE[engine.precision];
}

import { numberOption, optionsObject } from "./_validate.ts";

/** Options of {@linkcode lambdaSchedule}; the defaults are SphereFace-20's caffe solver. */
export interface LambdaScheduleOptions {
  /** λ at iteration 0. @default {1000} */
  base?: number;
  /** Decay rate γ. @default {0.12} */
  gamma?: number;
  /** Decay power. @default {1} */
  power?: number;
  /** The floor λ never drops below. @default {5} */
  min?: number;
}

/**
 * The λ annealing that makes L-Softmax and SphereFace converge:
 * λ = max(λ_min, base·(1 + γ·iteration)^−power), as in the SphereFace caffe solver (base 1000,
 * γ 0.12, power 1, λ_min 5). clcarwin/sphereface_pytorch's max(5, 1500/(1 + 0.1·iteration)) is
 * `{ base: 1500, gamma: 0.1 }`.
 *
 * @example
 * ```ts
 * import { lambdaSchedule } from "../mod.ts";
 * import assert from "node:assert";
 *
 * assert.equal(lambdaSchedule(0), 1000);
 * assert.equal(lambdaSchedule(1e6), 5);
 * ```
 *
 * @param iteration The training iteration, an integer ≥ 0.
 * @param options The schedule's constants.
 * @returns λ for that iteration.
 */
export function lambdaSchedule(iteration: number, options?: LambdaScheduleOptions): number {
  const where = "lambdaSchedule";
  const o = optionsObject(where, options, ["base", "gamma", "power", "min"]);
  if (!Number.isInteger(iteration) || iteration < 0) {
    throw new RangeError(`${where}: iteration must be an integer ≥ 0, got ${iteration}`);
  }
  const nonNegative = { min: 0, text: "a finite number ≥ 0" };
  const base = numberOption(where, "base", o.base, 1000, nonNegative);
  const gamma = numberOption(where, "gamma", o.gamma, 0.12, nonNegative);
  const power = numberOption(where, "power", o.power, 1, nonNegative);
  const min = numberOption(where, "min", o.min, 5, nonNegative);
  return Math.max(min, base * (1 + gamma * iteration) ** -power);
}

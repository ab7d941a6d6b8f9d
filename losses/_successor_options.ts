// Option parsing shared by the successor loss pages (state objects, EMA rates).
import { describe, type Range, reductionOption } from "./_validate.ts";
import type { Reduction } from "./types.ts";

function inRange(value: number, range: Range): boolean {
  return (range.min === undefined || (range.minOpen ? value > range.min : value >= range.min)) &&
    (range.max === undefined || (range.maxOpen ? value < range.max : value <= range.max));
}

/**
 * Reads `options.state`: absent gives `initial`; otherwise an object with exactly the given fields,
 * each a finite number in its range.
 */
export function stateOption<S extends { [K in keyof S]: number }>(
  where: string,
  value: unknown,
  initial: S,
  ranges: { [K in keyof S]: Range },
): S {
  if (value === undefined) return { ...initial };
  const fields = Object.keys(ranges);
  const shape = `{ ${fields.join(", ")} }`;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(
      `${where}: options.state must be an object ${shape}, got ${describe(value)}`,
    );
  }
  const state = value as Record<string, unknown>;
  for (const key of Object.keys(state)) {
    if (!fields.includes(key)) {
      throw new TypeError(
        `${where}: options.state has an unknown field "${key}"; the state is ${shape}`,
      );
    }
  }
  const out: Record<string, number> = {};
  for (const field of fields) {
    const v = state[field], range = (ranges as Record<string, Range>)[field];
    if (typeof v !== "number" || !Number.isFinite(v) || !inRange(v, range)) {
      throw new RangeError(
        `${where}: options.state.${field} must be ${range.text}, got ${describe(v)}`,
      );
    }
    out[field] = v;
  }
  return out as S;
}

/** The reduction of a loss whose options were already checked for unknown keys. */
export function reductionOf(
  where: string,
  options: { reduction?: unknown } | undefined,
): Reduction {
  return reductionOption(where, options?.reduction);
}

/** An EMA rate in [0, 1]: 0 keeps the state as given, 1 takes the batch's value. */
export const RATE: Range = { min: 0, max: 1, text: "a rate in [0, 1]" };

// Option parsing shared by the loss pages: each page states its defaults and ranges, nothing else.
import type { HeadSpec, Radius, TargetMargin } from "./head_spec.ts";
import type { MarginOptions } from "./types.ts";
import { marginGradientOption, numberOption, optionsObject } from "./_validate.ts";

/** Reads a scale s: finite and positive. */
export function scaleOption(where: string, value: unknown, fallback: number): number {
  return numberOption(where, "scale", value, fallback, {
    min: 0,
    minOpen: true,
    text: "a finite number > 0",
  });
}

/** Reads an additive angular margin (option `name`): radians in [0, π). */
export function angleMarginOption(
  where: string,
  name: string,
  value: unknown,
  fallback: number,
): number {
  return numberOption(where, name, value, fallback, {
    min: 0,
    max: Math.PI,
    maxOpen: true,
    text: "an angle in radians in [0, π)",
  });
}

/** Reads ψ's integer margin m. */
export function integerMarginOption(where: string, value: unknown, fallback: number): number {
  return numberOption(where, "margin", value, fallback, {
    min: 1,
    max: 16,
    integer: true,
    text: "an integer from 1 to 16",
  });
}

/** Reads the λ blend of L-Softmax and SphereFace. */
export function lambdaOption(where: string, value: unknown): number {
  return numberOption(where, "lambda", value, 0, { min: 0, text: "a finite number ≥ 0" });
}

/**
 * Checks a margin loss's options object and assembles its angular head from the parts the loss
 * chose; returns the options too, for the loss to read its own fields.
 */
export function angularHead<T extends MarginOptions>(
  name: string,
  options: T | undefined,
  known: readonly (keyof T & string)[],
  build: (o: Partial<T>, where: string) => { radius: Radius; margin: TargetMargin },
): HeadSpec {
  const where = `${name}Loss`;
  const o = optionsObject(where, options, [...known, "reduction"]);
  const { radius, margin } = build(o, where);
  return {
    name,
    logits: "angular",
    radius,
    margin,
    marginGradient: marginGradientOption(where, o.marginGradient),
  };
}

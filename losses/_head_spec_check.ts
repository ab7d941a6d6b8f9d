// The one validator of a HeadSpec: the reference, the engines and the adapters refuse the same heads
// with the same messages ("<where>: head.<field> must be …, got …").
import type { HeadSpec, Radius, TargetMargin } from "./head_spec.ts";
import type { MarginGradient } from "./types.ts";
import { describe } from "./_validate.ts";

const LOGITS = ["linear", "angular"] as const;
const RADII = ["scale", "featureNorm", "normProduct"] as const;
const MARGINS = ["none", "angular", "psi"] as const;
const FALLBACKS = ["none", "insightface", "easy"] as const;
const MARGIN_GRADIENTS = ["exact", "detached"] as const;

/** The largest ψ margin m any loss accepts (see `integerMarginOption`). */
export const MAX_PSI_MARGIN = 16;

function quoted(values: readonly string[]): string {
  return values.map((v) => `"${v}"`).join(", ");
}

function objectAt(where: string, path: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${where}: ${path} must be an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function onlyKeys(
  where: string,
  path: string,
  value: Record<string, unknown>,
  allowed: readonly string[],
  what: string,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new TypeError(
        `${where}: ${path} has an unknown field "${key}"; ${what} has ${quoted(allowed)}`,
      );
    }
  }
}

function oneOf<T extends string>(
  where: string,
  path: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (typeof value !== "string" || !allowed.includes(value as T)) {
    throw new RangeError(
      `${where}: ${path} must be one of ${quoted(allowed)}, got ${describe(value)}`,
    );
  }
  return value as T;
}

/** A finite number satisfying `ok`, or an error naming the field and `text` (its valid range). */
function numberAt(
  where: string,
  path: string,
  value: unknown,
  ok: (v: number) => boolean,
  text: string,
): number {
  if (typeof value !== "number" || !Number.isFinite(value) || !ok(value)) {
    throw new RangeError(`${where}: ${path} must be ${text}, got ${describe(value)}`);
  }
  return value;
}

function checkRadius(where: string, value: unknown): Radius {
  const radius = objectAt(where, "head.radius", value);
  const kind = oneOf(where, "head.radius.kind", radius.kind, RADII);
  switch (kind) {
    case "scale":
      onlyKeys(where, "head.radius", radius, ["kind", "scale"], 'a "scale" radius');
      return {
        kind,
        scale: numberAt(
          where,
          "head.radius.scale",
          radius.scale,
          (s) => s > 0,
          "a finite number > 0",
        ),
      };
    case "featureNorm":
    case "normProduct":
      onlyKeys(where, "head.radius", radius, ["kind"], `a "${kind}" radius`);
      return { kind };
    default: {
      const unreachable: never = kind;
      throw new Error(`unreachable radius kind ${unreachable}`);
    }
  }
}

function checkMargin(where: string, value: unknown): TargetMargin {
  const margin = objectAt(where, "head.margin", value);
  const kind = oneOf(where, "head.margin.kind", margin.kind, MARGINS);
  switch (kind) {
    case "none":
      onlyKeys(where, "head.margin", margin, ["kind"], 'a "none" margin');
      return { kind };
    case "angular":
      onlyKeys(
        where,
        "head.margin",
        margin,
        ["kind", "m1", "m2", "m3", "fallback"],
        'an "angular" margin',
      );
      return {
        kind,
        m1: numberAt(where, "head.margin.m1", margin.m1, (m) => m > 0, "a finite number > 0"),
        m2: numberAt(
          where,
          "head.margin.m2",
          margin.m2,
          (m) => m >= 0 && m < Math.PI,
          "an angle in radians in [0, π)",
        ),
        m3: numberAt(where, "head.margin.m3", margin.m3, (m) => m >= 0 && m <= 1, "in [0, 1]"),
        fallback: oneOf(where, "head.margin.fallback", margin.fallback, FALLBACKS),
      };
    case "psi":
      onlyKeys(where, "head.margin", margin, ["kind", "margin", "lambda"], 'a "psi" margin');
      return {
        kind,
        margin: numberAt(
          where,
          "head.margin.margin",
          margin.margin,
          (m) => Number.isInteger(m) && m >= 1 && m <= MAX_PSI_MARGIN,
          `an integer from 1 to ${MAX_PSI_MARGIN}`,
        ),
        lambda: numberAt(
          where,
          "head.margin.lambda",
          margin.lambda,
          (l) => l >= 0,
          "a finite number ≥ 0",
        ),
      };
    default: {
      const unreachable: never = kind;
      throw new Error(`unreachable margin kind ${unreachable}`);
    }
  }
}

/**
 * Checks a head description field by field, with the ranges the loss pages accept (scale > 0;
 * m1 > 0, m2 in [0, π), m3 in [0, 1]; ψ's m an integer from 1 to 16, λ ≥ 0), and returns a fresh
 * copy holding exactly the known fields, so that later changes to the caller's object are not seen.
 * Unknown fields are errors too: a misspelt or misplaced field would otherwise be silently ignored.
 *
 * @param where The caller's name, the first word of every message (`"arcFaceLoss"`).
 * @param head Anything claimed to be a {@linkcode HeadSpec}.
 * @returns The head, checked and copied.
 */
export function checkHeadSpec(where: string, head: unknown): HeadSpec {
  const h = objectAt(where, "head", head);
  if ("successor" in h) {
    const hook = h.successor as { kind?: unknown } | null;
    const kind = hook !== null && typeof hook === "object" ? describe(hook.kind) : describe(hook);
    throw new RangeError(
      `${where}: head.successor (${kind}) is a successor hook, and ${where} takes a head without ` +
        "one (a successor head runs through its loss page, prepareHead, headLoss or tfjsHeadLoss)",
    );
  }
  const logits = oneOf(where, "head.logits", h.logits, LOGITS);
  if (typeof h.name !== "string" || h.name === "") {
    throw new TypeError(`${where}: head.name must be a non-empty string, got ${describe(h.name)}`);
  }
  const name = h.name;
  switch (logits) {
    case "linear":
      onlyKeys(where, "head", h, ["name", "logits"], "a linear head");
      return { name, logits };
    case "angular": {
      onlyKeys(
        where,
        "head",
        h,
        ["name", "logits", "radius", "margin", "marginGradient"],
        "an angular head",
      );
      const radius = checkRadius(where, h.radius);
      const margin = checkMargin(where, h.margin);
      const marginGradient: MarginGradient = oneOf(
        where,
        "head.marginGradient",
        h.marginGradient,
        MARGIN_GRADIENTS,
      );
      return { name, logits, radius, margin, marginGradient };
    }
    default: {
      const unreachable: never = logits;
      throw new Error(`unreachable logits kind ${unreachable}`);
    }
  }
}

/**
 * The name to report a head's errors under: `<head.name>Loss` when the head has a usable name (as
 * the loss pages do), else `fallback`.
 */
export function headWhere(head: unknown, fallback: string): string {
  const name = head !== null && typeof head === "object"
    ? (head as { name?: unknown }).name
    : undefined;
  return typeof name === "string" && name !== "" ? `${name}Loss` : fallback;
}

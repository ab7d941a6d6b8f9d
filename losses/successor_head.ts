/**
 * Any successor head (issue 13) as data: {@linkcode isSuccessorHead} tells it from a
 * {@linkcode HeadSpec}, {@linkcode checkSuccessorHead} checks it field by field with the ranges of
 * its loss page, and {@linkcode successorHeadLoss} computes it on the float64 reference, the state
 * out included, whichever of the six losses it describes. For the folders that take a head from the
 * caller (the training adapter), where the loss pages each take their own options.
 *
 * @module
 */
import type { HeadSpec, SuccessorHeadSpec, SuccessorHook } from "./head_spec.ts";
import type { HeadInput, HeadResult, Reduction } from "./types.ts";
import { successorLoss } from "./_successor.ts";
import { describe, optionsObject, reductionOption } from "./_validate.ts";
import { subCenterArcFaceHead } from "./subcenter_arcface.ts";
import { curricularFaceHead } from "./curricularface.ts";
import { adaFaceHead } from "./adaface.ts";
import { magFaceHead } from "./magface.ts";
import { adaCosHead } from "./adacos.ts";
import { elasticFaceHead } from "./elasticface.ts";

/** Options of {@linkcode successorHeadLoss}. */
export interface SuccessorHeadLossOptions {
  /** How per-sample losses are combined. @default {"mean"} */
  reduction?: Reduction;
}

/**
 * What {@linkcode successorHeadLoss} returns: a head result, the state after this batch (`{ t }`,
 * `{ mean, std }`, `{ scale }` for CurricularFace, AdaFace, AdaCos; `{}` for the stateless ones)
 * and, for ElasticFace, the margins as applied.
 */
export interface SuccessorHeadResult extends HeadResult {
  /** The state after this batch, to build the next step's head with. */
  state: Record<string, number>;
  /** ElasticFace's margins as applied (after the "+" ordering). */
  margins?: Float64Array;
}

/**
 * Whether `head` is a successor head (it has a `successor` hook), not a {@linkcode HeadSpec}: the
 * one test that tells them apart, without checking either.
 *
 * @example
 * ```ts
 * import { arcFaceHead, curricularFaceHead } from "../mod.ts";
 * import { isSuccessorHead } from "./successor_head.ts";
 * import assert from "node:assert";
 *
 * assert.ok(isSuccessorHead(curricularFaceHead()));
 * assert.ok(!isSuccessorHead(arcFaceHead()));
 * ```
 *
 * @param head A head, of either kind (or anything).
 * @returns True for an object with a `successor` field.
 */
export function isSuccessorHead(head: unknown): head is SuccessorHeadSpec {
  return head !== null && typeof head === "object" && "successor" in head;
}

/** The hook's loss page rebuilds it from its own options: the checks of that page, once. */
function rebuilt(h: SuccessorHook, marginGradient: unknown): SuccessorHeadSpec {
  const o = h as Record<string, unknown>;
  switch (h.kind) {
    case "subCenter":
      return subCenterArcFaceHead({
        scale: h.scale,
        margin: h.margin,
        subCenters: h.subCenters,
        easyMargin: o.fallback === "easy",
        marginGradient: marginGradient as "exact",
      });
    case "curricular":
      return curricularFaceHead({
        scale: h.scale,
        margin: h.margin,
        state: { t: h.t },
        alpha: h.alpha,
        marginGradient: marginGradient as "exact",
      });
    case "adaFace":
      return adaFaceHead({
        scale: h.scale,
        margin: h.margin,
        h: h.h,
        alpha: h.alpha,
        state: { mean: h.mean, std: h.std },
      });
    case "magFace":
      return magFaceHead({
        scale: h.scale,
        lowerMargin: h.lowerMargin,
        upperMargin: h.upperMargin,
        lowerNorm: h.lowerNorm,
        upperNorm: h.upperNorm,
        regularization: h.regularization,
        easyMargin: o.fallback === "easy",
      });
    case "adaCos":
      return adaCosHead({
        state: h.scale === null ? undefined : { scale: h.scale },
        updateScale: h.updateScale,
      });
    case "elastic":
      return elasticFaceHead({
        variant: h.variant,
        scale: h.scale,
        margins: h.margins,
        plus: h.plus,
        marginGradient: marginGradient as "exact",
      });
    default: {
      const kind = (h as { kind?: unknown }).kind;
      throw new RangeError(
        `head.successor.kind must be one of "subCenter", "curricular", "adaFace", "magFace", ` +
          `"adaCos", "elastic", got ${describe(kind)}`,
      );
    }
  }
}

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, k) => Object.is(v, b[k]));
  }
  return Object.is(a, b);
}

/**
 * Checks a successor head field by field, with the ranges of its loss page (it is rebuilt by its
 * `…Head` builder, e.g. `curricularFaceHead`, from its own fields, so the checks are that page's),
 * and returns a fresh copy: unknown or missing fields, a field the builder would not give (a
 * `fallback` other than "insightface" or "easy", a `marginGradient` of "detached" where the loss
 * has none) and a value out of range are errors naming the field.
 *
 * @example
 * ```ts
 * import { curricularFaceHead } from "../mod.ts";
 * import { checkSuccessorHead } from "./successor_head.ts";
 * import assert from "node:assert";
 *
 * const head = curricularFaceHead({ state: { t: 0.3 } });
 * assert.deepEqual(checkSuccessorHead("mine", head), head);
 * const bad = { ...head, successor: { ...head.successor, margin: -1 } };
 * assert.throws(() => checkSuccessorHead("mine", bad), /^RangeError: mine: head\.successor/);
 * ```
 *
 * @param where The caller's name, the first word of every message.
 * @param head Anything claimed to be a {@linkcode SuccessorHeadSpec}.
 * @returns The head, checked and copied.
 */
export function checkSuccessorHead(where: string, head: unknown): SuccessorHeadSpec {
  if (!isSuccessorHead(head)) {
    throw new TypeError(`${where}: head must be a successor head (with a "successor" hook)`);
  }
  const h = head as unknown as Record<string, unknown>;
  for (const key of Object.keys(h)) {
    if (!["name", "logits", "marginGradient", "successor"].includes(key)) {
      throw new TypeError(
        `${where}: head has an unknown field "${key}"; a successor head has "name", "logits", ` +
          `"marginGradient", "successor"`,
      );
    }
  }
  if (typeof h.name !== "string" || h.name === "") {
    throw new TypeError(`${where}: head.name must be a non-empty string, got ${describe(h.name)}`);
  }
  if (h.logits !== "angular") {
    throw new RangeError(`${where}: head.logits must be "angular", got ${describe(h.logits)}`);
  }
  const hook = h.successor as Record<string, unknown> | null;
  if (hook === null || typeof hook !== "object" || Array.isArray(hook)) {
    throw new TypeError(`${where}: head.successor must be an object, got ${describe(hook)}`);
  }
  let fresh: SuccessorHeadSpec;
  try {
    fresh = rebuilt(hook as unknown as SuccessorHook, h.marginGradient);
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    const Kind = error instanceof RangeError ? RangeError : TypeError;
    throw new Kind(
      `${where}: head.successor (${describe(hook.kind)}) is not a head its loss takes: ` +
        error.message,
    );
  }
  const expected = fresh.successor as unknown as Record<string, unknown>;
  for (const key of Object.keys(hook)) {
    if (!(key in expected)) {
      throw new TypeError(
        `${where}: head.successor has an unknown field "${key}"; a ${describe(hook.kind)} hook ` +
          `has ${Object.keys(expected).map((k) => `"${k}"`).join(", ")}`,
      );
    }
  }
  for (const key of Object.keys(expected)) {
    if (!same(hook[key], expected[key])) {
      throw new RangeError(
        `${where}: head.successor.${key} of a ${describe(hook.kind)} hook cannot be ` +
          `${describe(hook[key])}${key === "fallback" ? ' (it is "insightface" or "easy")' : ""}`,
      );
    }
  }
  if (fresh.marginGradient !== h.marginGradient) {
    throw new RangeError(
      `${where}: head.marginGradient must be ${
        h.marginGradient === "detached" ? '"exact" for this loss (it has no detached form)' : (
          '"exact" or "detached"'
        )
      }, got ${describe(h.marginGradient)}`,
    );
  }
  return { ...fresh, name: h.name };
}

/**
 * Any successor head on the float64 reference: the loss, per-sample losses, logits, gradients and
 * the state after this batch, as its loss page computes them (`curricularFaceLoss`,
 * `adaFaceLoss`, `subCenterArcFaceLoss`, `magFaceLoss`, `adaCosLoss`, `elasticFaceLoss`): the
 * state before the batch is the head's (its hook's `t`, `mean`/`std`, `scale`), the state after it
 * is `result.state`, so the next step's head is built from that (optax-style: nothing is kept
 * here). The head is checked first ({@linkcode checkSuccessorHead}).
 *
 * @example One CurricularFace step from its head, then the next head from the state
 * ```ts
 * import { curricularFaceHead, curricularFaceLoss, matrix } from "../mod.ts";
 * import { successorHeadLoss } from "./successor_head.ts";
 * import assert from "node:assert";
 *
 * const input = {
 *   features: matrix(2, 2, [1, 0.2, 0.1, 1]),
 *   weights: matrix(3, 2, [1, 0, 0, 1, -1, 0]),
 *   labels: [0, 1],
 * };
 * const first = successorHeadLoss(input, curricularFaceHead());
 * assert.equal(first.loss, curricularFaceLoss(input).loss);
 * const next = successorHeadLoss(input, curricularFaceHead({ state: { t: first.state.t } }));
 * assert.ok(next.state.t > first.state.t);
 * ```
 *
 * @param input Features (N×D), weights (C×D, or C·K×D for sub-center ArcFace) and labels; no bias.
 * @param head A successor head (from a `…Head` builder, or data of that form).
 * @param options The reduction.
 * @returns The head result, the state after this batch and, for ElasticFace, the margins applied.
 */
export function successorHeadLoss(
  input: HeadInput,
  head: SuccessorHeadSpec,
  options?: SuccessorHeadLossOptions,
): SuccessorHeadResult {
  const where = "successorHeadLoss";
  const o = optionsObject(where, options, ["reduction"]);
  const checked = checkSuccessorHead(where, head);
  const out = successorLoss(where, input, checked, reductionOption(where, o.reduction));
  const result: SuccessorHeadResult = { ...out, state: { ...out.state } };
  if (out.margins) result.margins = out.margins;
  return result;
}

/** A head of either kind: a {@linkcode HeadSpec} or a {@linkcode SuccessorHeadSpec}. */
export type AnyHeadSpec = HeadSpec | SuccessorHeadSpec;

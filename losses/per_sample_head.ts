/**
 * The successor heads that engines compute (the per-sample kinds of losses/successor_targets.ts:
 * ElasticFace, MagFace, AdaFace) behind the engine contract: their check, with every other hook
 * refused as `checkHeadSpec` refuses it (naming the hook), and their float64 reference run.
 *
 * @module
 */
import type { SuccessorHeadSpec } from "./head_spec.ts";
import type { HeadInput, Reduction } from "./types.ts";
import { successorLoss, type SuccessorOutput } from "./_successor.ts";
import { checkHeadSpec } from "./_head_spec_check.ts";
import { elasticFaceHead } from "./elasticface.ts";
import { magFaceHead } from "./magface.ts";
import { adaFaceHead } from "./adaface.ts";
import { isPerSampleHook, type PerSampleHook } from "./successor_targets.ts";

/** A checked successor head of a per-sample kind. */
export type PerSampleHeadSpec = SuccessorHeadSpec & { successor: PerSampleHook };

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || typeof value !== "object") return String(value);
  return Array.isArray(value) ? "an array" : "an object";
}

/** The hook rebuilt by its loss page's builder, which checks every field's range. */
function rebuilt(hook: PerSampleHook, gradient: unknown): SuccessorHeadSpec {
  const o = hook as unknown as Record<string, unknown>;
  switch (hook.kind) {
    case "elastic": {
      const { variant, scale, margins, plus } = hook;
      return elasticFaceHead({
        variant,
        scale,
        margins,
        plus,
        marginGradient: gradient as "exact",
      });
    }
    case "magFace": {
      if (o.fallback !== "easy" && o.fallback !== "insightface") {
        throw new RangeError(
          `fallback must be "easy" or "insightface", got ${describe(o.fallback)}`,
        );
      }
      const { fallback, kind: _, ...options } = hook;
      return magFaceHead({ ...options, easyMargin: fallback === "easy" });
    }
    case "adaFace": {
      const { mean, std, kind: _, ...options } = hook;
      return adaFaceHead({ ...options, state: { mean, std } });
    }
    default: {
      const unreachable: never = hook;
      throw new Error(`unreachable hook ${describe(unreachable)}`);
    }
  }
}

/**
 * Checks a successor head that an engine is asked to compute and returns a fresh copy: a
 * per-sample kind with every field in its loss page's range (unknown fields, a `marginGradient` the
 * loss does not offer and ElasticFace's margins not one per sample of `samples` are errors naming
 * the field); any other hook is refused as `checkHeadSpec` refuses it, naming the hook.
 */
export function checkPerSampleHead(
  where: string,
  head: unknown,
  samples: number,
): PerSampleHeadSpec {
  const h = head as Record<string, unknown>;
  const hook = h?.successor as PerSampleHook | null | undefined;
  if (hook === null || typeof hook !== "object" || !isPerSampleHook(hook)) {
    checkHeadSpec(where, head); // throws: "head.successor (…) is a successor hook that …"
    throw new Error("unreachable");
  }
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
  let checked: SuccessorHeadSpec;
  try {
    checked = rebuilt(hook, h.marginGradient);
  } catch (error) {
    const message = `${where}: head.successor (${describe(hook.kind)}): ${
      error instanceof Error ? error.message : String(error)
    }`;
    throw error instanceof TypeError ? new TypeError(message) : new RangeError(message);
  }
  if (checked.marginGradient !== h.marginGradient) {
    throw new RangeError(
      `${where}: head.marginGradient of a ${describe(hook.kind)} head must be ` +
        `${describe(checked.marginGradient)}, got ${describe(h.marginGradient)}`,
    );
  }
  for (const key of Object.keys(hook)) {
    if (!(key in checked.successor)) {
      throw new TypeError(
        `${where}: head.successor has an unknown field "${key}"; the ${describe(hook.kind)} hook ` +
          `has ${Object.keys(checked.successor).map((k) => `"${k}"`).join(", ")}`,
      );
    }
  }
  const successor = checked.successor as PerSampleHook;
  if (successor.kind === "elastic" && successor.margins.length !== samples) {
    throw new RangeError(
      `${where}: head.successor.margins must hold one margin per sample (shape.samples = ` +
        `${samples}), got ${successor.margins.length}`,
    );
  }
  return { ...checked, name: h.name, successor };
}

/**
 * The float64 reference run of a checked per-sample successor head (losses/_successor.ts, the
 * machine of the loss pages): loss, per-sample losses, logits, gradients, the state after the step
 * (empty for a stateless hook) and ElasticFace's margins as applied.
 */
export function perSampleHeadLoss(
  where: string,
  input: HeadInput,
  head: PerSampleHeadSpec,
  reduction: Reduction,
): SuccessorOutput {
  return successorLoss(where, input, head, reduction);
}

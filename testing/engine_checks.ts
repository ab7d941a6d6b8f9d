// Shared by the engines' and adapters' tests: every output of an engine against the float64
// reference, relative to each array's largest magnitude (as the fixture parity).
import assert from "node:assert";
import type { EngineResult, HeadShape } from "../engines/engine.ts";
import type { HeadInput, HeadResult } from "../losses/types.ts";
import { closeness } from "./assert_close.ts";

/**
 * Asserts that every output is finite and within `rtol` of the reference (the logits too when the
 * engine returned them) and returns the worst relative error.
 */
export function assertMatchesReference(
  actual: EngineResult,
  expected: HeadResult,
  options: { name: string; rtol: number },
): number {
  const { name, rtol } = options;
  const pairs: [string, ArrayLike<number>, ArrayLike<number>][] = [
    ["loss", [actual.loss], [expected.loss]],
    ["losses", actual.losses, expected.losses],
    ["gradFeatures", actual.gradFeatures.data, expected.gradFeatures.data],
    ["gradWeights", actual.gradWeights.data, expected.gradWeights.data],
  ];
  if (actual.logits) pairs.push(["logits", actual.logits.data, expected.logits.data]);
  if (expected.gradBias) {
    assert.ok(actual.gradBias, `${name}: the engine returned no gradBias`);
    pairs.push(["gradBias", actual.gradBias, expected.gradBias]);
  }
  let worst = 0;
  for (const [output, a, e] of pairs) {
    for (const v of Array.from(a)) assert.ok(Number.isFinite(v), `${name} ${output}: ${v}`);
    const { relError, worstIndex } = closeness(a, e);
    worst = Math.max(worst, relError);
    assert.ok(
      relError <= rtol,
      `${name} ${output}: relative error ${relError.toExponential(2)} > ${rtol} ` +
        `(element ${worstIndex}: ${a[worstIndex]} vs ${e[worstIndex]})`,
    );
  }
  return worst;
}

/** The shape a head must be prepared for to run on `input`. */
export function shapeOf(input: HeadInput): HeadShape {
  return {
    samples: input.features.rows,
    dims: input.features.cols,
    classes: input.weights.rows,
  };
}

// Shared by the engines' tests: every output of a float32 engine against the float64 reference.
import assert from "node:assert";
import type { EngineHeadResult } from "../engines/head_loss.ts";
import type { HeadResult } from "../losses/types.ts";
import { closeness } from "./assert_close.ts";

/**
 * Asserts that every output is finite and within `rtol` of the reference, relative to each array's
 * largest magnitude (as the fixture parity of float32 backends), and returns the worst error.
 */
export function assertMatchesReference(
  actual: EngineHeadResult,
  expected: HeadResult,
  options: { name: string; rtol: number },
): number {
  const { name, rtol } = options;
  assert.ok(actual.logits, `${name}: the engine returned no logits`);
  const pairs: [string, ArrayLike<number>, ArrayLike<number>][] = [
    ["loss", [actual.loss], [expected.loss]],
    ["losses", actual.losses, expected.losses],
    ["logits", actual.logits.data, expected.logits.data],
    ["gradFeatures", actual.gradFeatures.data, expected.gradFeatures.data],
    ["gradWeights", actual.gradWeights.data, expected.gradWeights.data],
  ];
  if (expected.gradBias) pairs.push(["gradBias", actual.gradBias!, expected.gradBias]);
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

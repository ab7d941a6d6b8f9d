// Well-classified samples keep their relative precision: a loss of 1e-16 is 1e-16, not 0, and its
// gradients keep their digits. The fixtures are fixtures/manifest.json's precisionCases (computed
// in the generator as log1p of the non-target sum); every output is compared element by element
// (gradients row by row), not only relative to the largest magnitude of the array.
import assert from "node:assert";
import { fixtureArray, type FixtureCase } from "../testing/fixtures.ts";
import { FIXTURE_RTOL, fixtureHeadInput } from "../testing/loss_checks.ts";
import { assertClose } from "../testing/assert_close.ts";
import { HEAD_CATALOG } from "./catalog.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { softmaxCrossEntropy } from "./cross_entropy.ts";
import type { Reduction } from "./types.ts";

/**
 * Measured worst (new / before the fix): losses 2.5e-13 / 1.0, gradient rows 2.7e-13 / 1.4. The
 * margins' own conditioning near c = 1 (√(1 − c²), acos) sets the floor, in torch and here alike.
 */
const ELEMENT_RTOL = 1e-11;

/** The precision cases of the manifest: tiny losses, kept out of the float32 backends' parity. */
function precisionCases(): FixtureCase[] {
  const manifest = JSON.parse(
    Deno.readTextFileSync(new URL("../fixtures/manifest.json", import.meta.url)),
  );
  const cases: FixtureCase[] = manifest.precisionCases ?? [];
  assert.ok(cases.length > 0, "fixtures/manifest.json has no precisionCases");
  return cases;
}

/**
 * The helper of this test: throws unless every row of `actual` is within `rtol` of the same row of
 * `expected`, relative to that row's largest magnitude (`cols` 1: element by element). Returns the
 * worst relative error.
 */
function assertRowsClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  cols: number,
  rtol: number,
  name: string,
): number {
  assert.strictEqual(actual.length, expected.length, `${name}: length`);
  let worst = 0;
  for (let r = 0; r < expected.length / cols; r++) {
    let scale = 0, error = 0;
    for (let k = r * cols; k < (r + 1) * cols; k++) {
      scale = Math.max(scale, Math.abs(expected[k]));
      error = Math.max(
        error,
        Number.isFinite(actual[k]) ? Math.abs(actual[k] - expected[k]) : Infinity,
      );
    }
    const rel = scale === 0 ? error : error / scale;
    if (!(rel <= rtol)) {
      throw new Error(
        `${name}: row ${r} differs by ${rel.toExponential(2)} of its largest magnitude ` +
          `${scale.toExponential(3)} (> ${rtol}); first elements ${actual[r * cols]} vs ${
            expected[r * cols]
          }`,
      );
    }
    worst = Math.max(worst, rel);
  }
  return worst;
}

Deno.test("tiny losses: the reference keeps relative precision on the PyTorch precision fixtures", async (t) => {
  let worst = 0, where = "";
  for (const c of precisionCases()) {
    await t.step(c.name, () => {
      const entry = HEAD_CATALOG.find((e) => e.name === c.loss);
      assert.ok(entry, `${c.name}: no head loss "${c.loss}"`);
      const result = marginSoftmaxLoss(fixtureHeadInput(c), entry.head(c.options), {
        reduction: c.options.reduction as Reduction,
      });
      const expectedLosses = fixtureArray(c, "losses");
      assert.ok(expectedLosses.every((l) => l > 0 && l < 1e-5), `${c.name}: not tiny losses`);
      const outputs: [string, ArrayLike<number>, number][] = [
        ["loss", [result.loss], 1],
        ["losses", result.losses, 1],
        ["logits", result.logits.data, 1],
        ["gradFeatures", result.gradFeatures.data, c.D],
        ["gradWeights", result.gradWeights.data, c.D],
      ];
      for (const [name, actual, cols] of outputs) {
        const expected = fixtureArray(c, name);
        // What the other fixture tests check (relative to the largest magnitude), then row by row.
        assertClose(actual, expected, { rtol: FIXTURE_RTOL, name: `${c.name} ${name}` });
        const rel = assertRowsClose(actual, expected, cols, ELEMENT_RTOL, `${c.name} ${name}`);
        if (rel >= worst) [worst, where] = [rel, `${c.name} ${name}`];
      }
    });
  }
  console.log(`tiny losses: worst element/row relative error ${worst.toExponential(2)} (${where})`);
});

Deno.test("softmaxCrossEntropy: log1p of the non-target sum, and p_y − 1 without cancellation", () => {
  // z = [0, −40, −50]: loss = log(1 + e^−40 + e^−50) ≈ 4.2e-18, which log Σ exp − z_y rounds to 0.
  const rest = Math.exp(-40) + Math.exp(-50);
  for (const reduction of ["mean", "sum", "none"] as const) {
    const ce = softmaxCrossEntropy(Float64Array.of(0, -40, -50), Int32Array.of(0), reduction);
    assert.strictEqual(ce.losses[0], Math.log1p(rest));
    assert.ok(ce.losses[0] > 0 && Math.abs(ce.losses[0] / rest - 1) < 1e-15);
    assert.strictEqual(ce.loss, ce.losses[0]);
    assert.ok(Math.abs(ce.gradLogits[0] / -rest - 1) < 1e-15, `${ce.gradLogits[0]}`);
    assert.ok(Math.abs(ce.gradLogits[1] / Math.exp(-40) - 1) < 1e-15);
  }
  // A target that is not the maximum, ties, and a perfect sample (no −0 gradient).
  const ce = softmaxCrossEntropy(
    Float64Array.of(1, 3, 2, 2, 5, -800),
    Int32Array.of(0, 1, 0),
    "sum",
  );
  const log2 = Math.log(2);
  assert.ok(Math.abs(ce.losses[0] - (Math.log(Math.exp(1) + Math.exp(3)) - 1)) < 1e-15);
  assert.ok(Math.abs(ce.losses[1] - log2) < 1e-16);
  assert.strictEqual(ce.losses[2], 0);
  assert.ok(Object.is(ce.gradLogits[4], 0), `${ce.gradLogits[4]}`);
  let rowSum = 0;
  for (let j = 0; j < 2; j++) rowSum += ce.gradLogits[j];
  assert.ok(Math.abs(rowSum) < 1e-16);
});

import assert from "node:assert";
import { type HeadInput, magFaceLoss, matrix } from "../mod.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import {
  checkSuccessorFiniteDifferences,
  checkSuccessorFixtures,
} from "../testing/successor_checks.ts";

Deno.test("magFace: matches the PyTorch fixtures", (t) =>
  checkSuccessorFixtures(t, "magFace", magFaceLoss));

/** Random inputs whose feature norms lie inside (10, 110), past them for a few rows. */
function normed(
  size: { N: number; D: number; C: number },
  seed: number,
  norms: number[],
): HeadInput {
  const input = randomHeadInput(size, seed);
  const x = Float64Array.from(input.features.data);
  for (let i = 0; i < size.N; i++) {
    const row = x.subarray(i * size.D, (i + 1) * size.D), n = Math.hypot(...row);
    for (let d = 0; d < size.D; d++) row[d] *= norms[i % norms.length] / n;
  }
  return { ...input, features: matrix(size.N, size.D, x) };
}

Deno.test("magFace: gradients (through the norms too) agree with finite differences", () => {
  checkSuccessorFiniteDifferences(
    "magFace",
    magFaceLoss,
    [
      normed({ N: 4, D: 4, C: 5 }, 1, [12, 47, 95, 140]),
      normed({ N: 1, D: 3, C: 2 }, 2, [33]),
      normed({ N: 3, D: 5, C: 3 }, 3, [5, 60, 108]),
    ],
    [{}, { easyMargin: false }, { regularization: 20, scale: 16, upperMargin: 1.3 }],
  );
});

Deno.test("magFace: finite at |cos| = 1 and a zero feature", () => {
  const w = matrix(2, 3, [1, 0, 0, -2, 0, 0]);
  for (const easyMargin of [true, false]) {
    for (const x of [[30, 0, 0], [-50, 0, 0], [0, 0, 0]]) {
      const r = magFaceLoss({ features: matrix(1, 3, x), weights: w, labels: [0] }, { easyMargin });
      for (const a of [r.losses, r.logits.data, r.gradFeatures.data, r.gradWeights.data]) {
        assert.ok(Array.from(a).every(Number.isFinite));
      }
    }
  }
});

Deno.test("magFace: bad options are errors naming the argument", () => {
  const input = randomHeadInput({ N: 2, D: 3, C: 4 }, 31);
  const cases: [unknown, RegExp][] = [
    [{ upperNorm: 5 }, /options\.upperNorm must be a finite number > lowerNorm, got 5/],
    [{ lowerNorm: 0 }, /options\.lowerNorm must be a finite number > 0, got 0/],
    [
      { upperMargin: 0.3 },
      /options\.upperMargin must be an angle in radians in \[lowerMargin, π\)/,
    ],
    [{ regularization: -1 }, /options\.regularization must be a finite number ≥ 0/],
    [{ lambda: 35 }, /unknown option "lambda"/],
  ];
  for (const [options, message] of cases) {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => magFaceLoss(input, options as any), message);
  }
});

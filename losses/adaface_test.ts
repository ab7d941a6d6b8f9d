import assert from "node:assert";
import { adaFaceLoss, type HeadInput, matrix } from "../mod.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import {
  checkSuccessorFixtures,
  checkTangentFiniteDifferences,
} from "../testing/successor_checks.ts";

Deno.test("adaFace: matches the PyTorch fixtures, step by step with the state", (t) =>
  checkSuccessorFixtures(t, "adaFace", adaFaceLoss));

/** Random inputs with feature norms spread over 2..60 (AdaFace's margins follow the norms). */
function spread(size: { N: number; D: number; C: number }, seed: number): HeadInput {
  const input = randomHeadInput(size, seed);
  const x = Float64Array.from(input.features.data);
  for (let i = 0; i < size.N; i++) {
    const row = x.subarray(i * size.D, (i + 1) * size.D);
    const target = 2 * 30 ** ((i * 0.37 + seed * 0.11) % 1);
    const n = Math.hypot(...row);
    for (let d = 0; d < size.D; d++) row[d] *= target / n;
  }
  return { ...input, features: matrix(size.N, size.D, x) };
}

Deno.test("adaFace: gradients agree with finite differences along the feature spheres", () => {
  const inputs = [spread({ N: 4, D: 4, C: 5 }, 1), spread({ N: 1, D: 3, C: 2 }, 2)];
  const variants = [{}, { state: { mean: 10, std: 8 }, h: 1 }, { margin: 0.8, scale: 16 }];
  for (const [v, variant] of variants.entries()) {
    for (const reduction of ["mean", "sum", "none"]) {
      for (const [s, input] of inputs.entries()) {
        checkTangentFiniteDifferences(
          adaFaceLoss,
          input,
          { ...variant, reduction },
          `${v} ${reduction} ${s}`,
        );
      }
    }
  }
});

Deno.test("adaFace: a batch of one keeps the previous std and stays finite", () => {
  const input = spread({ N: 1, D: 4, C: 3 }, 5);
  const r = adaFaceLoss(input, { state: { mean: 12, std: 3 }, alpha: 0.5 });
  assert.equal(r.state.std, 3);
  const n = Math.hypot(...input.features.data);
  assert.ok(Math.abs(r.state.mean - (0.5 * n + 6)) < 1e-12);
  assert.ok(Number.isFinite(r.loss));
});

Deno.test("adaFace: finite at |cos| = 1 and a zero feature", () => {
  const w = matrix(2, 3, [1, 0, 0, -2, 0, 0]);
  for (const x of [[3, 0, 0], [-1, 0, 0], [0, 0, 0]]) {
    const r = adaFaceLoss({ features: matrix(1, 3, x), weights: w, labels: [0] });
    for (const a of [r.losses, r.logits.data, r.gradFeatures.data, r.gradWeights.data]) {
      assert.ok(Array.from(a).every(Number.isFinite));
    }
  }
});

Deno.test("adaFace: bad options and inputs are errors naming the argument", () => {
  const input = randomHeadInput({ N: 2, D: 3, C: 4 }, 31);
  const cases: [unknown, RegExp][] = [
    [{ state: { mean: 20 } }, /options\.state\.std must be a finite number ≥ 0, got undefined/],
    [{ state: { mean: -1, std: 1 } }, /options\.state\.mean must be a finite number ≥ 0, got -1/],
    [{ state: { mean: 1, std: Infinity } }, /options\.state\.std must be/],
    [{ alpha: -0.1 }, /options\.alpha must be a rate in \[0, 1\]/],
    [{ h: -1 }, /options\.h must be a finite number ≥ 0/],
    [{ margin: 2 }, /options\.margin must be a finite number in \[0, 1\], got 2/],
    [{ marginGradient: "detached" }, /unknown option "marginGradient"/],
  ];
  for (const [options, message] of cases) {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => adaFaceLoss(input, options as any), message);
  }
});

import assert from "node:assert";
import { curricularFaceHead, curricularFaceLoss, matrix } from "../mod.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { assertClose } from "../testing/assert_close.ts";
import {
  checkReferenceOnlySuccessor,
  checkSuccessorFiniteDifferences,
  checkSuccessorFixtures,
} from "../testing/successor_checks.ts";

Deno.test("curricularFace: matches the PyTorch fixtures, step by step with the state", (t) =>
  checkSuccessorFixtures(t, "curricularFace", curricularFaceLoss));

const inputs = [
  randomHeadInput({ N: 3, D: 4, C: 5 }, 11),
  randomHeadInput({ N: 1, D: 3, C: 2 }, 12),
  randomHeadInput({ N: 6, D: 5, C: 4 }, 13),
];

Deno.test("curricularFace: gradients agree with finite differences (t held by alpha = 0)", () => {
  checkSuccessorFiniteDifferences("curricularFace", curricularFaceLoss, inputs, [
    { alpha: 0 },
    { alpha: 0, state: { t: 0.7 } },
    { alpha: 0, state: { t: -0.3 }, scale: 8, margin: 1.2 },
  ]);
});

Deno.test("curricularFace: t is updated before use and held constant by the gradient", () => {
  const input = randomHeadInput({ N: 5, D: 4, C: 6 }, 21);
  const first = curricularFaceLoss(input, { state: { t: 0.25 } });
  const frozen = curricularFaceLoss(input, { state: first.state, alpha: 0 });
  assert.equal(frozen.state.t, first.state.t);
  for (const key of ["logits", "gradFeatures", "gradWeights"] as const) {
    assertClose(first[key].data, frozen[key].data, { rtol: 1e-15, name: key });
  }
  assert.equal(first.loss, frozen.loss);
});

Deno.test("curricularFace: finite at |cos| = 1 exactly, for one sample and two classes", () => {
  const w = matrix(2, 3, [1, 0, 0, -2, 0, 0]);
  for (const x of [[3, 0, 0], [-1, 0, 0]]) {
    const r = curricularFaceLoss({ features: matrix(1, 3, x), weights: w, labels: [0] });
    for (const a of [r.losses, r.logits.data, r.gradFeatures.data, r.gradWeights.data]) {
      assert.ok(Array.from(a).every(Number.isFinite));
    }
  }
});

Deno.test("curricularFace: bad options and inputs are errors naming the argument", () => {
  const input = randomHeadInput({ N: 2, D: 3, C: 4 }, 31);
  const cases: [unknown, RegExp][] = [
    [{ state: { t: 2 } }, /options\.state\.t must be a finite number in \[−1, 1\], got 2/],
    [{ state: { t: NaN } }, /options\.state\.t must be/],
    [{ state: { tt: 0 } }, /options\.state has an unknown field "tt"; the state is \{ t \}/],
    [{ state: 0.1 }, /options\.state must be an object \{ t \}, got 0\.1/],
    [{ alpha: 1.5 }, /options\.alpha must be a rate in \[0, 1\], got 1\.5/],
    [{ margin: -0.1 }, /options\.margin must be an angle in radians in \[0, π\)/],
    [{ scale: 0 }, /options\.scale must be a finite number > 0/],
    [{ subCenters: 3 }, /unknown option "subCenters"/],
  ];
  for (const [options, message] of cases) {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => curricularFaceLoss(input, options as any), message);
  }
  assert.throws(
    () => curricularFaceLoss({ ...input, labels: [0, 4] }),
    /curricularFaceLoss: labels must be integers in \[0, C\) = \[0, 4\), got 4 at 1/,
  );
  assert.throws(
    () => curricularFaceLoss({ ...input, bias: [0, 0, 0, 0] }),
    /curricularFaceLoss: bias is not used by this loss/,
  );
});

Deno.test("curricularFace: the options' state is not changed", () => {
  const state = Object.freeze({ t: 0.1 });
  const r = curricularFaceLoss(randomHeadInput({ N: 2, D: 3, C: 4 }, 41), { state });
  assert.equal(state.t, 0.1);
  assert.notEqual(r.state, state);
});

Deno.test("curricularFace: the reference engine computes the head as the loss does (engines/successor_test.ts runs wasm, native and webgpu)", async () => {
  const input = randomHeadInput({ N: 2, D: 3, C: 4 }, 7);
  const head = curricularFaceHead(), page = curricularFaceLoss(input);
  await checkReferenceOnlySuccessor(head, page, input, ["wasm", "native", "webgpu"]);
});

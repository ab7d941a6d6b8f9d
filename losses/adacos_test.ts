import assert from "node:assert";
import {
  adaCosHead,
  adaCosInitialState,
  adaCosLoss,
  ENGINE_NAMES,
  ENGINES,
  headLoss,
  matrix,
  normFaceLoss,
} from "../mod.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { assertClose } from "../testing/assert_close.ts";
import {
  checkSuccessorFiniteDifferences,
  checkSuccessorFixtures,
} from "../testing/successor_checks.ts";

Deno.test("adaCos: matches the PyTorch fixtures, step by step with the scale", (t) =>
  checkSuccessorFixtures(t, "adaCos", adaCosLoss));

Deno.test("adaCos: gradients agree with finite differences (the scale held fixed)", () => {
  const inputs = [
    randomHeadInput({ N: 3, D: 4, C: 5 }, 11),
    randomHeadInput({ N: 1, D: 3, C: 2 }, 12),
    randomHeadInput({ N: 6, D: 5, C: 4 }, 13),
  ];
  checkSuccessorFiniteDifferences("adaCos", adaCosLoss, inputs, [
    { updateScale: false, state: { scale: 3 } },
    { updateScale: false, state: { scale: 17.5 } },
  ]);
});

Deno.test("adaCos: the new scale is used in the same step and held constant by the gradient", () => {
  const input = randomHeadInput({ N: 7, D: 4, C: 6 }, 21);
  const updated = adaCosLoss(input);
  const s0 = adaCosInitialState(6).scale;
  assert.notEqual(updated.state.scale, s0);
  const frozen = adaCosLoss(input, { state: updated.state, updateScale: false });
  assert.equal(frozen.state.scale, updated.state.scale);
  for (const key of ["logits", "gradFeatures", "gradWeights"] as const) {
    assertClose(updated[key].data, frozen[key].data, { rtol: 1e-15, name: key });
  }
  assert.equal(updated.loss, frozen.loss);
  // with the scale frozen it is NormFace at s
  const normFace = normFaceLoss(input, { scale: updated.state.scale });
  for (const key of ["logits", "gradFeatures", "gradWeights"] as const) {
    assertClose(updated[key].data, normFace[key].data, { rtol: 1e-12, name: `normFace ${key}` });
  }
});

Deno.test("adaCos: the scale formula by hand (lower middle of an even N, π/4 cap)", () => {
  const input = randomHeadInput({ N: 4, D: 3, C: 5 }, 22);
  const s = 3.5;
  const r = adaCosLoss(input, { state: { scale: s } });
  const cos = adaCosLoss(input, { state: { scale: 1 }, updateScale: false }).logits.data;
  let b = 0;
  const thetas: number[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 5; j++) {
      if (j === input.labels[i]) thetas.push(Math.acos(cos[i * 5 + j]));
      else b += Math.exp(s * cos[i * 5 + j]);
    }
  }
  thetas.sort((p, q) => p - q);
  const expected = Math.log(b / 4) / Math.cos(Math.min(Math.PI / 4, thetas[1]));
  assertClose([r.state.scale], [expected], { rtol: 1e-13, name: "scale" });
});

Deno.test("adaCos: ln B ≤ 0 keeps the old scale; C = 1 keeps it too; never NaN", () => {
  const w = matrix(2, 2, [1, 0, -1, 0]);
  const x = matrix(2, 2, [1, 0.3, -1, 0.2]);
  const r = adaCosLoss({ features: x, weights: w, labels: [0, 1] }, { state: { scale: 2 } });
  assert.equal(r.state.scale, 2);
  const one = adaCosLoss(
    { features: x, weights: matrix(1, 2, [0.5, 0.5]), labels: [0, 0] },
    { state: { scale: 2 } },
  );
  assert.equal(one.state.scale, 2);
  assert.equal(one.loss, 0);
  for (const xs of [[3, 0, 0], [-1, 0, 0], [0, 0, 0]]) {
    const e = adaCosLoss({
      features: matrix(1, 3, xs),
      weights: matrix(3, 3, [1, 0, 0, -2, 0, 0, 0, 1, 0]),
      labels: [0],
    });
    for (const a of [e.losses, e.logits.data, e.gradFeatures.data, e.gradWeights.data]) {
      assert.ok(Array.from(a).every(Number.isFinite));
    }
    assert.ok(Number.isFinite(e.state.scale) && e.state.scale > 0);
  }
});

Deno.test("adaCos: bad options and inputs are errors naming the argument", () => {
  const input = randomHeadInput({ N: 2, D: 3, C: 4 }, 31);
  const cases: [unknown, RegExp][] = [
    [{ state: { scale: 0 } }, /options\.state\.scale must be a finite number > 0, got 0/],
    [{ state: { scale: NaN } }, /options\.state\.scale must be/],
    [{ state: { s: 1 } }, /options\.state has an unknown field "s"; the state is \{ scale \}/],
    [{ state: 3 }, /options\.state must be an object \{ scale \}, got 3/],
    [{ updateScale: 1 }, /options\.updateScale must be true or false, got 1/],
    [{ scale: 30 }, /unknown option "scale"/],
    [{ reduction: "avg" }, /options\.reduction must be one of/],
  ];
  for (const [options, message] of cases) {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => adaCosLoss(input, options as any), message);
  }
  const two = randomHeadInput({ N: 2, D: 3, C: 2 }, 32);
  assert.throws(
    () => adaCosLoss(two),
    /adaCosLoss: the initial scale √2·ln\(C − 1\) is not positive for C = 2 classes .*options\.state/,
  );
  assert.ok(Number.isFinite(adaCosLoss(two, { state: { scale: 4 } }).loss));
  for (const bad of [2, 3.5, -1, NaN]) {
    assert.throws(
      () => adaCosInitialState(bad),
      /adaCosInitialState: classes must be an integer ≥ 3/,
    );
  }
  assert.throws(
    () => adaCosLoss({ ...input, labels: [0, 4] }),
    /adaCosLoss: labels must be integers in \[0, C\) = \[0, 4\), got 4 at 1/,
  );
});

Deno.test("adaCos: the options' state is not changed", () => {
  const state = Object.freeze({ scale: 7 });
  const r = adaCosLoss(randomHeadInput({ N: 3, D: 3, C: 4 }, 41), { state });
  assert.equal(state.scale, 7);
  assert.notEqual(r.state, state);
});

Deno.test("adaCos: the reference engine computes the head as the loss does; every engine computes it", async () => {
  const input = randomHeadInput({ N: 2, D: 3, C: 4 }, 7);
  const page = adaCosLoss(input);
  const reference = await headLoss(input, adaCosHead());
  assert.equal(reference.loss, page.loss);
  assert.deepEqual(reference.gradFeatures, page.gradFeatures);
  assert.deepEqual(reference.state, page.state);
  // The float32 engines (engines/adacos.ts; engines/successor_test.ts holds them to the reference).
  for (const engine of ENGINE_NAMES) {
    if (!(await ENGINES[engine].availability()).available) continue;
    const r = await headLoss(
      input,
      adaCosHead(),
      engine === "wasm" ? { engine, threads: 1 } : {
        engine,
      },
    );
    assertClose([r.loss, r.state!.scale], [page.loss, page.state.scale], {
      rtol: 1e-5,
      atol: 0,
      name: engine,
    });
  }
});

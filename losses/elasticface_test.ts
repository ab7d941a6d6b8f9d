import assert from "node:assert";
import { arcFaceLoss, cosFaceLoss, elasticFaceLoss, elasticFaceMargins, matrix } from "../mod.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { assertClose } from "../testing/assert_close.ts";
import {
  checkSuccessorFiniteDifferences,
  checkSuccessorFixtures,
} from "../testing/successor_checks.ts";

Deno.test("elasticFace: matches the PyTorch fixtures (margins given as data)", (t) =>
  checkSuccessorFixtures(t, "elasticFace", elasticFaceLoss));

Deno.test("elasticFace: gradients agree with finite differences", () => {
  const sizes = [{ N: 3, D: 4, C: 5 }, { N: 1, D: 3, C: 2 }, { N: 6, D: 5, C: 4 }];
  const inputs = sizes.map((size, k) => randomHeadInput(size, 11 + k));
  for (const variant of ["arc", "cos"] as const) {
    for (const plus of [false, true]) {
      // margins per input size: the same options object must fit every input's N
      for (const [k, input] of inputs.entries()) {
        const margins = elasticFaceMargins(input.labels.length, { variant, seed: 100 + k });
        checkSuccessorFiniteDifferences(`elasticFace ${variant} plus=${plus}`, elasticFaceLoss, [
          input,
        ], [
          { variant, plus, margins },
          { variant, plus, margins: margins.map((m) => 3 * m), scale: 8 },
        ]);
      }
    }
  }
});

Deno.test("elasticFace: equal margins are CosFace, and ArcFace before its fallback", () => {
  const input = randomHeadInput({ N: 6, D: 5, C: 4 }, 21);
  const margins = new Array(6).fill(0.35);
  const cos = elasticFaceLoss(input, { variant: "cos", margins, scale: 30 });
  const cosFace = cosFaceLoss(input, { margin: 0.35, scale: 30 });
  const arc = elasticFaceLoss(input, { margins: margins.map(() => 0.5) });
  const arcFace = arcFaceLoss(input, { margin: 0.5, scale: 64 });
  const arcLogits = arcFaceLoss(input, { margin: 0, scale: 1 }).logits.data;
  for (let i = 0; i < 6; i++) {
    assert.ok(arcLogits[i * 4 + input.labels[i]] > Math.cos(Math.PI - 0.5), "before the fallback");
  }
  for (const key of ["logits", "gradFeatures", "gradWeights"] as const) {
    assertClose(cos[key].data, cosFace[key].data, { rtol: 1e-12, name: `cos ${key}` });
    assertClose(arc[key].data, arcFace[key].data, { rtol: 1e-12, name: `arc ${key}` });
  }
});

Deno.test("elasticFace: the '+' order is the official gather by the argsort", () => {
  // target cosines 0.1, 0.9, 0.5, 0.3, 0.7 (aimed at the class rows)
  const targets = [0.1, 0.9, 0.5, 0.3, 0.7];
  const features = targets.flatMap((c) => [c, Math.sqrt(1 - c * c)]);
  const input = {
    features: matrix(5, 2, features),
    weights: matrix(2, 2, [1, 0, -1, 0]),
    labels: [0, 0, 0, 0, 0],
  };
  const margins = [0.55, 0.4, 0.6, 0.45, 0.5];
  const r = elasticFaceLoss(input, { variant: "cos", margins, plus: true });
  // argsort descending = [1, 4, 2, 3, 0]; sorted = [0.4, 0.45, 0.5, 0.55, 0.6]
  assert.deepEqual(Array.from(r.margins), [0.45, 0.6, 0.5, 0.55, 0.4]);
  assert.deepEqual(margins, [0.55, 0.4, 0.6, 0.45, 0.5]);
  const plain = elasticFaceLoss(input, { variant: "cos", margins });
  assert.deepEqual(Array.from(plain.margins), margins);
});

Deno.test("elasticFaceMargins: reproducible, seeded, with the asked mean and std", () => {
  const a = elasticFaceMargins(5, { seed: 0 });
  assert.deepEqual(a, elasticFaceMargins(5, { seed: 0 }));
  assert.notDeepEqual(a, elasticFaceMargins(5, { seed: 1 }));
  // pinned: a change of the generator changes every user's margins
  assertClose(a, [
    0.6040604467435068,
    0.5081732806813705,
    0.5127065348011188,
    0.5019641011678757,
    0.5661079698888966,
  ], { rtol: 1e-15, name: "seed 0" }); // the same from an independent Python transcription
  assert.deepEqual(
    elasticFaceMargins(4, { seed: 9 }),
    elasticFaceMargins(5, { seed: 9 }).subarray(0, 4),
  );
  const many = elasticFaceMargins(200001, { variant: "cos", seed: 42 });
  let mean = 0;
  for (const m of many) mean += m;
  mean /= many.length;
  let sq = 0;
  for (const m of many) sq += (m - mean) ** 2;
  const std = Math.sqrt(sq / (many.length - 1));
  assert.ok(Math.abs(mean - 0.35) < 5e-4, `mean ${mean}`);
  assert.ok(Math.abs(std - 0.05) < 5e-4, `std ${std}`);
  const custom = elasticFaceMargins(3, { mean: 0.2, std: 0, seed: 3 });
  assert.deepEqual(Array.from(custom), [0.2, 0.2, 0.2]);
  const cases: [() => unknown, RegExp][] = [
    [() => elasticFaceMargins(0, { seed: 1 }), /samples must be an integer ≥ 1, got 0/],
    // deno-lint-ignore no-explicit-any
    [() => elasticFaceMargins(3, {} as any), /options\.seed must be an integer in \[0, 2³²\)/],
    [() => elasticFaceMargins(3, { seed: -1 }), /options\.seed must be/],
    [() => elasticFaceMargins(3, { seed: 2 ** 32 }), /options\.seed must be/],
    [
      () => elasticFaceMargins(3, { seed: 1, std: -0.1 }),
      /options\.std must be a finite number ≥ 0/,
    ],
    [
      () => elasticFaceMargins(3, { seed: 1, variant: "sphere" as "arc" }),
      /options\.variant must be/,
    ],
  ];
  for (const [fn, message] of cases) assert.throws(fn, message);
});

Deno.test("elasticFace: finite at |cos| = 1 exactly and past θ + m = π", () => {
  const w = matrix(2, 3, [1, 0, 0, -2, 0, 0]);
  for (const variant of ["arc", "cos"] as const) {
    for (const x of [[3, 0, 0], [-1, 0, 0], [0, 0, 0]]) {
      const r = elasticFaceLoss({ features: matrix(1, 3, x), weights: w, labels: [0] }, {
        variant,
        margins: [0.5],
      });
      for (const a of [r.losses, r.logits.data, r.gradFeatures.data, r.gradWeights.data]) {
        assert.ok(Array.from(a).every(Number.isFinite));
      }
    }
  }
});

Deno.test("elasticFace: bad options and inputs are errors naming the argument", () => {
  const input = randomHeadInput({ N: 2, D: 3, C: 4 }, 31);
  const cases: [unknown, RegExp][] = [
    [undefined, /elasticFaceLoss: options\.margins is required: one margin per sample/],
    [{ variant: "cos" }, /options\.margins is required/],
    [{ margins: [0.5] }, /options\.margins must hold one margin per sample \(N = 2\), got 1/],
    [{ margins: [0.5, NaN] }, /options\.margins must be finite numbers, got NaN at 1/],
    [{ margins: 0.5 }, /options\.margins must be an array of finite numbers, one per sample/],
    [{ margins: [0.5, 0.5], variant: "sphere" }, /options\.variant must be one of "arc", "cos"/],
    [{ margins: [0.5, 0.5], plus: "yes" }, /options\.plus must be true or false/],
    [{ margins: [0.5, 0.5], scale: -1 }, /options\.scale must be a finite number > 0/],
    [{ margins: [0.5, 0.5], marginGradient: "none" }, /options\.marginGradient must be one of/],
    [{ margins: [0.5, 0.5], std: 0.05 }, /unknown option "std"/],
  ];
  for (const [options, message] of cases) {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => elasticFaceLoss(input, options as any), message);
  }
  assert.throws(
    () => elasticFaceLoss({ ...input, labels: [0, -1] }, { margins: [0.5, 0.5] }),
    /elasticFaceLoss: labels must be integers in \[0, C\)/,
  );
});

Deno.test("elasticFace: the options' margins are not changed", () => {
  const margins = Object.freeze([0.6, 0.4, 0.5]);
  const typed = Float64Array.from(margins);
  const input = randomHeadInput({ N: 3, D: 3, C: 4 }, 41);
  const r = elasticFaceLoss(input, { margins, plus: true });
  const t = elasticFaceLoss(input, { margins: typed, plus: true });
  assert.deepEqual(Array.from(typed), [0.6, 0.4, 0.5]);
  assert.notEqual(t.margins, typed);
  assert.deepEqual(r.margins, t.margins);
});

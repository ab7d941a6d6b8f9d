// Bad input gets an error that names the argument and what was expected, for every loss.
import assert from "node:assert";
import {
  arcFaceLoss,
  centerLoss,
  combinedMarginLoss,
  cosFaceLoss,
  fNormSphereFaceLoss,
  type HeadInput,
  lambdaSchedule,
  lSoftmaxLoss,
  matrix,
  normFaceLoss,
  softmaxLoss,
  sphereFaceLoss,
  updateCenters,
} from "../mod.ts";
import type { HeadLoss } from "../testing/loss_checks.ts";

const LOSSES: [string, HeadLoss][] = [
  ["softmaxLoss", softmaxLoss],
  ["normFaceLoss", normFaceLoss],
  ["lSoftmaxLoss", lSoftmaxLoss],
  ["sphereFaceLoss", sphereFaceLoss],
  ["fNormSphereFaceLoss", fNormSphereFaceLoss],
  ["cosFaceLoss", cosFaceLoss],
  ["arcFaceLoss", arcFaceLoss],
  ["combinedMarginLoss", combinedMarginLoss],
];

function good(): HeadInput {
  return {
    features: matrix(2, 3, [1, 2, 3, 4, 5, 6]),
    weights: matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
    labels: [0, 3],
  };
}

const BAD_INPUTS: [string, (input: HeadInput) => unknown, RegExp][] = [
  [
    "empty batch",
    (i) => (i.features = { rows: 0, cols: 3, data: new Float64Array(0) }),
    /features\.rows must be a positive integer \(the batch is empty\), got 0/,
  ],
  [
    "data length",
    (i) => (i.features = { rows: 2, cols: 3, data: new Float64Array(5) }),
    /features\.data must have rows × cols = 2 × 3 = 6 elements, got 5/,
  ],
  [
    "D mismatch",
    (i) => (i.weights = matrix(4, 2)),
    /weights\.cols must equal features\.cols \(D = 3\), got 2/,
  ],
  [
    "labels length",
    (i) => (i.labels = [0]),
    /labels must have one entry per row of features \(N = 2\), got 1/,
  ],
  [
    "label out of range",
    (i) => (i.labels = [0, 4]),
    /labels must be integers in \[0, C\) = \[0, 4\), got 4 at 1/,
  ],
  [
    "negative label",
    (i) => (i.labels = [-1, 0]),
    /labels must be integers in \[0, C\) = \[0, 4\), got -1 at 0/,
  ],
  ["fractional label", (i) => (i.labels = [0.5, 0]), /labels must be integers .* got 0.5 at 0/],
  [
    "NaN feature",
    (i) => (i.features = matrix(2, 3, [1, NaN, 3, 4, 5, 6])),
    /features must hold finite numbers, got NaN at 1/,
  ],
  [
    "infinite weight",
    (i) => (i.weights = matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, Infinity])),
    /weights must hold finite numbers, got Infinity at 11/,
  ],
  ["missing weights", (i) => delete (i as Partial<HeadInput>).weights, /weights must be a Matrix/],
  [
    "fractional rows",
    (i) => (i.features = { rows: 1.5, cols: 2, data: new Float64Array(3) }),
    /features\.rows must be a positive integer, got 1\.5$/,
  ],
  [
    "a misspelt bias",
    (i) => ((i as unknown as Record<string, unknown>).bais = [0, 0, 0, 0]),
    /input has an unknown key "bais"; it takes "features", "weights", "labels"/,
  ],
  [
    "a misspelt features",
    (i) => {
      const r = i as unknown as Record<string, unknown>;
      r.feature = r.features;
      delete r.features;
    },
    /input has an unknown key "feature"; it takes "features", "weights", "labels"/,
  ],
];

Deno.test("every loss rejects malformed inputs, naming the argument", async (t) => {
  for (const [name, fn] of LOSSES) {
    for (const [what, spoil, message] of BAD_INPUTS) {
      await t.step(`${name}: ${what}`, () => {
        const input = good();
        spoil(input);
        assert.throws(() => fn(input), (e: Error) => {
          assert.match(e.message, new RegExp(`^${name}: `));
          assert.match(e.message, message);
          return true;
        });
      });
    }
  }
});

Deno.test("only softmax takes a bias, of length C with finite values", () => {
  assert.throws(
    () => arcFaceLoss({ ...good(), bias: [0, 0, 0, 0] }),
    /arcFaceLoss: bias is not used/,
  );
  assert.throws(
    () => softmaxLoss({ ...good(), bias: [0, 0] }),
    /bias must have one entry per class \(C = 4\), got 2/,
  );
  assert.throws(
    () => softmaxLoss({ ...good(), bias: [0, 0, NaN, 0] }),
    /bias must hold finite numbers, got NaN at 2/,
  );
});

Deno.test("an unknown input key names the keys each loss takes", () => {
  assert.throws(
    () => softmaxLoss({ ...good(), bais: [0, 0, 0, 0] } as HeadInput),
    /^TypeError: softmaxLoss: input has an unknown key "bais"; it takes "features", "weights", "labels", "bias"$/,
  );
  assert.throws(
    () => arcFaceLoss({ ...good(), weight: good().weights } as HeadInput),
    /^TypeError: arcFaceLoss: input has an unknown key "weight"; it takes "features", "weights", "labels"$/,
  );
  assert.throws(
    () => centerLoss({ features: matrix(2, 3), centres: matrix(4, 3), labels: [0, 1] } as never),
    /^TypeError: centerLoss: input has an unknown key "centres"; it takes "features", "centers", "labels"$/,
  );
  assert.throws(
    () => centerLoss({ features: matrix(2, 3), weights: matrix(4, 3), labels: [0, 1] } as never),
    /centerLoss: input has an unknown key "weights"/,
  );
  // A bias given where none is allowed keeps its own message; an absent one is fine.
  assert.throws(() => arcFaceLoss({ ...good(), bias: [0, 0, 0, 0] }), /bias is not used/);
  assert.ok(Number.isFinite(arcFaceLoss({ ...good(), bias: undefined }).loss));
});

Deno.test("rows that are not positive integers are not called an empty batch", () => {
  for (const rows of [1.5, -1, NaN]) {
    assert.throws(
      () => softmaxLoss({ ...good(), features: { rows, cols: 3, data: new Float64Array(3) } }),
      (e: Error) => {
        assert.match(e.message, /^softmaxLoss: features\.rows must be a positive integer, got /);
        assert.doesNotMatch(e.message, /empty/);
        return true;
      },
    );
  }
  assert.throws(
    () => softmaxLoss({ ...good(), weights: { rows: 2.5, cols: 3, data: new Float64Array(6) } }),
    /softmaxLoss: weights\.rows must be a positive integer, got 2\.5$/,
  );
});

const BAD_OPTIONS: [string, HeadLoss, Record<string, unknown>, RegExp][] = [
  ["normFaceLoss", normFaceLoss, { scale: 0 }, /options\.scale must be a finite number > 0, got 0/],
  ["normFaceLoss", normFaceLoss, { scale: Infinity }, /options\.scale must be a finite number > 0/],
  ["cosFaceLoss", cosFaceLoss, { margin: -0.1 }, /options\.margin must be in \[0, 1\], got -0.1/],
  [
    "cosFaceLoss",
    cosFaceLoss,
    { scale: -64 },
    /options\.scale must be a finite number > 0, got -64/,
  ],
  [
    "arcFaceLoss",
    arcFaceLoss,
    { margin: 4 },
    /options\.margin must be an angle in radians in \[0, π\), got 4/,
  ],
  ["arcFaceLoss", arcFaceLoss, { margin: 28.6 }, /options\.margin must be an angle in radians/],
  ["arcFaceLoss", arcFaceLoss, { easyMargin: "yes" }, /options\.easyMargin must be true or false/],
  [
    "arcFaceLoss",
    arcFaceLoss,
    { marginGradient: "none" },
    /options\.marginGradient must be one of "exact", "detached", got "none"/,
  ],
  [
    "arcFaceLoss",
    arcFaceLoss,
    { reduction: "avg" },
    /options\.reduction must be one of "mean", "sum", "none", got "avg"/,
  ],
  ["arcFaceLoss", arcFaceLoss, { margn: 0.5 }, /unknown option "margn"/],
  [
    "lSoftmaxLoss",
    lSoftmaxLoss,
    { margin: 2.5 },
    /options\.margin must be an integer from 1 to 16, got 2.5/,
  ],
  [
    "lSoftmaxLoss",
    lSoftmaxLoss,
    { margin: 0 },
    /options\.margin must be an integer from 1 to 16, got 0/,
  ],
  [
    "sphereFaceLoss",
    sphereFaceLoss,
    { lambda: -1 },
    /options\.lambda must be a finite number ≥ 0, got -1/,
  ],
  [
    "fNormSphereFaceLoss",
    fNormSphereFaceLoss,
    { margin: 17 },
    /options\.margin must be an integer from 1 to 16/,
  ],
  [
    "combinedMarginLoss",
    combinedMarginLoss,
    { m1: 0 },
    /options\.m1 must be a finite number > 0, got 0/,
  ],
  [
    "combinedMarginLoss",
    combinedMarginLoss,
    { m2: -0.5 },
    /options\.m2 must be an angle in radians in \[0, π\)/,
  ],
  [
    "combinedMarginLoss",
    combinedMarginLoss,
    { m3: 1.5 },
    /options\.m3 must be in \[0, 1\], got 1.5/,
  ],
  ["softmaxLoss", softmaxLoss, { scale: 2 }, /unknown option "scale"/],
  ["normFaceLoss", normFaceLoss, { marginGradient: "exact" }, /unknown option "marginGradient"/],
];

Deno.test("every loss rejects invalid options, naming the option and its range", async (t) => {
  for (const [name, fn, options, message] of BAD_OPTIONS) {
    await t.step(`${name} ${JSON.stringify(options)}`, () => {
      assert.throws(() => fn(good(), options), (e: Error) => {
        assert.match(e.message, new RegExp(`^${name}: `));
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

Deno.test("center loss, its update and the λ schedule validate too", () => {
  const centers = matrix(4, 3);
  assert.throws(
    () => centerLoss({ features: matrix(2, 3), centers: matrix(4, 2), labels: [0, 1] }),
    /centerLoss: centers\.cols must equal features\.cols \(D = 3\), got 2/,
  );
  assert.throws(
    () => centerLoss({ features: matrix(2, 3), centers, labels: [0, 9] }),
    /centerLoss: labels must be integers in \[0, C\) = \[0, 4\), got 9 at 1/,
  );
  assert.throws(
    () => updateCenters(centers, matrix(3, 3)),
    /updateCenters: centerDelta must be 4×3/,
  );
  assert.throws(
    () => updateCenters(centers, centers, { alpha: 2 }),
    /options\.alpha must be in \[0, 1\]/,
  );
  assert.throws(() => lambdaSchedule(-1), /lambdaSchedule: iteration must be an integer ≥ 0/);
  assert.throws(
    () => matrix(2, 2, [1, 2, 3]),
    /matrix: data must have rows × cols = 2 × 2 = 4 elements, got 3/,
  );
});

import assert from "node:assert";
import {
  arcFaceLoss,
  type HeadInput,
  matrix,
  subCenterArcFaceHead,
  subCenterArcFaceLoss,
  subCenterCleaning,
} from "../mod.ts";
import { fixtureArray, type FixtureCase } from "../testing/fixtures.ts";
import { assertClose } from "../testing/assert_close.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import {
  checkReferenceOnlySuccessor,
  checkSuccessorFiniteDifferences,
  checkSuccessorFixtures,
  successorCasesOf,
  successorInput,
} from "../testing/successor_checks.ts";

Deno.test("subCenterArcFace: matches the PyTorch fixtures", (t) =>
  checkSuccessorFixtures(t, "subCenterArcFace", subCenterArcFaceLoss));

Deno.test("subCenterCleaning: matches pytorch-metric-learning's get_outliers", () => {
  for (const c of successorCasesOf("subCenterArcFace")) {
    const step = c.steps[0];
    const array = (name: string) =>
      fixtureArray({ name: c.name, arrays: step } as unknown as FixtureCase, name);
    const subCenters = c.options.subCenters as number;
    const r = subCenterCleaning(successorInput(c, step), { subCenters });
    assert.deepEqual(Array.from(r.dominant), Array.from(array("dominant")), c.name);
    assert.deepEqual(r.keep.map(Number), Array.from(array("keep")), c.name);
    assert.deepEqual(r.outliers, r.keep.flatMap((k, i) => (k ? [] : [i])));
  }
});

/** C classes of K rows and labels in [0, C). */
function subCenterInput(N: number, D: number, C: number, K: number, seed: number): HeadInput {
  const input = randomHeadInput({ N, D, C: C * K }, seed);
  return { ...input, labels: Array.from({ length: N }, (_, i) => (i * 5 + seed) % C) };
}

Deno.test("subCenterArcFace: gradients agree with finite differences", () => {
  const cases: [HeadInput, Record<string, unknown>][] = [
    [subCenterInput(3, 4, 4, 3, 1), { subCenters: 3 }],
    [subCenterInput(1, 3, 2, 2, 2), { subCenters: 2, easyMargin: true }],
    [subCenterInput(4, 5, 3, 1, 3), { subCenters: 1, scale: 16, margin: 1.2 }],
    [subCenterInput(6, 3, 2, 4, 5), { subCenters: 4 }],
  ];
  for (const [input, options] of cases) {
    checkSuccessorFiniteDifferences("subCenterArcFace", subCenterArcFaceLoss, [input], [options]);
  }
});

Deno.test("subCenterArcFace: K = 1 is ArcFace", () => {
  const input = randomHeadInput({ N: 5, D: 4, C: 6 }, 9);
  for (const options of [{}, { easyMargin: true, marginGradient: "detached" as const }]) {
    const a = subCenterArcFaceLoss(input, { ...options, subCenters: 1 });
    const b = arcFaceLoss(input, options);
    for (const key of ["logits", "gradFeatures", "gradWeights"] as const) {
      assertClose(a[key].data, b[key].data, { rtol: 1e-14, name: key });
    }
  }
});

Deno.test("subCenterArcFace: bad input is an error naming the argument", () => {
  const input = subCenterInput(2, 3, 4, 3, 4);
  assert.throws(
    () => subCenterArcFaceLoss({ ...input, labels: [0, 4] }),
    /subCenterArcFaceLoss: labels must be integers in \[0, C\) = \[0, 4\), got 4 at 1/,
  );
  assert.throws(
    () => subCenterArcFaceLoss(input, { subCenters: 5 }),
    /weights\.rows must be a multiple of options\.subCenters \(K = 5/,
  );
  assert.throws(() => subCenterArcFaceLoss(input, { subCenters: 1.5 }), /an integer ≥ 1/);
  assert.throws(
    () => subCenterCleaning(input, { maxAngle: 4 }),
    /subCenterCleaning: options\.maxAngle must be an angle in radians in \[0, π\], got 4/,
  );
  const x = matrix(1, 2, [1, 0]);
  const r = subCenterArcFaceLoss(
    { features: x, weights: matrix(2, 2, [1, 0, -1, 0]), labels: [0] },
    {
      subCenters: 1,
    },
  );
  assert.ok(Array.from(r.gradFeatures.data).every(Number.isFinite));
});

Deno.test("subCenterArcFace: the reference engine computes the head as the loss does (engines/subcenter_test.ts runs wasm, native and webgpu)", async () => {
  // 2 classes of 3 sub-centers: 6 weight rows, labels in [0, 2)
  const input = { ...randomHeadInput({ N: 2, D: 3, C: 6 }, 7), labels: [1, 0] };
  await checkReferenceOnlySuccessor(
    subCenterArcFaceHead(),
    subCenterArcFaceLoss(input),
    input,
    ["wasm", "native", "webgpu"],
  );
});

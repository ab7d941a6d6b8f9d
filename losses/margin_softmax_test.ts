// What every head must do whatever its target function: edge cases of the shared machine.
import assert from "node:assert";
import {
  arcFaceLoss,
  combinedMarginLoss,
  cosFaceLoss,
  type HeadInput,
  marginSoftmaxLoss,
  matrix,
  normFaceHead,
  normFaceLoss,
  softmaxLoss,
} from "../mod.ts";
import { assertAllFinite, type HeadLoss, randomHeadInput } from "../testing/loss_checks.ts";
import { assertClose } from "../testing/assert_close.ts";
import { HEAD_CATALOG } from "./catalog.ts";

const every = HEAD_CATALOG.map((entry) => ({
  name: entry.name,
  fn:
    ((input, options) =>
      marginSoftmaxLoss(input, entry.head(options), { reduction: options?.reduction })) as HeadLoss,
}));

/** Features lying exactly on a weight row (c = 1) and exactly opposite another (c = −1). */
function parallelInput(): HeadInput {
  const w = [3, 0, 0, 0, 2, 0, 0, 0, 1];
  return {
    features: matrix(3, 3, [6, 0, 0, 0, -4, 0, 0, 0, 0.5]),
    weights: matrix(3, 3, w),
    labels: [0, 1, 2],
  };
}

Deno.test("every loss stays finite at |cos θ| = 1 exactly, in both gradient modes", () => {
  for (const { name, fn } of every) {
    for (const marginGradient of ["exact", "detached"]) {
      const options = name === "softmax" || name === "normFace" ? {} : { marginGradient };
      const result = fn(parallelInput(), options);
      assertAllFinite(result, `${name} ${marginGradient}`);
    }
  }
});

Deno.test("every loss stays finite with zero feature and weight rows", () => {
  const input: HeadInput = {
    features: matrix(2, 3, [0, 0, 0, 1, 2, 3]),
    weights: matrix(3, 3, [0, 0, 0, 1, 0, 0, 0, 1, 0]),
    labels: [0, 2],
  };
  for (const { name, fn } of every) assertAllFinite(fn(input, {}), name);
});

Deno.test("every loss leaves its inputs untouched, float32 or float64", () => {
  for (const { name, fn } of every) {
    for (const float32 of [false, true]) {
      const input = randomHeadInput({ N: 4, D: 3, C: 5 }, 7);
      if (float32) {
        input.features = matrix(4, 3, Float32Array.from(input.features.data));
        input.weights = matrix(5, 3, Float32Array.from(input.weights.data));
      }
      const labels = Int32Array.from(input.labels);
      input.labels = labels;
      const before = [input.features.data, input.weights.data, labels].map((a) => a.slice());
      fn(input, {});
      const after = [input.features.data, input.weights.data, labels];
      after.forEach((a, k) => assert.deepEqual(a, before[k], `${name} changed an input`));
    }
  }
});

Deno.test("float32 inputs give the float64 result of the same values", () => {
  const input = randomHeadInput({ N: 5, D: 4, C: 6 }, 3);
  const rounded: HeadInput = {
    features: matrix(5, 4, Float64Array.from(Float32Array.from(input.features.data))),
    weights: matrix(6, 4, Float64Array.from(Float32Array.from(input.weights.data))),
    labels: input.labels,
  };
  const as32: HeadInput = {
    ...rounded,
    features: matrix(5, 4, Float32Array.from(rounded.features.data)),
    weights: matrix(6, 4, Float32Array.from(rounded.weights.data)),
  };
  assert.deepEqual(arcFaceLoss(as32).gradWeights.data, arcFaceLoss(rounded).gradWeights.data);
});

Deno.test("reductions: mean is sum / N, none reports the sum and the sum's gradients", () => {
  const input = randomHeadInput({ N: 6, D: 4, C: 5 }, 11);
  const mean = arcFaceLoss(input), sum = arcFaceLoss(input, { reduction: "sum" });
  const none = arcFaceLoss(input, { reduction: "none" });
  assertClose([mean.loss * 6], [sum.loss], { rtol: 1e-14, name: "mean × N" });
  assert.equal(none.loss, sum.loss);
  assert.deepEqual(none.losses, sum.losses);
  assert.deepEqual(none.gradWeights.data, sum.gradWeights.data);
  assertClose(mean.gradFeatures.data.map((g) => g * 6), sum.gradFeatures.data, {
    rtol: 1e-14,
    name: "mean gradient × N",
  });
});

Deno.test("CosFace's margin is a constant: detached and exact gradients agree", () => {
  const input = randomHeadInput({ N: 4, D: 5, C: 6 }, 5);
  assert.deepEqual(
    cosFaceLoss(input, { marginGradient: "detached" }).gradFeatures.data,
    cosFaceLoss(input).gradFeatures.data,
  );
});

Deno.test("detached ArcFace differs from exact ArcFace only through the target slope", () => {
  const input = randomHeadInput({ N: 4, D: 5, C: 6 }, 9);
  const exact = arcFaceLoss(input), detached = arcFaceLoss(input, { marginGradient: "detached" });
  assert.deepEqual(detached.logits.data, exact.logits.data);
  assert.notDeepEqual(detached.gradFeatures.data, exact.gradFeatures.data);
});

Deno.test("margin 0 reduces ArcFace, CosFace and the combined margin to NormFace", () => {
  const input = randomHeadInput({ N: 4, D: 5, C: 6 }, 13);
  const plain = normFaceLoss(input, { scale: 64 });
  for (
    const result of [
      arcFaceLoss(input, { margin: 0 }),
      cosFaceLoss(input, { margin: 0 }),
      combinedMarginLoss(input, { m1: 1, m2: 0, m3: 0 }),
    ]
  ) {
    assertClose(result.gradWeights.data, plain.gradWeights.data, { rtol: 1e-12, name: "m = 0" });
    assertClose([result.loss], [plain.loss], { rtol: 1e-12, name: "m = 0 loss" });
  }
});

Deno.test("large scales do not overflow: s = 1e4 gives finite, saturated losses", () => {
  const input = randomHeadInput({ N: 3, D: 4, C: 5 }, 17);
  const result = normFaceLoss(input, { scale: 1e4 });
  assertAllFinite(result, "normFace s = 1e4");
});

Deno.test("logits that overflow float64 are an error, never Infinity", () => {
  const input: HeadInput = {
    features: matrix(1, 2, [1e200, 1e200]),
    weights: matrix(2, 2, [1e200, 0, 0, 1e200]),
    labels: [0],
  };
  assert.throws(() => softmaxLoss(input), /softmaxLoss: .*overflowed/);
});

Deno.test("a head description is usable directly", () => {
  const input = randomHeadInput({ N: 3, D: 4, C: 5 }, 1);
  assert.deepEqual(
    marginSoftmaxLoss(input, normFaceHead({ scale: 12 })).losses,
    normFaceLoss(input, { scale: 12 }).losses,
  );
});

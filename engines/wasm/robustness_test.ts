// No silent wrong answers (issue 12): extreme norms, tiny losses, large C, and inputs float32
// cannot hold, each either computed right or refused naming the culprit.
import assert from "node:assert";
import { arcFaceHead, cosFaceHead, marginSoftmaxLoss, matrix } from "../../mod.ts";
import type { HeadInput, HeadSpec, Reduction } from "../../mod.ts";
import { prepareHead, prepareOn } from "../prepare_head.ts";
import { wasmEngine } from "./engine.ts";
import type { EngineResult } from "../engine.ts";
import { closeness } from "../../testing/assert_close.ts";
import { assertMatchesReference, shapeOf } from "../../testing/engine_checks.ts";
import { gaussian, seededRandom } from "../../testing/random.ts";

async function wasmRun(
  input: HeadInput,
  head: HeadSpec,
  reduction: Reduction = "mean",
): Promise<EngineResult> {
  await using prepared = await prepareHead(head, shapeOf(input), { engine: "wasm", threads: 2 });
  return await prepared.run(input, { reduction, logits: true });
}

Deno.test("engine-wasm: weight rows of norm 2e19 and more (float32 squares overflow)", async () => {
  for (const s of [2e19, 1e30, 1e36]) {
    const input = {
      features: matrix(2, 2, [1, 0, 0, 1]),
      weights: matrix(3, 2, [s, 0, 0, s, 0.6 * s, 0.8 * s]),
      labels: [0, 1],
    };
    const expected = marginSoftmaxLoss(input, cosFaceHead());
    assert.ok(Math.abs(expected.loss - 4.82) < 0.01, `reference ${expected.loss}`);
    const actual = await wasmRun(input, cosFaceHead());
    assertMatchesReference(actual, expected, { name: `s = ${s}`, rtol: 1e-5 });
  }
  // A row whose norm float32 cannot hold (elements are fine) is refused, naming the row.
  const big = 3e38;
  const input = {
    features: matrix(2, 2, [1, 0, 0, 1]),
    weights: matrix(3, 2, [1, 0, 0, 1, big, big]),
    labels: [0, 1],
  };
  await assert.rejects(
    () => wasmRun(input, cosFaceHead()),
    /wasm run: the norm of weights row 2 exceeds float32's range/,
  );
});

Deno.test("engine-wasm: tiny losses keep their relative precision", async () => {
  // ArcFace s = 64, every target at cosine ≈ 0.99 (z_y ≈ 51), every other class at cosine ≈ −0.33
  // (z ≈ −21): losses ≈ 39·e^(−72) ≈ 1e-30, gradients ≈ 1e-30 too.
  const N = 8, D = 16, C = 40;
  const x = new Float64Array(N * D), w = new Float64Array(C * D);
  for (let i = 0; i < N; i++) {
    const c = 0.985 + 0.0012 * i; // x_i = c·e_0 + √(1 − c²)·e_{1+i}
    x[i * D] = 3 * c;
    x[i * D + 1 + i] = 3 * Math.sqrt(1 - c * c);
  }
  for (let j = 1; j < C; j++) {
    const c = -0.3 - 0.002 * j; // w_j = (c·e_0 + √(1 − c²)·e_15)·‖w_j‖
    w[j * D] = (1 + j / 10) * c;
    w[j * D + 15] = (1 + j / 10) * Math.sqrt(1 - c * c);
  }
  w[0] = 2; // the target of every sample: e_0
  const input = {
    features: matrix(N, D, x),
    weights: matrix(C, D, w),
    labels: new Array(N).fill(0),
  };
  const head = arcFaceHead({ scale: 64, margin: 0.5 });
  const expected = marginSoftmaxLoss(input, head, { reduction: "sum" });
  const actual = await wasmRun(input, head, "sum");
  for (let i = 0; i < N; i++) {
    assert.ok(expected.losses[i] < 1e-27, `loss ${i} = ${expected.losses[i]} is not tiny`);
    const rel = Math.abs(actual.losses[i] - expected.losses[i]) / expected.losses[i];
    assert.ok(rel < 1e-4, `loss ${i}: ${actual.losses[i]} vs ${expected.losses[i]} (${rel})`);
  }
  // p_y − 1 = −Σ_{j≠y} p_j: the gradients, ≈ 1e-30, are float32-accurate relative to their size.
  assertMatchesReference(actual, expected, { name: "tiny", rtol: 1e-4 });
});

/**
 * The error of ∂/∂x at C classes: N 8, D 16, ArcFace, float32 inputs, class rows sharing one
 * component (so the sums over classes do not cancel), one thread and tiles of 4 classes (as many
 * tiles as 6.4 million classes in the default tiles of 128).
 */
async function featureErrorAt(C: number): Promise<number> {
  const N = 8, D = 16, normal = gaussian(seededRandom(C));
  const rows = (n: number, shared: number) =>
    Float32Array.from({ length: n * D }, (_, k) => normal() + (k % D === 0 ? shared : 0));
  const input = {
    features: matrix(N, D, rows(N, 0)),
    weights: matrix(C, D, rows(C, 3)),
    labels: Array.from({ length: N }, (_, i) => (i * 7919) % C),
  };
  const expected = marginSoftmaxLoss(input, arcFaceHead());
  const shape = { samples: N, dims: D, classes: C };
  await using prepared = await prepareOn(wasmEngine, arcFaceHead(), shape, { threads: 1, tile: 4 });
  const actual = await prepared.run(input);
  return closeness(actual.gradFeatures.data, expected.gradFeatures.data).relError;
}

Deno.test("engine-wasm: the error of ∂/∂x does not grow with C", async () => {
  // Float32 running sums across 50 000 tiles measured 1.1e-5 here; float64 ones 1.4e-6.
  const small = await featureErrorAt(2_000), large = await featureErrorAt(200_000);
  console.log(
    `gradFeatures error: C 2 000 ${small.toExponential(2)}, 200 000 ${large.toExponential(2)}`,
  );
  assert.ok(large < 3e-6, `at C = 200 000: ${large.toExponential(2)}`);
});

/** Two samples, four classes; `change` edits the arrays (a bias only for the linear head). */
function tinyInput(
  head: HeadSpec,
  change: (x: Float64Array, w: Float64Array, b: number[]) => void,
) {
  const x = Float64Array.from([1, 0, 0, 0, 1, 0]);
  const w = Float64Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]), bias = [0, 0, 0, 0];
  change(x, w, bias);
  const input: HeadInput = { features: matrix(2, 3, x), weights: matrix(4, 3, w), labels: [0, 1] };
  if (head.logits === "linear") input.bias = bias;
  return input;
}

Deno.test("engine-wasm: inputs float32 cannot hold are refused, naming the culprit", async (t) => {
  const softmax: HeadSpec = { name: "softmax", logits: "linear" };
  const featureNorm: HeadSpec = {
    name: "featureNorm",
    logits: "angular",
    radius: { kind: "featureNorm" },
    margin: { kind: "none" },
    marginGradient: "exact",
  };
  const cases: [
    string,
    HeadSpec,
    (x: Float64Array, w: Float64Array, b: number[]) => void,
    RegExp,
  ][] = [
    ["features", softmax, (x) => x[4] = 1e39, /features .* got 1e\+39 at 4 \(row 1, column 1\)/],
    ["bias", softmax, (_x, _w, b) => b[2] = -1e39, /bias .* got -1e\+39 at 2/],
    ["a target row of W", softmax, (_x, w) => w[1] = 1e39, /weights .* at 1 \(row 0, column 1\)/],
    ["another row of W", softmax, (_x, w) => w[8] = 1e39, /weights .* at 8 \(row 2, column 2\)/],
    ["another row, angular", cosFaceHead(), (_x, w) => w[10] = -1e39, /weights .* at 10 \(row 3, /],
    [
      "a target logit",
      softmax,
      (x, w) => (x.fill(1e20), w.fill(1e20)),
      /target logit of sample 0 /,
    ],
    [
      "the other logits",
      softmax,
      (x, w) => (x.fill(1e20), w.fill(1e20, 6)),
      /logits .* exceed float32's/,
    ],
    ["a feature norm", featureNorm, (x) => x.fill(3e38), /norm of features row 0 .* radius/],
  ];
  for (const [name, head, change, message] of cases) {
    await t.step(name, async () => {
      const error = await wasmRun(tinyInput(head, change), head).then(() => undefined, (e) => e);
      assert.ok(error instanceof RangeError, `${name}: ${error}`);
      assert.match(error.message, /^(wasm run|prepareHead \(wasm\)): /);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /gradWeights|overflowed/);
    });
  }
  await t.step("the scale", async () => {
    for (const scale of [1e39, NaN]) {
      const head: HeadSpec = { ...cosFaceHead(), radius: { kind: "scale", scale } } as HeadSpec;
      await assert.rejects(() => wasmRun(tinyInput(head, () => {}), head), /radius\.scale/);
    }
  });
});

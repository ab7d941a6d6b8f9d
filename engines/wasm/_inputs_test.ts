import assert from "node:assert";
import { arcFaceHead, matrix, sphereFaceHead } from "../../mod.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { sampleTerms } from "../host/samples.ts";
import {
  checkFloat32,
  fitsFloat32,
  FLOAT32_MAX,
  layOutWeights,
  packSamples,
  sampleMaths,
} from "./_inputs.ts";

Deno.test("fitsFloat32 / checkFloat32: float32's range, the culprit named", () => {
  assert.ok(fitsFloat32(FLOAT32_MAX) && fitsFloat32(-FLOAT32_MAX) && fitsFloat32(1e-60));
  assert.ok(!fitsFloat32(3.5e38) && !fitsFloat32(NaN) && !fitsFloat32(-Infinity));
  checkFloat32("w", "features", [1, -2, 3e38]);
  assert.throws(
    () => checkFloat32("here", "features", [0, 1, 2, 3, 4e38], 2),
    /^RangeError: here: features must lie within float32's range .*, got 4e\+38 at 4 \(row 2, column 0\)$/,
  );
  assert.throws(() => checkFloat32("here", "bias", [1, NaN]), /bias .* got NaN at 1$/);
  assert.throws(() => checkFloat32("here", "weights", [5e38], 3, 7), /at 7 \(row 2, column 1\)/);
});

Deno.test("sampleMaths: the target terms of engines/host, from float64 copies", () => {
  const input = randomHeadInput({ N: 5, D: 6, C: 7 }, 2);
  for (const head of [arcFaceHead(), sphereFaceHead()]) {
    const x = Float32Array.from(input.features.data), w = Float32Array.from(input.weights.data);
    const labels = Int32Array.from(input.labels, Number);
    const s = sampleMaths("t", head, { N: 5, D: 6, x, w, labels });
    const expected = sampleTerms(head, { N: 5, D: 6, labels, x, w, wRow: labels });
    assert.deepStrictEqual(s.zy, expected.zy);
    assert.deepStrictEqual(s.slope, expected.slope);
    for (let i = 0; i < 5; i++) {
      const y = labels[i];
      assert.deepStrictEqual(Array.from(s.w.subarray(i * 6, i * 6 + 6)), [
        ...w.subarray(y * 6, y * 6 + 6),
      ]);
    }
    // What the finishing step reads are copies: the caller may overwrite its arrays.
    const before = Array.from(s.x);
    x.fill(7);
    w.fill(7);
    assert.deepStrictEqual(Array.from(s.x), before);
  }
});

Deno.test("sampleMaths: names features, target rows and norms beyond float32", () => {
  const x = new Float64Array([1, 0, 0, 1]), w = new Float64Array([1, 0, 0, 1, 1, 1]);
  const run = (xx: Float64Array, ww: Float64Array) =>
    sampleMaths("t", arcFaceHead(), { N: 2, D: 2, x: xx, w: ww, labels: [0, 2] });
  assert.throws(() => run(new Float64Array([1, 0, 0, 5e38]), w), /features .* at 3 \(row 1/);
  assert.throws(
    () => run(x, new Float64Array([1, 0, 0, 1, 1, -5e38])),
    /weights .* at 5 \(row 2, column 1\)/,
  );
  const featureNorm = {
    name: "f",
    logits: "angular",
    radius: { kind: "featureNorm" },
    margin: { kind: "none" },
    marginGradient: "exact",
  } as const;
  assert.throws(
    () =>
      sampleMaths("t", featureNorm, {
        N: 2,
        D: 2,
        x: new Float64Array([3e38, 3e38, 0, 1]),
        w,
        labels: [0, 1],
      }),
    /t: the norm of features row 0 is .*, beyond float32's range/,
  );
});

Deno.test("packSamples: x̂ by blocks of 8 samples and of 8 features; padding", () => {
  const N = 3, D = 10, Dp = 16, Np = 8;
  const input = randomHeadInput({ N, D, C: 4 }, 3);
  const s = sampleMaths("t", arcFaceHead(), {
    N,
    D,
    x: Float64Array.from(input.features.data),
    w: Float64Array.from(input.weights.data),
    labels: input.labels,
  });
  const out = {
    xpack: new Float32Array(Np * Dp),
    xpackk: new Float32Array(Np * Dp),
    a: new Float32Array(Np),
    zy: new Float64Array(Np),
    labels: new Int32Array(Np).fill(5),
    weight: new Float32Array(Np).fill(9),
  };
  packSamples(s, out, Dp, 0.5);
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < D; k++) {
      const xh = Math.fround(s.x[i * D + k] / s.cx[i]);
      assert.equal(out.xpack[(i >> 3) * Dp * 8 + k * 8 + (i & 7)], xh);
      assert.equal(out.xpackk[(k >> 3) * Np * 8 + i * 8 + (k & 7)], xh);
    }
  }
  assert.deepStrictEqual(Array.from(out.labels), [...Array.from(input.labels), -1, -1, -1, -1, -1]);
  assert.deepStrictEqual(Array.from(out.weight), [0.5, 0.5, 0.5, 0, 0, 0, 0, 0]);
  assert.equal(out.a[0], 64);
});

Deno.test("layOutWeights: rows Dp apart, the padding untouched", () => {
  const w = matrix(2, 3, [1, 2, 3, 4, 5, 6]).data as Float64Array;
  const out = new Float32Array(2 * 8);
  layOutWeights(out, w, 3, 8);
  assert.deepStrictEqual(Array.from(out), [1, 2, 3, 0, 0, 0, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
  const same = new Float32Array(6);
  layOutWeights(same, Float32Array.from(w), 3, 3);
  assert.deepStrictEqual(Array.from(same), [1, 2, 3, 4, 5, 6]);
});

// The host half of the upload: float32 range checks naming the caller's indices, float64 norms.
import assert from "node:assert";
import { planLayout } from "./_layout.ts";
import { createStaging, FLOAT32_LIMIT, stageInput, stageRows } from "./_stage.ts";

const LIMITS = {
  maxStorageBufferBindingSize: 2 ** 27,
  maxBufferSize: 2 ** 31 - 1,
  maxComputeWorkgroupsPerDimension: 65535,
};

Deno.test("stage: angular rows are normalised with float64 norms, past float32's squares", () => {
  const out = new Float32Array(2 * 4), norms = new Float32Array(2);
  const rows = new Float64Array([3e19, 4e19, 0, 0, 0]);
  stageRows("t", "weights", rows.subarray(0, 4), { rows: 2, cols: 2, stride: 4 }, out, norms);
  assert.deepStrictEqual(Array.from(out), [0.6, 0.8, 0, 0, 0, 0, 0, 0].map(Math.fround));
  assert.deepStrictEqual(Array.from(norms), [Math.fround(5e19), 0]);
});

Deno.test("stage: values past float32's range are named by the caller's indices", () => {
  const layout = planLayout({ samples: 3, dims: 2, classes: 5 }, LIMITS, { angular: false });
  const view = {
    N: 3,
    D: 2,
    C: 5,
    x: new Float64Array(6),
    w: new Float64Array(10),
    labels: new Int32Array(3),
    bias: new Float64Array(5),
  };
  const staged = createStaging(layout);
  view.w[9] = 1e39;
  assert.throws(
    () => stageInput("webgpu run", layout, view, staged),
    /webgpu run: weights\.data\[9\] \(row 4, column 1\) = 1e\+39 is outside float32's range/,
  );
  view.w[9] = 0;
  view.x[4] = -FLOAT32_LIMIT;
  assert.throws(
    () => stageInput("r", layout, view, staged),
    /features\.data\[4\] \(row 2, column 0\)/,
  );
  view.x[4] = -3.4028234e38; // rounds to float32's largest
  view.bias[2] = Infinity;
  assert.throws(() => stageInput("r", layout, view, staged), /r: bias\[2\] = Infinity/);
});

Deno.test("stage: a row whose norm is past float32's range is refused where norms are used", () => {
  const big = new Float64Array(4).fill(3e38);
  const out = new Float32Array(4);
  assert.throws(
    () =>
      stageRows("r", "features", big, { rows: 1, cols: 4, stride: 4 }, out, new Float32Array(1)),
    /r: features row 0 has norm 6\.000e\+38, past float32's range/,
  );
  stageRows("r", "features", big, { rows: 1, cols: 4, stride: 4 }, out); // a linear head's rows
  assert.equal(out[0], Math.fround(3e38));
});

Deno.test("stage: padding stays zero and a run without a bias clears the last one", () => {
  const layout = planLayout({ samples: 2, dims: 3, classes: 2 }, LIMITS, { angular: false });
  const staged = createStaging(layout);
  const view = {
    N: 2,
    D: 3,
    C: 2,
    x: new Float32Array([1, 2, 3, 4, 5, 6]),
    w: new Float64Array([1, 1, 1, 2, 2, 2]),
    labels: new Int32Array([1, 0]),
    bias: new Float64Array([0.5, -0.5]),
  };
  stageInput("r", layout, view, staged);
  assert.deepStrictEqual(Array.from(staged.x.subarray(0, 4)), [1, 2, 3, 0]);
  assert.deepStrictEqual(Array.from(staged.x.subarray(layout.Dp, layout.Dp + 4)), [4, 5, 6, 0]);
  assert.deepStrictEqual(Array.from(staged.bias.subarray(0, 3)), [0.5, -0.5, 0]);
  assert.deepStrictEqual(Array.from(staged.labels.subarray(0, 3)), [1, 0, 0]);
  stageInput("r", layout, { ...view, bias: undefined }, staged);
  assert.deepStrictEqual(Array.from(staged.bias.subarray(0, 2)), [0, 0]);
});

Deno.test("stage: an angular head refuses a row of norm in (0, NORM_EPS]", () => {
  const layout = planLayout({ samples: 2, dims: 3, classes: 2 }, LIMITS, { angular: true });
  const staged = createStaging(layout);
  const view = {
    N: 2,
    D: 3,
    C: 2,
    x: Float64Array.of(1e-13, 0, 0, 0, 1, 0),
    w: Float64Array.of(1, 0, 0, 0, 1, 0),
    labels: Int32Array.of(0, 1),
  };
  // The targets pass would take it for a zero vector, where the reference divides by ε.
  assert.throws(
    () => stageInput("r", layout, view, staged),
    /r: features row 0 has norm 1\.000e-13/,
  );
  view.x[0] = 0; // a zero row stays a zero vector, as in the reference
  stageInput("r", layout, view, staged);
});

// The host half of the read-back: losses in float64 from (m − z_y, R), results, finiteness.
import assert from "node:assert";
import { planLayout } from "./_layout.ts";
import { finishRun, sampleLoss } from "./_finish.ts";

Deno.test("finish: the loss keeps its relative precision from 1e-300 to 1e3", () => {
  // loss = log(1 + R·e^d); for tiny u = R·e^d, log1p(u) = u − u²/2 + …
  for (const [d, R] of [[-690, 1], [-40, 3], [-17, 1.5], [-1e-3, 1]]) {
    const u = R * Math.exp(d);
    const exact = u < 1e-8 ? u - u * u / 2 : Math.log1p(u);
    assert.ok(Math.abs(sampleLoss(d, R) - exact) <= 2e-15 * exact, `${d}, ${R}`);
  }
  // e^d past float64's range either way: softplus(d + log R).
  assert.ok(Math.abs(sampleLoss(1000, 2) - (1000 + Math.log(2))) < 1e-12);
  const far = Math.exp(-800 + 300 * Math.LN10);
  assert.ok(Math.abs(sampleLoss(-800, 1e300) - far) < 1e-12 * far);
  assert.equal(sampleLoss(-3e38, 0), 0); // C = 1: no other class
});

Deno.test("finish: results from the read-back parts, with a clear error where one is not finite", () => {
  const limits = {
    maxStorageBufferBindingSize: 4 * 32 * 32,
    maxBufferSize: 2 ** 31 - 1,
    maxComputeWorkgroupsPerDimension: 65535,
  };
  // C = 40 in chunks of 32 classes: two ∂W parts.
  const layout = planLayout({ samples: 2, dims: 3, classes: 40 }, limits, { angular: false });
  assert.equal(layout.chunks.length, 2);
  const floats = new Float32Array(layout.readBytes / 4 + 2 * 40);
  floats.set([-40, 3, 0, 1]); // rows: (d, R) per sample
  floats.set([1, 2, 3, 4, 5, 6], 4); // ∂X
  for (let k = 0; k < 120; k++) floats[10 + k] = k; // ∂W, across both chunks
  floats.fill(0.5, 130, 170); // ∂b
  floats.fill(9, 170); // logits
  const settings = { reduction: "sum" as const, logits: true };
  const result = finishRun("r", layout, floats.buffer, settings, true);
  assert.deepStrictEqual(Array.from(result.losses), [sampleLoss(-40, 3), Math.log(2)]);
  assert.equal(result.loss, sampleLoss(-40, 3) + Math.log(2));
  assert.deepStrictEqual(Array.from(result.gradFeatures.data), [1, 2, 3, 4, 5, 6]);
  assert.deepStrictEqual(
    Array.from(result.gradWeights.data),
    Array.from({ length: 120 }, (_, k) => k),
  );
  assert.equal(result.gradBias?.length, 40);
  assert.deepStrictEqual([result.logits?.rows, result.logits?.cols, result.logits?.data[79]], [
    2,
    40,
    9,
  ]);
  const mean = finishRun("r", layout, floats.buffer, { reduction: "mean", logits: false }, false);
  assert.equal(mean.loss, (sampleLoss(-40, 3) + Math.log(2)) / 2);
  assert.equal(mean.gradBias, undefined);
  assert.equal(mean.logits, undefined);
  floats[10 + 100] = NaN;
  assert.throws(
    () => finishRun("webgpu run", layout, floats.buffer, settings, true),
    /webgpu run: gradWeights\[100\] is NaN, not finite in float32/,
  );
});

import assert from "node:assert";
import { centerLoss } from "./center.ts";
import { matrix } from "./matrix.ts";
import { updateCenters } from "./update_centers.ts";

Deno.test("updateCenters moves each center towards its samples and leaves its input alone", () => {
  const centers = matrix(2, 1, [0, 10]);
  const features = matrix(3, 1, [2, 4, 10]);
  const { centerDelta } = centerLoss({ features, centers, labels: [0, 0, 1] });
  // Δc_0 = ((0 − 2) + (0 − 4)) / 3 = −2; Δc_1 = 0.
  const updated = updateCenters(centers, centerDelta, { alpha: 0.5 });
  assert.deepEqual(Array.from(updated.data), [1, 10]);
  assert.deepEqual(Array.from(centers.data), [0, 10]);
  assert.deepEqual(Array.from(updateCenters(centers, centerDelta).data), [1, 10]); // α = 0.5
});

Deno.test("updateCenters never returns ±Infinity: a result past float64's range is an error", () => {
  const centers = matrix(1, 2, [1.7e308, 1]);
  const delta = matrix(1, 2, [-1.7e308, 0]);
  assert.throws(
    () => updateCenters(centers, delta, { alpha: 1 }),
    /^RangeError: updateCenters: the updated center at 0, centers − α·centerDelta = 1\.7e\+308 − 1 × -1\.7e\+308, overflows float64/,
  );
  assert.deepEqual(Array.from(centers.data), [1.7e308, 1]);
});

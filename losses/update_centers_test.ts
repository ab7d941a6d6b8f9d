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

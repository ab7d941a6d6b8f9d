import assert from "node:assert";
import { lambdaSchedule } from "./lambda_schedule.ts";

Deno.test("lambdaSchedule follows max(λ_min, base·(1 + γ·t)^−power)", () => {
  assert.equal(lambdaSchedule(0), 1000);
  assert.equal(lambdaSchedule(10), 1000 / 2.2);
  assert.equal(lambdaSchedule(10_000), 5);
  // clcarwin/sphereface_pytorch: max(5, 1500 / (1 + 0.1·t)).
  assert.equal(lambdaSchedule(90, { base: 1500, gamma: 0.1 }), 150);
  assert.equal(lambdaSchedule(4, { base: 16, gamma: 1, power: 2, min: 0 }), 16 / 25);
});

import assert from "node:assert";
import { lossesOf } from "./losses.ts";

Deno.test("lossesOf: log1p of the non-target sum keeps tiny losses, 1 − p_y never cancels", () => {
  // One non-target class at z = 0 and a target at z_y: loss = log(1 + e^(−z_y)).
  for (const zy of [1, 40, 70, 700]) {
    const { losses, rest, loss } = lossesOf([0, 1], [zy], 1, "sum");
    assert.equal(losses[0], Math.log1p(Math.exp(-zy)));
    assert.ok(losses[0] > 0, `z_y = ${zy}`);
    assert.equal(rest[0], Math.exp(-zy) / (1 + Math.exp(-zy)));
    assert.equal(loss, losses[0]);
  }
  // A target far below the others: q overflows, the loss is the gap.
  const { losses, rest } = lossesOf([800, 2], [0], 1, "mean");
  assert.ok(Math.abs(losses[0] - (800 + Math.log(2))) < 1e-12);
  assert.equal(rest[0], 1);
});

Deno.test("lossesOf: the reduction, and a mean whose sum overflows", () => {
  const stats = [0, 1, 2, 3], zy = [0, 0];
  const none = lossesOf(stats, zy, 2, "none");
  assert.deepStrictEqual(Array.from(none.losses), [Math.log1p(1), Math.log1p(3 * Math.exp(2))]);
  assert.equal(none.loss, none.losses[0] + none.losses[1]);
  assert.equal(lossesOf(stats, zy, 2, "mean").loss, none.loss / 2);
  const huge = lossesOf([1.7e308, 1, 1.7e308, 1], [0, 0], 2, "mean");
  assert.equal(huge.loss, 1.7e308);
  assert.equal(lossesOf([1.7e308, 1, 1.7e308, 1], [0, 0], 2, "sum").loss, Infinity);
});

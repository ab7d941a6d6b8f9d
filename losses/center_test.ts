import assert from "node:assert";
import { centerLoss } from "./center.ts";
import { matrix } from "./matrix.ts";
import { assertClose } from "../testing/assert_close.ts";
import { fixtureArray, fixtureInput } from "../testing/fixtures.ts";
import { casesOf, FIXTURE_RTOL, recordError, reportWorst } from "../testing/loss_checks.ts";
import { gaussian, seededRandom } from "../testing/random.ts";

Deno.test("center: matches the PyTorch fixtures", async (t) => {
  const cases = casesOf("center");
  for (const c of cases) {
    await t.step(c.name, () => {
      const result = centerLoss({
        features: matrix(c.N, c.D, fixtureInput(c, "features")),
        centers: matrix(c.C, c.D, fixtureInput(c, "centers")),
        labels: Array.from(fixtureArray(c, "labels")),
      }, c.options);
      assertClose([result.loss], fixtureArray(c, "loss"), {
        rtol: FIXTURE_RTOL,
        name: `${c.name} loss`,
      });
      for (const name of ["losses", "gradFeatures", "gradCenters", "centerDelta"] as const) {
        const value = result[name];
        const actual = value instanceof Float64Array ? value : value.data;
        const { relError } = assertClose(actual, fixtureArray(c, name), {
          rtol: FIXTURE_RTOL,
          name: `${c.name} ${name}`,
        });
        recordError("center", relError, `${c.name} ${name}`);
      }
    });
  }
  reportWorst("center", cases.length);
});

Deno.test("center: gradients agree with finite differences", () => {
  const normal = gaussian(seededRandom(4));
  const N = 5, D = 3, C = 4;
  const features = Array.from({ length: N * D }, normal);
  const centers = Array.from({ length: C * D }, normal);
  const labels = [0, 2, 2, 3, 0];
  for (const reduction of ["mean", "sum", "none"] as const) {
    const at = (f: number[], c: number[]) =>
      centerLoss({ features: matrix(N, D, f), centers: matrix(C, D, c), labels }, { reduction });
    const result = at(features, centers);
    for (
      const [name, values, grad] of [
        ["features", features, result.gradFeatures.data],
        ["centers", centers, result.gradCenters.data],
      ] as const
    ) {
      const numeric = values.map((_, k) => {
        const shift = (h: number) => values.map((v, j) => (j === k ? v + h : v));
        const loss = (h: number) =>
          name === "features" ? at(shift(h), centers).loss : at(features, shift(h)).loss;
        return (loss(1e-6) - loss(-1e-6)) / 2e-6;
      });
      assertClose(grad, numeric, { rtol: 1e-7, atol: 1e-9, name: `center ${name} ${reduction}` });
    }
  }
});

Deno.test("center: classes without samples get a zero update", () => {
  const r = centerLoss({ features: matrix(1, 2, [1, 1]), centers: matrix(3, 2), labels: [1] });
  assert.deepEqual(Array.from(r.centerDelta.data), [0, 0, -0.5, -0.5, 0, 0]);
  assert.deepEqual(Array.from(r.gradCenters.data), [0, 0, -1, -1, 0, 0]);
});

Deno.test("center: large but finite losses stay finite; overflowing ones are an error", () => {
  // ½·(1.5e154)² = 1.125e308 is finite although (1.5e154)² is not.
  const one = centerLoss({ features: matrix(1, 1, [1.5e154]), centers: matrix(1, 1), labels: [0] });
  assert.strictEqual(one.loss, 0.5 * 1.5e154 * 1.5e154);
  // The mean of two losses of 1.1e308 is finite although their sum is not.
  const two = centerLoss({
    features: matrix(2, 1, [1.5e154, -1.5e154]),
    centers: matrix(1, 1),
    labels: [0, 0],
  });
  assert.ok(Number.isFinite(two.loss) && Math.abs(two.loss / one.loss - 1) < 1e-15, `${two.loss}`);
  for (const data of [two.gradFeatures.data, two.gradCenters.data, two.centerDelta.data]) {
    assert.ok(Array.from(data).every(Number.isFinite));
  }
  // Their sum overflows: an error naming the output, never Infinity.
  assert.throws(
    () =>
      centerLoss({
        features: matrix(2, 1, [1.5e154, -1.5e154]),
        centers: matrix(1, 1),
        labels: [0, 0],
      }, {
        reduction: "sum",
      }),
    /^RangeError: centerLoss: loss overflowed float64/,
  );
  assert.throws(
    () =>
      centerLoss({
        features: matrix(1, 1, [1.7e308]),
        centers: matrix(1, 1, [-1.7e308]),
        labels: [0],
      }),
    /^RangeError: centerLoss: losses overflowed float64 at 0/,
  );
});

import assert from "node:assert";
import { tf, useTfjsBackend } from "./tfjs_setup.ts";
import { headLosses } from "../adapters/tfjs_head.ts";
import { closeness } from "../testing/assert_close.ts";
import { type FixtureCase, fixtureCases } from "../testing/fixtures.ts";
import { fixtureHeadInput, randomHeadInput } from "../testing/loss_checks.ts";
import { HEAD_CATALOG } from "../losses/catalog.ts";
import type { HeadSpec } from "../losses/head_spec.ts";
import type { HeadInput } from "../losses/types.ts";
import { matrix } from "../losses/matrix.ts";
import { sphereFaceHead } from "../losses/sphereface.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { softmaxHead } from "../losses/softmax.ts";
import { centerLoss } from "../losses/center.ts";
import { updateCenters } from "../losses/update_centers.ts";
import { lambdaSchedule } from "../losses/lambda_schedule.ts";
import { hasSyncGpuReadBack, tfjsHeadLoss, type TfjsHeadLossOptions } from "./tfjs_loss.ts";

/** float32 inputs and autodiff, relative to the largest gradient element. */
const RTOL = 1e-4;

/** Every head fixture case without a bias (the adapter takes features, weights and labels). */
function casesOf(loss: string): { name: string; head: HeadSpec; input: HeadInput }[] {
  const entry = HEAD_CATALOG.find((e) => e.name === loss)!;
  const cases = fixtureCases().filter((c: FixtureCase) => c.loss === loss && !c.arrays.bias);
  assert.ok(cases.length > 0, `${loss}: no fixture case`);
  return cases.map((c) => ({
    name: c.name,
    head: entry.head(c.options),
    input: fixtureHeadInput(c),
  }));
}

const BACKENDS = ["cpu", "wasm", "webgpu"] as const;

// tfjs-webgpu has no synchronous read-back without a 2-D canvas (Deno): the adapter says so.
const SYNC_READ_BACK = hasSyncGpuReadBack();

/** A 4×3 batch on 5 classes as tensors (call inside tf.tidy). */
function tensors(seed = 3) {
  const input = randomHeadInput({ N: 4, D: 3, C: 5 }, seed);
  return {
    input,
    x: tf.tensor2d(Float32Array.from(input.features.data), [4, 3]),
    w: tf.tensor2d(Float32Array.from(input.weights.data), [5, 3]),
    y: tf.tensor1d(Int32Array.from(input.labels), "int32"),
  };
}

Deno.test("tfjsHeadLoss: evaluating leaves the centers alone; each backward pass moves them once", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  const centers = matrix(5, 3, Array.from({ length: 15 }, (_, k) => (k % 4) - 1.5));
  const start = Float64Array.from(centers.data);
  const loss = tfjsHeadLoss(softmaxHead(), { center: { centers, weight: 0.1, alpha: 0.5 } });
  tf.tidy(() => {
    const { input, x, w, y } = tensors();
    // Two evaluations, no gradient taken: the centers stay where they were.
    const first = loss(x, w, y).dataSync()[0], second = loss(x, w, y).dataSync()[0];
    assert.deepStrictEqual(centers.data, start);
    assert.strictEqual(first, second);
    // One backward pass: one step of the paper's rule, from the features of that pass (float32).
    const features = matrix(4, 3, Float64Array.from(x.dataSync()));
    const { centerDelta } = centerLoss({ features, centers, labels: input.labels });
    const expected = updateCenters(centers, centerDelta, { alpha: 0.5 }).data;
    tf.grads((a, b) => loss(a as tf.Tensor2D, b as tf.Tensor2D, y))([x, w]);
    assert.deepStrictEqual(centers.data, expected);
    assert.notDeepStrictEqual(centers.data, start);
    // Evaluating again still moves nothing.
    loss(x, w, y);
    assert.deepStrictEqual(centers.data, expected);
  });
});

Deno.test("tfjsHeadLoss: malformed options and heads are clear errors when the loss is made", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  const centers = matrix(5, 3);
  const bad: [unknown, unknown, RegExp][] = [
    [softmaxHead(), null, /^TypeError: tfjsHeadLoss: options must be an object, got null$/],
    [
      softmaxHead(),
      { reduce: "sum" },
      /^TypeError: tfjsHeadLoss: unknown option "reduce"; this loss takes "reduction", "center"$/,
    ],
    [
      softmaxHead(),
      { reduction: "avg" },
      /^RangeError: tfjsHeadLoss: options\.reduction must be one of "mean", "sum", "none", got "avg"$/,
    ],
    ...[NaN, Infinity, -Infinity, -0.1, "1"].map((weight): [unknown, unknown, RegExp] => [
      softmaxHead(),
      { center: { centers, weight } },
      new RegExp(
        `^RangeError: tfjsHeadLoss: options\\.center\\.weight must be a finite number ≥ 0, got ${
          typeof weight === "string" ? `"${weight}"` : weight
        }$`,
      ),
    ]),
    [
      softmaxHead(),
      { center: { centers } },
      /^TypeError: tfjsHeadLoss: options\.center\.weight \(λ_c\) must be a finite number ≥ 0, got undefined$/,
    ],
    [
      softmaxHead(),
      { center: { centers, weight: 1, alpha: 2 } },
      /^RangeError: tfjsHeadLoss: options\.center\.alpha must be in \[0, 1\], got 2$/,
    ],
    [
      softmaxHead(),
      { center: { centers, weight: 1, wieght: 2 } },
      /^TypeError: tfjsHeadLoss: unknown option "center\.wieght"; options\.center takes "centers", "weight", "alpha"$/,
    ],
    [
      softmaxHead(),
      { center: null },
      /^TypeError: tfjsHeadLoss: options\.center must be an object \{centers, weight, alpha\?\}, got null$/,
    ],
    [
      softmaxHead(),
      { center: { centers: [0, 0], weight: 1 } },
      /^RangeError: tfjsHeadLoss: options\.center\.centers\.rows must be a positive integer/,
    ],
    [
      { ...arcFaceHead(), marginGradient: "bogus" },
      {},
      /^RangeError: tfjsHeadLoss: head\.marginGradient must be one of "exact", "detached", got "bogus"$/,
    ],
    [{}, {}, /^RangeError: tfjsHeadLoss: head\.logits must be one of "linear", "angular"/],
  ];
  for (const [head, options, message] of bad) {
    assert.throws(
      () => tfjsHeadLoss(head as HeadSpec, options as TfjsHeadLossOptions),
      (e: Error) => {
        assert.match(String(e), message);
        return true;
      },
      JSON.stringify(options),
    );
  }
});

Deno.test("tfjsHeadLoss: shapes and per-step heads are checked at every call, in its own words", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  tf.tidy(() => {
    const { x, w, y } = tensors();
    const loss = tfjsHeadLoss(softmaxHead());
    const cases: [() => unknown, RegExp][] = [
      [
        () => loss(x, tf.zeros([5, 4]) as tf.Tensor2D, y),
        /^RangeError: tfjsHeadLoss: weights must be a 2-D tensor C×D with D = 3 \(the columns of features\), got \[5, 4\]$/,
      ],
      [
        () => loss(x, tf.zeros([15]) as unknown as tf.Tensor2D, y),
        /^RangeError: tfjsHeadLoss: weights must be a 2-D tensor C×D with D = 3 .* got \[15\]$/,
      ],
      [
        () => loss(tf.zeros([12]) as unknown as tf.Tensor2D, w, y),
        /^TypeError: tfjsHeadLoss: features must be a 2-D tensor N×D, got \[12\]$/,
      ],
      [
        () => loss(x, w, tf.tensor1d([0, 1, 2], "int32")),
        /^RangeError: tfjsHeadLoss: labels must be a 1-D tensor of N = 4 labels \(one per row of features\), got \[3\]$/,
      ],
      [
        () =>
          tfjsHeadLoss(softmaxHead(), { center: { centers: matrix(4, 3), weight: 1 } })(x, w, y),
        /^RangeError: tfjsHeadLoss: options\.center\.centers must be C×D = 5×3 \(one center per row of weights\), got 4×3$/,
      ],
      [
        () =>
          tfjsHeadLoss(() =>
            ({ ...sphereFaceHead(), margin: { kind: "psi", margin: 2.5, lambda: 0 } }) as HeadSpec
          )(x, w, y),
        /^RangeError: tfjsHeadLoss: head\.margin\.margin must be an integer from 1 to 16, got 2\.5$/,
      ],
    ];
    for (const [call, message] of cases) {
      assert.throws(call, (e: Error) => {
        assert.match(String(e), message);
        assert.doesNotMatch(e.message, /^matrix:/);
        return true;
      });
    }
  });
});

Deno.test({
  name: "tfjsHeadLoss on tfjs-webgpu without a canvas: a clear error",
  ignore: SYNC_READ_BACK,
  async fn() {
    const availability = await useTfjsBackend("webgpu");
    if (!availability.available) {
      console.log(`tfjs-webgpu unavailable, nothing to refuse: ${availability.reason}`);
      return;
    }
    const input = randomHeadInput({ N: 4, D: 3, C: 5 }, 5);
    tf.tidy(() => {
      const x = tf.tensor2d(Float32Array.from(input.features.data), [4, 3]);
      const w = tf.tensor2d(Float32Array.from(input.weights.data), [5, 3]);
      const y = tf.tensor1d(Int32Array.from(input.labels), "int32");
      assert.throws(
        () => tfjsHeadLoss(HEAD_CATALOG[0].head())(x, w, y),
        /tfjsHeadLoss: the tfjs webgpu backend cannot read tensors back synchronously/,
      );
    });
  },
});

for (const backend of BACKENDS) {
  if (backend === "webgpu" && !SYNC_READ_BACK) continue;
  const availability = await useTfjsBackend(backend);
  if (!availability.available) {
    console.log(
      `tfjs-${backend}: unavailable, its adapter tests are skipped: ${availability.reason}`,
    );
  }

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: gradients equal tfjs autodiff of the same head on the fixtures`,
    ignore: !availability.available,
    async fn(t) {
      assert.ok((await useTfjsBackend(backend)).available);
      for (const { name: loss } of HEAD_CATALOG) {
        await t.step(loss, () => {
          let worst = 0;
          for (const { head, input } of casesOf(loss)) {
            const { rows: N, cols: D } = input.features, C = input.weights.rows;
            tf.tidy(() => {
              const x = tf.tensor2d(Float32Array.from(input.features.data), [N, D]);
              const w = tf.tensor2d(Float32Array.from(input.weights.data), [C, D]);
              const y = tf.tensor1d(Int32Array.from(input.labels), "int32");
              const ours = tf.grads((a, b) =>
                tfjsHeadLoss(head)(a as tf.Tensor2D, b as tf.Tensor2D, y)
              )(
                [x, w],
              );
              const auto = tf.grads((a, b) =>
                tf.mean(headLosses(head, {
                  features: a as tf.Tensor2D,
                  weights: b as tf.Tensor2D,
                  labels: y,
                }))
              )([x, w]);
              for (let k = 0; k < 2; k++) {
                const rel = closeness(ours[k].dataSync(), auto[k].dataSync()).relError;
                worst = Math.max(worst, rel);
              }
            });
          }
          console.log(
            `tfjs-${backend} ${loss}: worst relative gradient difference ${worst.toExponential(2)}`,
          );
          assert.ok(worst <= RTOL, `${loss}: ${worst} > ${RTOL}`);
        });
      }
    },
  });

  Deno.test({
    name: `tfjsHeadLoss on tfjs-${backend}: a few Adam steps make every loss fall`,
    ignore: !availability.available,
    async fn(t) {
      assert.ok((await useTfjsBackend(backend)).available);
      const input = randomHeadInput({ N: 32, D: 4, C: 5 }, 11);
      type Run = [string, HeadSpec | (() => HeadSpec), Parameters<typeof tfjsHeadLoss>[1]?];
      const runs: Run[] = HEAD_CATALOG.map((
        e,
      ) => [e.name, e.head(e.name === "lSoftmax" || e.name === "sphereFace" ? { margin: 2 } : {})]);
      runs.push(["softmax + center", HEAD_CATALOG[0].head(), {
        center: { centers: matrix(5, 4), weight: 0.1 },
      }]);
      // λ annealed from 100 towards 5 as the steps go, read by the loss at every call.
      let step = 0;
      runs.push([
        "sphereFace, λ scheduled",
        () => sphereFaceHead({ margin: 2, lambda: lambdaSchedule(step, { base: 100, gamma: 1 }) }),
      ]);
      for (const [name, head, options] of runs) {
        await t.step(name, () => {
          const x = tf.variable(tf.tensor2d(Float32Array.from(input.features.data), [32, 4]));
          const w = tf.variable(tf.tensor2d(Float32Array.from(input.weights.data), [5, 4]));
          const y = tf.tensor1d(Int32Array.from(input.labels), "int32");
          const loss = tfjsHeadLoss(head, options);
          const optimizer = tf.train.adam(0.05);
          const values: number[] = [];
          for (step = 0; step < 20; step++) {
            const value = optimizer.minimize(() => loss(x, w, y), true)!;
            values.push(value.dataSync()[0]);
            value.dispose();
          }
          tf.dispose([x, w, y]);
          optimizer.dispose();
          assert.ok(values.every(Number.isFinite), `${name}: ${values}`);
          assert.ok(values.at(-1)! < 0.8 * values[0], `${name}: ${values[0]} → ${values.at(-1)}`);
        });
      }
    },
  });
}

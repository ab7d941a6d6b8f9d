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
import { lambdaSchedule } from "../losses/lambda_schedule.ts";
import { hasSyncGpuReadBack, tfjsHeadLoss } from "./tfjs_loss.ts";

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

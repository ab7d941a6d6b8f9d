import assert from "node:assert";
import { tf, useTfjsBackend } from "../backends/_tfjs_setup.ts";
import { headLosses } from "../backends/_tfjs_head.ts";
import { closeness } from "../testing/assert_close.ts";
import { type FixtureCase, fixtureCases } from "../testing/fixtures.ts";
import { fixtureHeadInput, randomHeadInput } from "../testing/loss_checks.ts";
import { HEAD_CATALOG } from "../losses/catalog.ts";
import type { HeadSpec } from "../losses/head_spec.ts";
import type { HeadInput } from "../losses/types.ts";
import { matrix } from "../losses/matrix.ts";
import { tfjsHeadLoss } from "./tfjs_loss.ts";

/** float32 inputs and autodiff, relative to the largest gradient element; measured ≤ 6e-7 (random inputs). */
const RTOL = 1e-4;

/** Inputs per loss: a sample of the PyTorch fixtures when they exist, seeded random ones if not. */
function inputsOf(loss: string): { name: string; head: HeadSpec; input: HeadInput }[] {
  const entry = HEAD_CATALOG.find((e) => e.name === loss)!;
  let cases: FixtureCase[];
  try {
    cases = fixtureCases().filter((c) => c.loss === loss && !c.arrays.bias);
  } catch {
    cases = [];
  }
  if (cases.length > 0) {
    return cases.slice(0, 4).map((c) => ({
      name: c.name,
      head: entry.head(c.options),
      input: fixtureHeadInput(c),
    }));
  }
  console.log(`${loss}: fixtures/manifest.json missing, using seeded random inputs`);
  return [1, 2, 3].map((seed) => ({
    name: `random ${seed}`,
    head: entry.head(),
    input: randomHeadInput({ N: 6, D: 5, C: 4 }, seed),
  }));
}

Deno.test("tfjsHeadLoss gradients equal tfjs autodiff of the same head", async (t) => {
  assert.ok((await useTfjsBackend("cpu")).available);
  for (const { name: loss } of HEAD_CATALOG) {
    await t.step(loss, () => {
      let worst = 0;
      for (const { head, input } of inputsOf(loss)) {
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
      console.log(`${loss}: worst relative gradient difference ${worst.toExponential(2)}`);
      assert.ok(worst <= RTOL, `${loss}: ${worst} > ${RTOL}`);
    });
  }
});

Deno.test("tfjsHeadLoss: a few Adam steps make every loss fall", async (t) => {
  assert.ok((await useTfjsBackend("cpu")).available);
  const input = randomHeadInput({ N: 32, D: 4, C: 5 }, 11);
  const runs: [string, HeadSpec, Parameters<typeof tfjsHeadLoss>[1]?][] = HEAD_CATALOG.map((
    e,
  ) => [e.name, e.head(e.name === "lSoftmax" || e.name === "sphereFace" ? { margin: 2 } : {})]);
  runs.push(["softmax + center", HEAD_CATALOG[0].head(), {
    center: { centers: matrix(5, 4), weight: 0.1 },
  }]);
  for (const [name, head, options] of runs) {
    await t.step(name, () => {
      const x = tf.variable(tf.tensor2d(Float32Array.from(input.features.data), [32, 4]));
      const w = tf.variable(tf.tensor2d(Float32Array.from(input.weights.data), [5, 4]));
      const y = tf.tensor1d(Int32Array.from(input.labels), "int32");
      const loss = tfjsHeadLoss(head, options);
      const optimizer = tf.train.adam(0.05);
      const values: number[] = [];
      for (let step = 0; step < 20; step++) {
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
});

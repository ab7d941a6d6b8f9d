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
import { cosFaceHead } from "../losses/cosface.ts";
import { centerLoss } from "../losses/center.ts";
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { updateCenters } from "../losses/update_centers.ts";
import { lambdaSchedule } from "../losses/lambda_schedule.ts";
import { nativeEngine } from "../engines/native/engine.ts";
import {
  hasSyncGpuReadBack,
  tfjsHeadLoss,
  type TfjsHeadLossOptions,
  type TfjsLossEngine,
} from "./tfjs_loss.ts";

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

for (const engine of ["reference", "wasm"] as const) {
  Deno.test(`tfjsHeadLoss (${engine}): evaluating leaves the centers alone; each backward pass moves them once, as the reference does`, async () => {
    assert.ok((await useTfjsBackend("cpu")).available);
    await centersMoveOnce(engine);
  });
}

async function centersMoveOnce(engine: TfjsLossEngine) {
  const centers = matrix(5, 3, Array.from({ length: 15 }, (_, k) => (k % 4) - 1.5));
  const start = Float64Array.from(centers.data);
  using loss = disposing(
    tfjsHeadLoss(softmaxHead(), { center: { centers, weight: 0.1, alpha: 0.5 }, engine }),
  );
  await Promise.resolve();
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
}

/** A loss that `using` disposes. */
function disposing<T extends { dispose(): void }>(loss: T): T & Disposable {
  return Object.assign(loss, { [Symbol.dispose]: () => loss.dispose() });
}

Deno.test("tfjsHeadLoss: malformed options and heads are clear errors when the loss is made", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  const centers = matrix(5, 3);
  const bad: [unknown, unknown, RegExp][] = [
    [softmaxHead(), null, /^TypeError: tfjsHeadLoss: options must be an object, got null$/],
    [
      softmaxHead(),
      { reduce: "sum" },
      /^TypeError: tfjsHeadLoss: unknown option "reduce"; this loss takes "reduction", "center", "engine", "threads", "wasmMode", "onState"$/,
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
    [
      softmaxHead(),
      { engine: "gpu" },
      /^RangeError: tfjsHeadLoss: options\.engine must be one of "reference", "wasm", "webgpu", "native", got "gpu"$/,
    ],
    [
      softmaxHead(),
      { threads: 0 },
      /^RangeError: tfjsHeadLoss: options\.threads must be an integer from 1 to 64, got 0$/,
    ],
    [
      softmaxHead(),
      { wasmMode: "spin" },
      /^RangeError: tfjsHeadLoss: options\.wasmMode must be "blocking" or "calling-thread", got "spin"$/,
    ],
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

/** The engines that run on a tfjs backend here. */
/** Whether engine-native runs here (Deno with --allow-ffi and a CBLAS). */
const NATIVE = await nativeEngine.availability();
if (!NATIVE.available) console.log(`SKIPPED engine "native": ${NATIVE.reason}`);

function enginesOf(backend: typeof BACKENDS[number]): TfjsLossEngine[] {
  if (backend === "webgpu") return SYNC_READ_BACK ? ["webgpu", "reference"] : ["webgpu"];
  return ["reference", "wasm", ...(NATIVE.available ? ["native" as const] : [])];
}

/** The tensors' values, read asynchronously (tfjs-webgpu reads back only so in Deno); disposes them. */
async function values(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  const out = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(tensors);
  return out;
}

Deno.test({
  name: "tfjsHeadLoss on tfjs-webgpu without a canvas: the engines that read back refuse clearly",
  ignore: SYNC_READ_BACK,
  async fn() {
    const availability = await useTfjsBackend("webgpu");
    if (!availability.available) {
      console.log(`tfjs-webgpu unavailable, nothing to refuse: ${availability.reason}`);
      return;
    }
    const input = randomHeadInput({ N: 4, D: 3, C: 5 }, 5);
    for (const engine of ["reference", "wasm"] as const) {
      using loss = disposing(tfjsHeadLoss(HEAD_CATALOG[0].head(), { engine }));
      tf.tidy(() => {
        const x = tf.tensor2d(Float32Array.from(input.features.data), [4, 3]);
        const w = tf.tensor2d(Float32Array.from(input.weights.data), [5, 3]);
        const y = tf.tensor1d(Int32Array.from(input.labels), "int32");
        assert.throws(
          () => loss(x, w, y),
          new RegExp(
            `tfjsHeadLoss: engine "${engine}" reads the tensors back synchronously, which the ` +
              "tfjs webgpu backend cannot do",
          ),
        );
      });
    }
  },
});

Deno.test("tfjsHeadLoss (wasm): a non-finite weight or feature is a clear error naming it", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  using loss = disposing(tfjsHeadLoss(arcFaceHead(), { engine: "wasm" }));
  tf.tidy(() => {
    const { x, w, y } = tensors();
    const bad = (t: tf.Tensor2D, k: number) => {
      const data = Float32Array.from(t.dataSync());
      data[k] = NaN;
      return tf.tensor2d(data, t.shape);
    };
    // Labels 3, 0, 2, 4: row 1 of W is no sample's class (the kernels find it), row 4 is one.
    for (const k of [5, 14]) {
      assert.throws(
        () => loss(x, bad(w, k), y),
        new RegExp(`weights must lie within float32's range .* got NaN at ${k} \\(row`),
      );
    }
    assert.throws(
      () => loss(bad(x, 4), w, y),
      /features must lie within float32's range .* got NaN at 4/,
    );
  });
});

Deno.test('tfjsHeadLoss: engine "webgpu" on another backend is a clear error', async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  using loss = disposing(tfjsHeadLoss(softmaxHead(), { engine: "webgpu" }));
  tf.tidy(() => {
    const { x, w, y } = tensors();
    assert.throws(
      () => loss(x, w, y),
      /^Error: tfjsHeadLoss: engine "webgpu" runs on tfjs-webgpu's device; the active tfjs backend is "cpu"/,
    );
  });
});

/** A small MLP body (16 → 8, relu) and a head's weights, as variables from fixed values. */
function model(seed: number, C: number) {
  const input = randomHeadInput({ N: 24, D: 16, C: 16 }, seed);
  const head = randomHeadInput({ N: 1, D: 8, C }, seed + 1);
  return {
    x0: Float32Array.from(input.features.data),
    w1: Float32Array.from(input.weights.data.slice(0, 16 * 8)).map((v) => v / 8),
    w: Float32Array.from(head.weights.data),
    labels: Int32Array.from({ length: 24 }, (_, i) => (i * 5 + seed) % C),
  };
}

/**
 * One optimiser step of the body and the head's weights with `engine` on `backend`, rows
 * [0, rows) of the batch; the updated variables and the loss.
 */
async function oneStep(
  backend: typeof BACKENDS[number],
  engine: TfjsLossEngine,
  head: HeadSpec,
  optimizer: "sgd" | "adam",
  options: { rows?: number; seed?: number; C?: number } = {},
) {
  assert.ok((await useTfjsBackend(backend)).available);
  const C = options.C ?? 12, m = model(options.seed ?? 21, C), N = options.rows ?? 24;
  const w1 = tf.variable(tf.tensor2d(m.w1, [16, 8]));
  const w = tf.variable(tf.tensor2d(m.w, [C, 8]));
  const x0 = tf.tensor2d(m.x0.subarray(0, N * 16), [N, 16]);
  const y = tf.tensor1d(m.labels.subarray(0, N), "int32");
  using loss = disposing(tfjsHeadLoss(head, { engine }));
  const step = optimizer === "sgd" ? tf.train.sgd(0.5) : tf.train.adam(0.01);
  const value = step.minimize(() => loss(tf.relu(tf.matMul(x0, w1)) as tf.Tensor2D, w, y), true)!;
  const [l, a, b] = await values([value, w1, w]);
  tf.dispose([x0, y]);
  step.dispose();
  return { loss: l[0], w1: a, w: b, start: m };
}

/** The worst relative difference of the updated variables, and of their updates. */
function updateErrors(ours: Awaited<ReturnType<typeof oneStep>>, ref: typeof ours) {
  const delta = (after: Float32Array, before: Float32Array) => after.map((v, k) => v - before[k]);
  return {
    weights: Math.max(closeness(ours.w1, ref.w1).relError, closeness(ours.w, ref.w).relError),
    updates: Math.max(
      closeness(delta(ours.w1, ref.start.w1), delta(ref.w1, ref.start.w1)).relError,
      closeness(delta(ours.w, ref.start.w), delta(ref.w, ref.start.w)).relError,
    ),
  };
}

for (const backend of BACKENDS) {
  const availability = await useTfjsBackend(backend);
  if (!availability.available) {
    console.log(
      `tfjs-${backend}: unavailable, its adapter tests are skipped: ${availability.reason}`,
    );
  }
  const ignore = !availability.available;

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: gradients equal tfjs autodiff of the same head on the fixtures, on every engine`,
    ignore,
    async fn(t) {
      for (const engine of enginesOf(backend)) {
        for (const { name: loss } of HEAD_CATALOG) {
          await t.step(`${engine}: ${loss}`, async () => {
            assert.ok((await useTfjsBackend(backend)).available);
            let worst = 0;
            for (const { head, input } of casesOf(loss)) {
              const { rows: N, cols: D } = input.features, C = input.weights.rows;
              using ours = disposing(tfjsHeadLoss(head, { engine }));
              const grads = tf.tidy(() => {
                const x = tf.tensor2d(Float32Array.from(input.features.data), [N, D]);
                const w = tf.tensor2d(Float32Array.from(input.weights.data), [C, D]);
                const y = tf.tensor1d(Int32Array.from(input.labels), "int32");
                return [
                  ...tf.grads((a, b) => ours(a as tf.Tensor2D, b as tf.Tensor2D, y))([x, w]),
                  ...tf.grads((a, b) =>
                    tf.mean(headLosses(head, {
                      features: a as tf.Tensor2D,
                      weights: b as tf.Tensor2D,
                      labels: y,
                    }))
                  )([x, w]),
                ];
              });
              const [gx, gw, ax, aw] = await values(grads);
              worst = Math.max(worst, closeness(gx, ax).relError, closeness(gw, aw).relError);
            }
            console.log(
              `tfjs-${backend} ${engine} ${loss}: worst relative gradient difference ${
                worst.toExponential(2)
              }`,
            );
            assert.ok(worst <= RTOL, `${loss}: ${worst} > ${RTOL}`);
          });
        }
      }
    },
  });

  Deno.test({
    name: `tfjsHeadLoss on tfjs-${backend}: 20 Adam steps make every loss fall, on every engine`,
    ignore,
    async fn(t) {
      const input = randomHeadInput({ N: 32, D: 4, C: 5 }, 11);
      type Run = [string, HeadSpec | (() => HeadSpec), Parameters<typeof tfjsHeadLoss>[1]?];
      let step = 0;
      const runs: Run[] = [
        ...HEAD_CATALOG.map((e): Run => [
          e.name,
          e.head(e.name === "lSoftmax" || e.name === "sphereFace" ? { margin: 2 } : {}),
        ]),
        ["softmax + center", HEAD_CATALOG[0].head(), {
          center: { centers: matrix(5, 4), weight: 0.1 },
        }],
        // λ annealed from 100 towards 5 as the steps go, read by the loss at every call.
        [
          "sphereFace, λ scheduled",
          () =>
            sphereFaceHead({ margin: 2, lambda: lambdaSchedule(step, { base: 100, gamma: 1 }) }),
        ],
      ];
      for (const engine of enginesOf(backend)) {
        for (const [name, head, options] of runs) {
          await t.step(`${engine}: ${name}`, async () => {
            assert.ok((await useTfjsBackend(backend)).available);
            const x = tf.variable(tf.tensor2d(Float32Array.from(input.features.data), [32, 4]));
            const w = tf.variable(tf.tensor2d(Float32Array.from(input.weights.data), [5, 4]));
            const y = tf.tensor1d(Int32Array.from(input.labels), "int32");
            using loss = disposing(tfjsHeadLoss(head, { ...options, engine }));
            const optimizer = tf.train.adam(0.05);
            const steps: tf.Scalar[] = [];
            for (step = 0; step < 20; step++) {
              steps.push(optimizer.minimize(() => loss(x, w, y), true)!);
            }
            const found = (await values(steps)).map((v) => v[0]);
            tf.dispose([x, w, y]);
            optimizer.dispose();
            assert.ok(found.every(Number.isFinite), `${name}: ${found}`);
            assert.ok(found.at(-1)! < 0.8 * found[0], `${name}: ${found[0]} → ${found.at(-1)}`);
          });
        }
      }
    },
  });

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: after one step of an MLP body and the head's weights, every engine's updated weights are the reference's`,
    ignore,
    async fn(t) {
      for (const engine of enginesOf(backend).filter((e) => e !== "reference")) {
        for (const entry of HEAD_CATALOG) {
          const head = entry.head();
          for (const optimizer of ["sgd", "adam"] as const) {
            await t.step(`${engine}: ${entry.name}, ${optimizer}`, async () => {
              const ref = await oneStep("cpu", "reference", head, optimizer);
              const ours = await oneStep(backend, engine, head, optimizer);
              const { weights, updates } = updateErrors(ours, ref);
              assert.ok(Math.abs(ours.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss));
              assert.ok(weights <= RTOL, `updated weights: ${weights} > ${RTOL}`);
              // SGD's update is the gradient itself; Adam's first is lr·g/|g|, whose sign flips
              // where g is at float32 rounding of 0, so only SGD's updates compare elementwise.
              if (optimizer === "sgd") assert.ok(updates <= RTOL, `updates: ${updates} > ${RTOL}`);
            });
          }
        }
      }
    },
  });

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: a shorter last batch is prepared once, kept beside the full one, and dispose releases both`,
    ignore,
    async fn() {
      for (const engine of enginesOf(backend).filter((e) => e !== "reference")) {
        assert.ok((await useTfjsBackend(backend)).available);
        const head = arcFaceHead({ scale: 8, margin: 0.2 });
        const m = model(5, 12);
        using loss = disposing(tfjsHeadLoss(head, { engine }));
        for (const rows of [24, 10, 24, 10]) {
          const grads = tf.tidy(() => {
            const x = tf.tensor2d(m.x0.subarray(0, rows * 8), [rows, 8]);
            const w = tf.tensor2d(m.w, [12, 8]);
            const y = tf.tensor1d(m.labels.subarray(0, rows), "int32");
            return tf.grads((a, b) => loss(a as tf.Tensor2D, b as tf.Tensor2D, y))([x, w]);
          });
          const [gx, gw] = await values(grads);
          const expected = marginSoftmaxLoss({
            features: matrix(rows, 8, m.x0.subarray(0, rows * 8)),
            weights: matrix(12, 8, m.w),
            labels: Array.from(m.labels.subarray(0, rows)),
          }, head);
          assert.ok(closeness(gx, expected.gradFeatures.data).relError <= RTOL);
          assert.ok(closeness(gw, expected.gradWeights.data).relError <= RTOL);
        }
        const prepared = loss.prepared();
        assert.equal(prepared.length, 2, `${engine}: ${prepared}`);
        assert.ok(prepared.every((p) => p.startsWith(`${engine} `)), `${prepared}`);
        loss.dispose();
        assert.deepStrictEqual(loss.prepared(), []);
      }
    },
  });

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: center loss through every engine moves the centers as the reference does`,
    ignore,
    async fn() {
      for (const engine of enginesOf(backend)) {
        assert.ok((await useTfjsBackend(backend)).available);
        const m = model(9, 12);
        const start = Array.from({ length: 12 * 8 }, (_, k) => Math.sin(k));
        const run = async (engine: TfjsLossEngine, on: typeof BACKENDS[number]) => {
          assert.ok((await useTfjsBackend(on)).available);
          const centers = matrix(12, 8, start);
          using loss = disposing(
            tfjsHeadLoss(softmaxHead(), { center: { centers, weight: 0.3, alpha: 0.4 }, engine }),
          );
          const grads = tf.tidy(() => {
            const x = tf.tensor2d(m.x0.subarray(0, 24 * 8), [24, 8]);
            const w = tf.tensor2d(m.w, [12, 8]);
            const y = tf.tensor1d(m.labels, "int32");
            const { value, grads } = tf.valueAndGrads((a, b) =>
              loss(a as tf.Tensor2D, b as tf.Tensor2D, y)
            )([x, w]);
            return [value, ...grads];
          });
          const [value, gx] = await values(grads);
          await loss.readCenters();
          return { loss: value[0], gx, centers: Float64Array.from(centers.data) };
        };
        const ref = await run("reference", "cpu"), ours = await run(engine, backend);
        if (engine !== "webgpu") assert.deepStrictEqual(ours.centers, ref.centers);
        else assert.ok(closeness(ours.centers, ref.centers).relError <= 1e-6);
        assert.ok(closeness(ours.gx, ref.gx).relError <= RTOL);
        assert.ok(Math.abs(ours.loss - ref.loss) <= 1e-5 * ref.loss);
        assert.notDeepStrictEqual(ref.centers, Float64Array.from(start));
      }
    },
  });
}

for (const backend of BACKENDS) {
  const availability = await useTfjsBackend(backend);
  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: weights in shards (a list of tensors) give the gradients of the whole, per shard`,
    ignore: !availability.available,
    async fn() {
      for (const engine of enginesOf(backend)) {
        assert.ok((await useTfjsBackend(backend)).available);
        const head = cosFaceHead({ scale: 10, margin: 0.2 });
        const m = model(13, 12);
        using loss = disposing(tfjsHeadLoss(head, { engine }));
        const found = tf.tidy(() => {
          const x = tf.tensor2d(m.x0.subarray(0, 24 * 8), [24, 8]);
          const shards = [[0, 5], [5, 1], [6, 6]].map(([r0, rows]) =>
            tf.tensor2d(m.w.subarray(r0 * 8, (r0 + rows) * 8), [rows, 8])
          );
          const y = tf.tensor1d(m.labels, "int32");
          return tf.grads((a, b, c, d) => loss(a as tf.Tensor2D, [b, c, d] as tf.Tensor2D[], y))([
            x,
            ...shards,
          ]);
        });
        assert.deepStrictEqual(found.map((g) => g.shape), [[24, 8], [5, 8], [1, 8], [6, 8]]);
        const [gx, ...parts] = await values(found);
        const expected = marginSoftmaxLoss({
          features: matrix(24, 8, m.x0.subarray(0, 24 * 8)),
          weights: matrix(12, 8, m.w),
          labels: Array.from(m.labels),
        }, head);
        const gw = new Float32Array(12 * 8);
        parts.reduce((at, part) => (gw.set(part, at), at + part.length), 0);
        assert.ok(closeness(gx, expected.gradFeatures.data).relError <= RTOL, engine);
        assert.ok(closeness(gw, expected.gradWeights.data).relError <= RTOL, engine);
      }
    },
  });
}

// tfjsHeadLoss with the successor heads of issue 13, on the float64 reference and on engine-wasm
// and engine-native (where it runs) for the kinds they compute (asked through supportsSuccessor):
// gradients equal the loss pages' (and on "wasm" the reference path's, to the float32 tolerance),
// the state moves once per training step and never on evaluation, identically on every engine, 20
// Adam steps lower each loss, and the engines that do not compute a head refuse it by name.
import assert from "node:assert";
import { tf, useTfjsBackend } from "./tfjs_setup.ts";
import { closeness } from "../testing/assert_close.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import type { HeadInput, HeadResult } from "../losses/types.ts";
import { matrix } from "../losses/matrix.ts";
import { curricularFaceHead, curricularFaceLoss } from "../losses/curricularface.ts";
import { adaFaceHead, adaFaceLoss } from "../losses/adaface.ts";
import { subCenterArcFaceHead, subCenterArcFaceLoss } from "../losses/subcenter_arcface.ts";
import { magFaceHead, magFaceLoss } from "../losses/magface.ts";
import { adaCosHead, adaCosLoss } from "../losses/adacos.ts";
import { elasticFaceHead, elasticFaceLoss, elasticFaceMargins } from "../losses/elasticface.ts";
import { wasmEngine } from "../engines/wasm/engine.ts";
import { nativeEngine } from "../engines/native/engine.ts";
import { toleranceOf } from "../testing/tolerances.ts";
import { type SuccessorState, tfjsHeadLoss, type TfjsLossEngine } from "./tfjs_loss.ts";

/** float32 inputs, float64 maths, float32 gradients: relative to the largest gradient element. */
const RTOL = 1e-4;

type State = Record<string, number>;

/**
 * One successor loss: its head for a step (N samples, the state before it, a seed for ElasticFace's
 * margins), its loss page on the same options, the rows of W per class and a feature scale (AdaFace
 * and MagFace read the norms, so theirs lie in the ranges their margins move over).
 */
interface Successor {
  name: string;
  head: (N: number, state: State | undefined, seed: number) => SuccessorHeadSpec;
  page: (
    input: HeadInput,
    state: State | undefined,
    seed: number,
  ) => HeadResult & { state?: object };
  subCenters: number;
  featureScale: number;
}

/** Whether engine-wasm computes a head, by the engine's own answer. */
const onWasm = (head: SuccessorHeadSpec) => wasmEngine.supportsSuccessor?.(head) === true;

/** The successors engine "webgpu" runs on tfjs-webgpu's own buffers (the others need a read-back). */
const onGpu = (s: Successor) =>
  s.name === "magFace" || s.name.startsWith("elasticFace") || s.name.startsWith("subCenter");

/**
 * AdaCos's scale on engine-wasm comes from float32 per-sample losses: it matches the float64
 * reference's to about float32's precision, not bit for bit; every other state is the same maths
 * on the same float64 inputs, so identical.
 */
function assertSameState(
  s: Successor,
  actual: State | undefined,
  expected: State | undefined,
  message?: string,
) {
  if (s.name !== "adaCos" || actual === undefined || expected === undefined) {
    return assert.deepStrictEqual(actual, expected, message);
  }
  assert.deepStrictEqual(Object.keys(actual), ["scale"], message);
  const error = Math.abs(actual.scale - expected.scale) / expected.scale;
  assert.ok(error <= 1e-6, `${message}: scale ${actual.scale} vs ${expected.scale}`);
}

/** Whether engine-native runs here (Deno with --allow-ffi and a CBLAS). */
const NATIVE = await nativeEngine.availability();
if (!NATIVE.available) console.log(`SKIPPED engine "native": ${NATIVE.reason}`);

/**
 * The engines a successor runs on in these tests: the reference, and "wasm" and "native" where
 * they compute it.
 */
const enginesOf = (s: Successor): TfjsLossEngine[] => {
  const head = s.head(4, undefined, 1);
  return [
    "reference",
    ...(onWasm(head) ? ["wasm" as const] : []),
    ...(NATIVE.available && nativeEngine.supportsSuccessor?.(head) === true
      ? ["native" as const]
      : []),
  ];
};

const margins = (N: number, seed: number, variant: "arc" | "cos") =>
  elasticFaceMargins(N, { variant, seed });

const SUCCESSORS: Successor[] = [
  {
    name: "curricularFace",
    head: (_N, state) => curricularFaceHead({ scale: 16, state: state as { t: number } }),
    page: (input, state) => curricularFaceLoss(input, { scale: 16, state: state as { t: number } }),
    subCenters: 1,
    featureScale: 1,
  },
  {
    name: "adaFace",
    head: (_N, state) => adaFaceHead({ scale: 16, state: state as { mean: number; std: number } }),
    page: (input, state) =>
      adaFaceLoss(input, { scale: 16, state: state as { mean: number; std: number } }),
    subCenters: 1,
    featureScale: 10,
  },
  {
    name: "subCenterArcFace K=3",
    head: () => subCenterArcFaceHead({ scale: 16, subCenters: 3 }),
    page: (input) => subCenterArcFaceLoss(input, { scale: 16, subCenters: 3 }),
    subCenters: 3,
    featureScale: 1,
  },
  {
    name: "magFace",
    head: () => magFaceHead({ scale: 16 }),
    page: (input) => magFaceLoss(input, { scale: 16 }),
    subCenters: 1,
    featureScale: 20,
  },
  {
    name: "adaCos",
    head: (_N, state) => adaCosHead({ state: state as { scale: number } | undefined }),
    page: (input, state) => adaCosLoss(input, { state: state as { scale: number } | undefined }),
    subCenters: 1,
    featureScale: 1,
  },
  {
    name: "elasticFace arc",
    head: (N, _state, seed) => elasticFaceHead({ scale: 16, margins: margins(N, seed, "arc") }),
    page: (input, _state, seed) =>
      elasticFaceLoss(input, { scale: 16, margins: margins(input.labels.length, seed, "arc") }),
    subCenters: 1,
    featureScale: 1,
  },
  {
    name: "elasticFace+ cos",
    head: (N, _state, seed) =>
      elasticFaceHead({ variant: "cos", scale: 16, plus: true, margins: margins(N, seed, "cos") }),
    page: (input, _state, seed) =>
      elasticFaceLoss(input, {
        variant: "cos",
        scale: 16,
        plus: true,
        margins: margins(input.labels.length, seed, "cos"),
      }),
    subCenters: 1,
    featureScale: 1,
  },
];

/** A random batch rounded to float32 (what the tensors hold), N×D on C·K rows of weights. */
function batch(s: Successor, size: { N: number; D: number; C: number }, seed: number) {
  const raw = randomHeadInput({ N: size.N, D: size.D, C: size.C * s.subCenters }, seed);
  const x = Float32Array.from(raw.features.data, (v) => v * s.featureScale);
  const w = Float32Array.from(raw.weights.data);
  const labels = Int32Array.from(raw.labels, (y) => y % size.C);
  const input: HeadInput = {
    features: matrix(size.N, size.D, Float64Array.from(x)),
    weights: matrix(raw.weights.rows, size.D, Float64Array.from(w)),
    labels: Array.from(labels),
  };
  return { input, x, w, labels, rows: raw.weights.rows };
}

/** The tensors of a batch (call inside tf.tidy). */
function tensorsOf(b: ReturnType<typeof batch>) {
  const { rows: N, cols: D } = b.input.features;
  return {
    x: tf.tensor2d(b.x, [N, D]),
    w: tf.tensor2d(b.w, [b.rows, D]),
    y: tf.tensor1d(b.labels, "int32"),
  };
}

function disposing<T extends { dispose(): void }>(loss: T): T & Disposable {
  return Object.assign(loss, { [Symbol.dispose]: () => loss.dispose() });
}

for (const backend of ["cpu", "wasm"] as const) {
  const availability = await useTfjsBackend(backend);

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: every successor head's gradients equal its loss page's (reference)`,
    ignore: !availability.available,
    async fn(t) {
      for (const s of SUCCESSORS) {
        await t.step(s.name, async () => {
          assert.ok((await useTfjsBackend(backend)).available);
          let worst = 0;
          for (const seed of [1, 2, 3, 4]) {
            const b = batch(s, { N: 6, D: 5, C: 4 }, seed);
            const state = s.name === "curricularFace" ? { t: 0.2 } : undefined;
            using loss = disposing(tfjsHeadLoss(s.head(6, state, seed), { engine: "reference" }));
            const [gx, gw, value] = tf.tidy(() => {
              const { x, w, y } = tensorsOf(b);
              const { value, grads } = tf.valueAndGrads((a, c) =>
                loss(a as tf.Tensor2D, c as tf.Tensor2D, y)
              )([x, w]);
              return [...grads, value].map((g) => Float32Array.from(g.dataSync()));
            });
            const expected = s.page(b.input, state, seed);
            worst = Math.max(
              worst,
              closeness(gx, expected.gradFeatures.data).relError,
              closeness(gw, expected.gradWeights.data).relError,
            );
            assert.ok(Math.abs(value[0] - expected.loss) <= 1e-6 * Math.abs(expected.loss));
          }
          console.log(
            `tfjs-${backend} ${s.name}: worst relative gradient difference ${
              worst.toExponential(2)
            }`,
          );
          assert.ok(worst <= RTOL, `${s.name}: ${worst} > ${RTOL}`);
        });
      }
    },
  });

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: a successor state moves once per backward pass, as the loss page chains it, and never on evaluation (reference, wasm, native)`,
    ignore: !availability.available,
    async fn(t) {
      for (const s of SUCCESSORS) {
        for (const engine of enginesOf(s)) {
          await t.step(`${s.name} on ${engine}`, async () => {
            assert.ok((await useTfjsBackend(backend)).available);
            const b = batch(s, { N: 6, D: 5, C: 4 }, 9);
            let state: State | undefined, calls = 0;
            const seen: SuccessorState[] = [];
            using loss = disposing(tfjsHeadLoss(() => s.head(6, state, 5), {
              engine,
              onState: (next) => {
                calls++;
                seen.push(next);
                state = next as State;
              },
            }));
            tf.tidy(() => {
              const { x, w, y } = tensorsOf(b);
              // Two evaluations: no state handed over.
              loss(x, w, y);
              loss(x, w, y);
              assert.equal(calls, 0);
              assert.equal(state, undefined);
              // Three gradient passes (tf.grads, tf.valueAndGrads, an optimizer's minimize on
              // variables that do not move: SGD with rate 0): one state each, chained as the page's.
              let expected: State | undefined;
              const f = (a: tf.Tensor, c: tf.Tensor) => loss(a as tf.Tensor2D, c as tf.Tensor2D, y);
              const passes = [
                () => tf.grads(f)([x, w]),
                () => tf.valueAndGrads(f)([x, w]),
                () => {
                  const vx = tf.variable(x), vw = tf.variable(w);
                  tf.train.sgd(0).minimize(() => f(vx, vw));
                  tf.dispose([vx, vw]);
                },
              ];
              for (const [k, pass] of passes.entries()) {
                pass();
                expected = (s.page(b.input, expected, 5).state ?? {}) as State;
                if (
                  s.name.startsWith("elastic") || s.name === "magFace" || s.name.startsWith("sub")
                ) {
                  expected = {};
                }
                assert.equal(calls, k + 1);
                if (engine !== "reference") assertSameState(s, state, expected, `pass ${k}`);
                else assert.deepStrictEqual(state, expected);
                // An evaluation in between moves nothing.
                loss(x, w, y);
                assert.equal(calls, k + 1);
              }
            });
            if (s.name === "curricularFace") assert.notEqual((seen[2] as { t: number }).t, 0);
          });
        }
      }
    },
  });

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: 20 Adam steps lower every successor loss (reference, wasm, native)`,
    ignore: !availability.available,
    async fn(t) {
      for (const s of SUCCESSORS) {
        for (const engine of enginesOf(s)) {
          await t.step(`${s.name} on ${engine}`, async () => {
            assert.ok((await useTfjsBackend(backend)).available);
            const b = batch(s, { N: 32, D: 4, C: 5 }, 11);
            const x = tf.variable(tf.tensor2d(b.x, [32, 4]));
            const w = tf.variable(tf.tensor2d(b.w, [b.rows, 4]));
            const y = tf.tensor1d(b.labels, "int32");
            let state: State | undefined, step = 0;
            // A new head every step: the state after the last, ElasticFace's margins of this step.
            using loss = disposing(tfjsHeadLoss(() => s.head(32, state, 100 + step), {
              engine,
              onState: (next) => {
                state = next as State;
              },
            }));
            const optimizer = tf.train.adam(0.05);
            const found: number[] = [];
            for (step = 0; step < 20; step++) {
              const value = optimizer.minimize(() => loss(x, w, y), true)!;
              found.push(value.dataSync()[0]);
              value.dispose();
            }
            tf.dispose([x, w, y]);
            optimizer.dispose();
            console.log(
              `tfjs-${backend} ${s.name} on ${engine}: ${found[0].toFixed(3)} → ${
                found.at(-1)!.toFixed(3)
              }`,
            );
            assert.ok(found.every(Number.isFinite), `${s.name}: ${found}`);
            assert.ok(found.at(-1)! < 0.8 * found[0], `${s.name}: ${found[0]} → ${found.at(-1)}`);
          });
        }
      }
    },
  });

  Deno.test({
    name:
      `tfjsHeadLoss on tfjs-${backend}: on engine "wasm", each successor head it computes gives the reference path's gradients and the same state, its head read at every call`,
    ignore: !availability.available,
    async fn(t) {
      const rtol = toleranceOf(wasmEngine).rtol;
      const computed = SUCCESSORS.filter((s) => enginesOf(s).includes("wasm"));
      // Every successor head: the per-sample kinds, sub-center ArcFace (in the kernels) and AdaCos
      // (two runs of its scale-only head).
      assert.deepStrictEqual(computed, SUCCESSORS);
      for (const s of computed) {
        await t.step(s.name, async () => {
          assert.ok((await useTfjsBackend(backend)).available);
          // One loss per engine, its head function read at every call: each step has its own
          // state (from that engine's onState) and its own ElasticFace margins; engine-wasm keeps
          // the heads it prepared for the two shapes.
          const states: Partial<Record<TfjsLossEngine, State>> = {};
          const sizes = [
            { N: 12, D: 9, C: 7 },
            { N: 12, D: 9, C: 7 },
            { N: 40, D: 33, C: 300 },
            { N: 12, D: 9, C: 7 },
          ];
          let step = 0, worst = 0, stateError = 0;
          const lossOn = (engine: TfjsLossEngine) =>
            disposing(
              tfjsHeadLoss(() => s.head(sizes[Math.min(step, 3)].N, states[engine], 40 + step), {
                engine,
                onState: (next) => {
                  states[engine] = next as State;
                },
              }),
            );
          using reference = lossOn("reference");
          using wasm = lossOn("wasm");
          for (step = 0; step < sizes.length; step++) {
            const b = batch(s, sizes[step], 60 + step);
            const [expected, actual] = [reference, wasm].map((loss) =>
              tf.tidy(() => {
                const { x, w, y } = tensorsOf(b);
                const { value, grads } = tf.valueAndGrads((a, c) =>
                  loss(a as tf.Tensor2D, c as tf.Tensor2D, y)
                )([x, w]);
                return [...grads, value].map((g) => Float32Array.from(g.dataSync()));
              })
            );
            for (const k of [0, 1, 2]) {
              const { relError } = closeness(actual[k], expected[k]);
              worst = Math.max(worst, relError);
              assert.ok(relError <= rtol, `${s.name} step ${step} output ${k}: ${relError}`);
            }
            assertSameState(s, states.wasm, states.reference, `${s.name} step ${step}`);
            if (s.name === "adaCos") {
              const [a, e] = [states.wasm!.scale, states.reference!.scale];
              stateError = Math.max(stateError, Math.abs(a - e) / e);
            }
          }
          assert.equal(wasm.engine(), "wasm");
          // Sub-center ArcFace's heads are prepared for its C·K rows of W.
          const K = s.subCenters;
          assert.deepStrictEqual(wasm.prepared(), [`wasm 40×33×${300 * K}`, `wasm 12×9×${7 * K}`]);
          if (s.name === "adaFace") assert.notEqual((states.wasm as { mean: number }).mean, 20);
          console.log(
            `tfjs-${backend} ${s.name}: engine "wasm" vs "reference", worst relative difference ${
              worst.toExponential(2)
            } (rtol ${rtol}); ${
              s.name === "adaCos"
                ? `scales within ${stateError.toExponential(2)} (relative)`
                : "states identical"
            }`,
          );
        });
      }
    },
  });
}

Deno.test("tfjsHeadLoss: a successor head's default engine is wasm where engine-wasm computes it, else the reference", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  const found: Record<string, TfjsLossEngine> = {};
  for (const s of SUCCESSORS) {
    const head = s.head(6, undefined, 1);
    using fixed = disposing(tfjsHeadLoss(head));
    using fn = disposing(tfjsHeadLoss(() => head));
    found[s.name] = fixed.engine();
    assert.equal(fixed.engine(), onWasm(head) ? "wasm" : "reference", s.name);
    assert.equal(fn.engine(), fixed.engine(), s.name);
    // A request for the reference is kept.
    assert.equal(tfjsHeadLoss(head, { engine: "reference" }).engine(), "reference");
  }
  console.log(`default engines: ${JSON.stringify(found)}`);
  assert.equal(found.magFace, "wasm");
  assert.equal(found["elasticFace arc"], "wasm");
  assert.equal(found.curricularFace, "wasm");
  assert.equal(found["subCenterArcFace K=3"], "wasm");
  assert.equal(found.adaCos, "wasm");
});

Deno.test("tfjsHeadLoss: engines that do not compute a successor head refuse it, naming it and the engine's reason", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  const stateReason = (kind: string) =>
    `its state \\(${kind}\\) would have to be read back from the GPU every step`;
  const refusals: [SuccessorHeadSpec, "wasm" | "webgpu", string][] = [
    [
      adaCosHead(),
      "webgpu",
      'the adaCos head \\(successor hook "adaCos"\\) is not computed by engine "webgpu": ' +
      `engine-webgpu on tfjs-webgpu's buffers: ${stateReason("adaCos")} ` +
      '\\(omit options\\.engine or pass "reference" or "wasm"\\)$',
    ],
    [
      curricularFaceHead(),
      "webgpu",
      'the curricularFace head \\(successor hook "curricular"\\) is not computed by engine ' +
      `"webgpu": engine-webgpu on tfjs-webgpu's buffers: ${stateReason("curricular")} ` +
      '\\(omit options\\.engine or pass "reference" or "wasm"\\)$',
    ],
  ];
  for (const [head, engine, text] of refusals) {
    const message = new RegExp(`^RangeError: tfjsHeadLoss: ${text}`);
    // A fixed head: when the loss is made.
    assert.throws(() => tfjsHeadLoss(head, { engine }), (e: Error) => {
      assert.match(String(e), message);
      return true;
    });
    // A head function: at the call, and in prepare.
    using loss = disposing(tfjsHeadLoss(() => head, { engine }));
    await assert.rejects(loss.prepare({ samples: 4, dims: 3, classes: 5 }), message);
    tf.tidy(() => {
      const { x, w, y } = tensorsOf(batch(SUCCESSORS[0], { N: 4, D: 3, C: 5 }, 3));
      assert.throws(() => loss(x, w, y), message);
    });
  }
  // engine-webgpu computes ElasticFace, MagFace and sub-center ArcFace on tfjs-webgpu's own
  // buffers, and only those.
  for (const s of SUCCESSORS) {
    const make = () => tfjsHeadLoss(s.head(4, undefined, 1), { engine: "webgpu" });
    if (onGpu(s)) make().dispose();
    else assert.throws(make, /is not computed by engine "webgpu"/);
  }
});

Deno.test("tfjsHeadLoss: a successor head is checked (also a head function's, at every call) and its center loss has one center per class", async () => {
  assert.ok((await useTfjsBackend("cpu")).available);
  const bad: [unknown, RegExp][] = [
    [
      { ...curricularFaceHead(), successor: { ...curricularFaceHead().successor, margin: 4 } },
      /^RangeError: tfjsHeadLoss: head\.successor \("curricular"\) is not a head its loss takes: curricularFaceLoss: options\.margin must be an angle in radians in \[0, π\), got 4$/,
    ],
    [
      { ...adaFaceHead(), marginGradient: "detached" },
      /^RangeError: tfjsHeadLoss: head\.marginGradient must be "exact" for this loss/,
    ],
    [
      { ...magFaceHead(), successor: { ...magFaceHead().successor, fallback: "none" } },
      /^RangeError: tfjsHeadLoss: head\.successor\.fallback of a "magFace" hook cannot be "none"/,
    ],
    [
      { ...adaCosHead(), successor: { kind: "adaCos", scale: -1, updateScale: true } },
      /^RangeError: tfjsHeadLoss: head\.successor \("adaCos"\) .* options\.state\.scale must be a finite number > 0, got -1$/,
    ],
  ];
  const b = batch(SUCCESSORS[2], { N: 4, D: 3, C: 5 }, 3); // sub-center: 15 rows, 5 classes
  tf.tidy(() => {
    const { x, w, y } = tensorsOf(b);
    for (const [head, message] of bad) {
      assert.throws(() => tfjsHeadLoss(head as SuccessorHeadSpec), message);
      assert.throws(() => tfjsHeadLoss(() => head as HeadSpec)(x, w, y), message);
    }
    const head = subCenterArcFaceHead({ scale: 8, subCenters: 3 });
    const value = tfjsHeadLoss(head, { center: { centers: matrix(5, 3), weight: 0.1 } })(x, w, y);
    assert.ok(Number.isFinite(value.dataSync()[0]));
    assert.throws(
      () => tfjsHeadLoss(head, { center: { centers: matrix(15, 3), weight: 0.1 } })(x, w, y),
      /^RangeError: tfjsHeadLoss: options\.center\.centers must be C×D = 5×3 \(one center per class\), got 15×3$/,
    );
  });
  assert.throws(
    () => tfjsHeadLoss(curricularFaceHead(), { onState: 1 as never }),
    /^TypeError: tfjsHeadLoss: options\.onState must be a function \(state\) => void, got number$/,
  );
});

const WEBGPU = await useTfjsBackend("webgpu");

Deno.test({
  name:
    "tfjsHeadLoss on tfjs-webgpu: ElasticFace, MagFace and sub-center ArcFace on engine-webgpu, nothing read back, equal their loss pages; 20 Adam steps lower them",
  ignore: !WEBGPU.available,
  async fn(t) {
    for (const s of SUCCESSORS.filter(onGpu)) {
      await t.step(`${s.name}: the default engine, gradients, loss and state`, async () => {
        assert.ok((await useTfjsBackend("webgpu")).available);
        let worst = 0, calls = 0;
        for (const seed of [1, 2, 3, 4]) {
          const b = batch(s, { N: 6, D: 5, C: 4 }, seed);
          using loss = disposing(tfjsHeadLoss(s.head(6, undefined, seed), {
            onState: (next) => {
              calls++;
              assert.deepStrictEqual(next, {});
            },
          }));
          assert.equal(loss.engine(), "webgpu");
          const { x, w, y } = tensorsOf(b);
          const { value, grads } = tf.valueAndGrads((a, c) =>
            loss(a as tf.Tensor2D, c as tf.Tensor2D, y)
          )([x, w]);
          const [gx, gw, v] = await Promise.all(
            [...grads, value].map((g) => g.data() as Promise<Float32Array>),
          );
          tf.dispose([x, w, y, value, ...grads]);
          const expected = s.page(b.input, undefined, seed);
          worst = Math.max(
            worst,
            closeness(gx, expected.gradFeatures.data).relError,
            closeness(gw, expected.gradWeights.data).relError,
          );
          assert.ok(
            Math.abs(v[0] - expected.loss) <= 1e-5 * Math.abs(expected.loss),
            `${s.name} seed ${seed}: loss ${v[0]} vs ${expected.loss}`,
          );
        }
        console.log(
          `tfjs-webgpu ${s.name}: worst relative gradient difference ${worst.toExponential(2)}`,
        );
        assert.ok(worst <= RTOL, `${s.name}: ${worst} > ${RTOL}`);
        assert.equal(calls, 4, "onState once per backward pass");
      });
      await t.step(
        `${s.name}: W in two shards (sub-center ArcFace: a class's rows across them)`,
        async () => {
          const b = batch(s, { N: 6, D: 5, C: 4 }, 7);
          using loss = disposing(tfjsHeadLoss(s.head(6, undefined, 7), { engine: "webgpu" }));
          const { x, w, y } = tensorsOf(b);
          const cut = Math.ceil(b.rows / 2) + 1;
          const shards = [tf.slice(w, [0, 0], [cut, 5]), tf.slice(w, [cut, 0], [b.rows - cut, 5])];
          const { value, grads } = tf.valueAndGrads((a, p, q) =>
            loss(a as tf.Tensor2D, [p as tf.Tensor2D, q as tf.Tensor2D], y)
          )([x, ...shards]);
          const [gx, g0, g1, v] = await Promise.all(
            [...grads, value].map((g) => g.data() as Promise<Float32Array>),
          );
          tf.dispose([x, w, y, value, ...grads, ...shards]);
          const expected = s.page(b.input, undefined, 7);
          const gw = Float32Array.from([...g0, ...g1]);
          const worst = Math.max(
            closeness(gx, expected.gradFeatures.data).relError,
            closeness(gw, expected.gradWeights.data).relError,
          );
          assert.ok(worst <= RTOL, `${s.name} in shards: ${worst} > ${RTOL}`);
          assert.ok(Math.abs(v[0] - expected.loss) <= 1e-5 * Math.abs(expected.loss));
        },
      );
      await t.step(`${s.name}: 20 Adam steps`, async () => {
        const b = batch(s, { N: 32, D: 4, C: 5 }, 11);
        const x = tf.variable(tf.tensor2d(b.x, [32, 4]));
        const w = tf.variable(tf.tensor2d(b.w, [b.rows, 4]));
        const y = tf.tensor1d(b.labels, "int32");
        let step = 0;
        using loss = disposing(tfjsHeadLoss(() => s.head(32, undefined, 100 + step), {
          engine: "webgpu",
        }));
        const optimizer = tf.train.adam(0.05);
        const losses: number[] = [];
        for (; step < 20; step++) {
          const value = optimizer.minimize(() => loss(x, w, y) as tf.Scalar, true)!;
          losses.push((await value.data())[0]);
          value.dispose();
        }
        optimizer.dispose();
        tf.dispose([x, w, y]);
        assert.ok(losses.every(Number.isFinite), `${s.name}: ${losses}`);
        assert.ok(losses[19] < losses[0], `${s.name}: ${losses[0]} → ${losses[19]}`);
      });
    }
  },
});

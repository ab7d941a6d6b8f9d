/**
 * Training at scale: a 10 000-class embedding task that the demo makes itself (a Gaussian mixture:
 * each class a random centre in R^32, its samples the centre plus noise), an MLP body (32 → 256,
 * relu, → 128) and an ArcFace head on 10 000 class weights, trained with Adam through
 * `tfjsHeadLoss` on each engine: engine-wasm and engine-native (the machine's BLAS, where Deno's FFI
 * and a CBLAS are there; else skipped, saying why) on tfjs-wasm, and engine-webgpu on tfjs-webgpu
 * (its passes on tfjs's own device, nothing read back). Prints the test accuracy (nearest class
 * weight by cosine, over all 10 000 classes) and the time per epoch of each.
 *
 * Run: `deno task demo:scale` (fixed seeds; about 4 minutes on 2 cores). Options: `--epochs=K`
 * `--engines=wasm,native,webgpu,reference` (the float64 reference takes seconds per step: a few
 * steps, timed, stand for its epoch), `--classes=C`.
 *
 * @module
 */
import { tf, type TfjsBackendName, useTfjsBackend } from "../train/tfjs_setup.ts";
import { tfjsHeadLoss, type TfjsLossEngine } from "../train/tfjs_loss.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { nativeEngine } from "../engines/native/engine.ts";
import { gaussian, seededRandom } from "../testing/random.ts";

const IN = 32, HIDDEN = 256, D = 128, TRAIN_PER_CLASS = 4, TEST_PER_CLASS = 2;
const BATCH = 500, LEARNING_RATE = 3e-3, NOISE = 0.55, SEED = 11;
const HEAD = arcFaceHead({ scale: 30, margin: 0.3 });

function option(name: string, fallback: string): string {
  const found = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return found ? found.slice(name.length + 3) : fallback;
}

interface Split {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

/** The mixture: C centres in R^IN, `perClass` noisy samples of each, in a seeded shuffled order. */
function mixture(C: number): { train: Split; test: Split } {
  const normal = gaussian(seededRandom(SEED));
  const centres = Float32Array.from({ length: C * IN }, () => normal());
  const split = (perClass: number): Split => {
    const n = C * perClass;
    const order = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(Math.abs(normal() * 1e6)) % (i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const x = new Float32Array(n * IN), y = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const c = order[k] % C;
      y[k] = c;
      for (let d = 0; d < IN; d++) x[k * IN + d] = centres[c * IN + d] + NOISE * normal();
    }
    return { x, y, n };
  };
  return { train: split(TRAIN_PER_CLASS), test: split(TEST_PER_CLASS) };
}

/** Test accuracy: each test feature's nearest class weight by cosine, over all classes. */
async function accuracy(body: (x: tf.Tensor2D) => tf.Tensor2D, w: tf.Tensor2D, test: Split) {
  let correct = 0;
  const wn = tf.tidy(() => tf.div(w, tf.norm(w, 2, 1, true)));
  for (let at = 0; at < test.n; at += 1000) {
    const n = Math.min(1000, test.n - at);
    const guess = tf.tidy(() => {
      const f = body(tf.tensor2d(test.x.subarray(at * IN, (at + n) * IN), [n, IN]));
      return tf.argMax(tf.matMul(f, wn, false, true), 1);
    });
    const found = await guess.data();
    guess.dispose();
    for (let i = 0; i < n; i++) if (found[i] === test.y[at + i]) correct++;
  }
  wn.dispose();
  return correct / test.n;
}

/** Trains on one engine; the seconds of each epoch, the last epoch's mean loss, the accuracy. */
async function train(engine: TfjsLossEngine, data: { train: Split; test: Split }, epochs: number) {
  const backend: TfjsBackendName = engine === "webgpu" ? "webgpu" : "wasm";
  const ready = await useTfjsBackend(backend);
  if (!ready.available) throw new Error(`tfjs-${backend}: ${ready.reason}`);
  const C = data.train.n / TRAIN_PER_CLASS;
  const init = (shape: number[], fanIn: number, seed: number) =>
    tf.variable(tf.randomNormal(shape, 0, 1 / Math.sqrt(fanIn), "float32", seed));
  const [w1, b1, w2, b2] = [
    init([IN, HIDDEN], IN, SEED + 1),
    tf.variable(tf.zeros([HIDDEN])),
    init([HIDDEN, D], HIDDEN, SEED + 2),
    tf.variable(tf.zeros([D])),
  ];
  const w = init([C, D], D, SEED + 3) as tf.Variable<tf.Rank.R2>;
  const body = (x: tf.Tensor2D) =>
    tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2) as tf.Tensor2D;
  const loss = tfjsHeadLoss(HEAD, { engine });
  await loss.prepare({ samples: BATCH, dims: D, classes: C }); // engine-native's helper threads
  const optimizer = tf.train.adam(LEARNING_RATE);
  const xs = tf.tensor2d(data.train.x, [data.train.n, IN]);
  const ys = tf.tensor1d(data.train.y, "int32");
  const steps = Math.ceil(data.train.n / BATCH);
  // The reference takes seconds per step: a few steps, timed, stand for its epoch.
  const timed = engine === "reference" ? 3 : steps;
  const seconds: number[] = [];
  let last = NaN;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const started = performance.now();
    const values: tf.Scalar[] = [];
    for (let b = 0; b < timed; b++) {
      const rows = Math.min(BATCH, data.train.n - b * BATCH);
      values.push(tf.tidy(() => {
        const x = tf.slice(xs, [b * BATCH, 0], [rows, IN]) as tf.Tensor2D;
        const y = tf.slice(ys, [b * BATCH], [rows]) as tf.Tensor1D;
        return optimizer.minimize(() => loss(body(x), w, y), true)!;
      }));
    }
    const found = await Promise.all(values.map((v) => v.data()));
    tf.dispose(values);
    seconds.push((performance.now() - started) / 1000 * (steps / timed));
    last = found.reduce((s, v) => s + v[0], 0) / found.length;
    const line =
      `${engine.padEnd(9)} epoch ${epoch + 1}/${epochs}: mean loss ${last.toFixed(3)}, ` +
      `${seconds.at(-1)!.toFixed(1)} s${timed < steps ? ` (from ${timed} of ${steps} steps)` : ""}`;
    console.error(line);
    if (timed < steps) break;
  }
  const acc = timed < steps ? undefined : await accuracy(body, w, data.test);
  loss.dispose();
  optimizer.dispose();
  tf.dispose([w1, b1, w2, b2, w, xs, ys]);
  return { seconds, loss: last, accuracy: acc, steps };
}

if (import.meta.main) {
  const C = Number(option("classes", "10000")), epochs = Number(option("epochs", "3"));
  const engines = option("engines", "wasm,native,webgpu").split(",") as TfjsLossEngine[];
  const data = mixture(C);
  console.log(
    `${C} classes, Gaussian mixture in R^${IN} (noise ${NOISE}): ${data.train.n} train, ` +
      `${data.test.n} test; MLP ${IN}→${HIDDEN}→${D}, ArcFace s=30 m=0.3 on ${C}×${D} weights, ` +
      `Adam ${LEARNING_RATE}, batch ${BATCH}, ${epochs} epochs; ${navigator.hardwareConcurrency} ` +
      `cores`,
  );
  const rows: string[] = [];
  for (const engine of engines) {
    const native = engine === "native" ? await nativeEngine.availability() : undefined;
    if (native?.available === false) {
      console.log(`engine-native skipped: ${native.reason}`);
      continue;
    }
    // Which BLAS, and whether OpenBLAS runs weaker kernels than the CPU has (an environment's
    // OPENBLAS_CORETYPE is the user's choice, kept).
    if (native?.detail) console.log(`engine-native: ${native.detail}`);
    const r = await train(engine, data, epochs);
    const perEpoch = r.seconds.reduce((a, b) => a + b, 0) / r.seconds.length;
    rows.push(
      `| ${
        engine === "webgpu"
          ? "engine-webgpu on tfjs-webgpu"
          : engine === "wasm"
          ? "engine-wasm on tfjs-wasm"
          : engine === "native"
          ? "engine-native on tfjs-wasm"
          : "reference on tfjs-wasm"
      } | ${r.seconds.length} | ${perEpoch.toFixed(1)} s | ${
        (1000 * perEpoch / r.steps).toFixed(0)
      } ms | ${r.loss.toFixed(3)} | ${
        r.accuracy === undefined ? "— (a few steps only)" : `${(100 * r.accuracy).toFixed(1)} %`
      } |`,
    );
  }
  console.log(
    "\n| engine | epochs | time per epoch | per step | last epoch's loss | test accuracy |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) console.log(row);
  console.log("(chance: 0.01 %)");
}

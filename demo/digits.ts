/**
 * The classic picture: a small network with a 2-d embedding trained on the UCI digits once per
 * loss, with the learned test-set features drawn per loss (docs/digits.svg, docs/digits.png).
 *
 * Run: `deno task demo` (fixed seeds; a few minutes at most on 2 cores). It trains through the
 * float64 reference engine, so that the figures and the README's numbers reproduce bit for bit;
 * `--engine=wasm` trains it on engine-wasm instead (float32: the same curves for hundreds of steps,
 * then rounding takes the runs apart, and a run may settle elsewhere).
 *
 * @module
 */
import { tf, useTfjsBackend } from "../train/tfjs_setup.ts";
import { tfjsHeadLoss, type TfjsHeadLossOptions, type TfjsLossEngine } from "../train/tfjs_loss.ts";
import type { HeadSpec } from "../losses/head_spec.ts";
import { softmaxHead } from "../losses/softmax.ts";
import { normFaceHead } from "../losses/normface.ts";
import { lSoftmaxHead } from "../losses/lsoftmax.ts";
import { sphereFaceHead } from "../losses/sphereface.ts";
import { cosFaceHead } from "../losses/cosface.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { lambdaSchedule } from "../losses/lambda_schedule.ts";
import { matrix } from "../losses/matrix.ts";
import { renderSvg, svgToPng } from "../charts/render.ts";

const EPOCHS = 100, BATCH = 64, LEARNING_RATE = 0.01, CLASSES = 10, SEED = 7;
/** λ of SphereFace and L-Softmax: the caffe schedule, faster because this run is short. */
const LAMBDA = { base: 1000, gamma: 0.1, power: 2, min: 0 };

/** One run: the loss's label, its head (per step), and extra options such as the center loss. */
interface Run {
  label: string;
  head: (step: number) => HeadSpec;
  options?: () => TfjsHeadLossOptions;
}

// 2-d features are far from face recognition's 512: scales and margins chosen small.
const RUNS: Run[] = [
  { label: "softmax", head: () => softmaxHead() },
  { label: "NormFace s=10", head: () => normFaceHead({ scale: 10 }) },
  {
    label: "L-Softmax m=2",
    head: (step) => lSoftmaxHead({ margin: 2, lambda: lambdaSchedule(step, LAMBDA) }),
  },
  {
    label: "SphereFace m=3",
    head: (step) => sphereFaceHead({ margin: 3, lambda: lambdaSchedule(step, LAMBDA) }),
  },
  { label: "CosFace s=10 m=0.3", head: () => cosFaceHead({ scale: 10, margin: 0.3 }) },
  { label: "ArcFace s=10 m=0.4", head: () => arcFaceHead({ scale: 10, margin: 0.4 }) },
  {
    label: "softmax + center λ=0.1",
    head: () => softmaxHead(),
    options: () => ({
      center: { centers: matrix(CLASSES, 2), weight: 0.1, alpha: 0.5 },
    }),
  },
];

interface Digits {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

function loadDigits(): { train: Digits; test: Digits } {
  const file = JSON.parse(
    Deno.readTextFileSync(new URL("./data/digits.json", import.meta.url)),
  ) as { rows: number; cols: number; pixels: string[]; labels: string };
  const all = file.pixels.map((row, i) => ({
    x: Array.from(row, (ch) => parseInt(ch, 17) / 16),
    y: Number(file.labels[i]),
  }));
  // Fixed split: every fifth sample is a test sample (20 %).
  const pick = (test: boolean) => {
    const rows = all.filter((_, i) => (i % 5 === 4) === test);
    return {
      x: Float32Array.from(rows.flatMap((r) => r.x)),
      y: Int32Array.from(rows.map((r) => r.y)),
      n: rows.length,
    };
  };
  return { train: pick(false), test: pick(true) };
}

/** Mean angle (degrees) between a test feature and its class's mean direction. */
function angularSpread(features: ArrayLike<number>, test: Digits): number {
  const mean = new Float64Array(2 * CLASSES);
  for (let i = 0; i < test.n; i++) {
    const norm = Math.hypot(features[2 * i], features[2 * i + 1]) || 1;
    mean[2 * test.y[i]] += features[2 * i] / norm;
    mean[2 * test.y[i] + 1] += features[2 * i + 1] / norm;
  }
  let sum = 0;
  for (let i = 0; i < test.n; i++) {
    const a = Math.atan2(features[2 * i + 1], features[2 * i]);
    const b = Math.atan2(mean[2 * test.y[i] + 1], mean[2 * test.y[i]]);
    sum += Math.abs(Math.atan2(Math.sin(a - b), Math.cos(a - b)));
  }
  return sum / test.n * 180 / Math.PI;
}

function progress(label: string, done: number, total: number, loss: number) {
  const width = 30, filled = Math.round(width * done / total);
  const bar = "█".repeat(filled) + "·".repeat(width - filled);
  const text = `\r${label.padEnd(24)} ${bar} ${done}/${total} loss ${loss.toFixed(3)}`;
  Deno.stderr.writeSync(new TextEncoder().encode(text));
}

/** A seeded permutation (mulberry32), so batches are the same every run. */
function shuffled(n: number, seed: number): Int32Array {
  let s = seed >>> 0;
  const random = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function train(run: Run, data: { train: Digits; test: Digits }, engine: TfjsLossEngine) {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [64],
        units: 64,
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed: SEED }),
      }),
      tf.layers.dense({
        units: 2,
        kernelInitializer: tf.initializers.glorotUniform({ seed: SEED + 1 }),
      }),
    ],
  });
  const weights = tf.variable(
    tf.randomNormal<tf.Rank.R2>([CLASSES, 2], 0, 1, "float32", SEED + 2),
  );
  let step = 0;
  const loss = tfjsHeadLoss(() => run.head(step), { ...run.options?.(), engine });
  const optimizer = tf.train.adam(LEARNING_RATE);
  const { train, test } = data;
  const xAll = tf.tensor2d(train.x, [train.n, 64]);
  const yAll = tf.tensor1d(train.y, "int32");
  const batches = Math.ceil(train.n / BATCH), total = EPOCHS * batches;
  let last = 0;
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const order = tf.tensor1d(shuffled(train.n, SEED + epoch), "int32");
    for (let b = 0; b < batches; b++) {
      tf.tidy(() => {
        const index = order.slice(b * BATCH, Math.min(BATCH, train.n - b * BATCH));
        const x = tf.gather(xAll, index), y = tf.gather(yAll, index);
        const value = optimizer.minimize(
          () => loss(model.apply(x) as tf.Tensor2D, weights, y as tf.Tensor1D),
          true,
        );
        last = value!.dataSync()[0];
      });
      step++;
      if (step % 10 === 0 || step === total) progress(run.label, step, total, last);
    }
    order.dispose();
  }
  Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  const features = tf.tidy(() =>
    (model.predict(tf.tensor2d(test.x, [test.n, 64])) as tf.Tensor2D).dataSync()
  );
  const w = weights.dataSync();
  const angular = run.head(step).logits === "angular";
  let correct = 0;
  for (let i = 0; i < test.n; i++) {
    const fx = features[2 * i], fy = features[2 * i + 1];
    let best = -Infinity, arg = -1;
    for (let j = 0; j < CLASSES; j++) {
      const wx = w[2 * j], wy = w[2 * j + 1];
      const score = (fx * wx + fy * wy) / (angular ? Math.hypot(wx, wy) : 1);
      if (score > best) [best, arg] = [score, j];
    }
    if (arg === test.y[i]) correct++;
  }
  tf.dispose([xAll, yAll, weights]);
  model.dispose();
  optimizer.dispose();
  loss.dispose();
  return { features, accuracy: correct / test.n, spread: angularSpread(features, test) };
}

if (import.meta.main) {
  // wasm: 14 s for all seven runs of 60 epochs on this machine, cpu 34 s.
  const backend = Deno.args.includes("cpu") ? "cpu" : "wasm";
  const engine: TfjsLossEngine = Deno.args.includes("--engine=wasm") ? "wasm" : "reference";
  const availability = await useTfjsBackend(backend);
  if (!availability.available) throw new Error(availability.reason);
  const data = loadDigits();
  console.log(
    `UCI digits: ${data.train.n} train, ${data.test.n} test; MLP 64→64→2, W 10×2, ${EPOCHS} epochs, batch ${BATCH}, Adam ${LEARNING_RATE}, tfjs ${backend}, engine ${engine}`,
  );
  const points: { loss: string; x: number; y: number; digit: string }[] = [];
  const started = performance.now();
  const summary: string[] = [];
  for (const run of RUNS) {
    const t0 = performance.now();
    const { features, accuracy, spread } = train(run, data, engine);
    const seconds = (performance.now() - t0) / 1000;
    const line = `${run.label.padEnd(24)} test accuracy ${
      (100 * accuracy).toFixed(1)
    } %, angular spread ${spread.toFixed(1)}°  (${seconds.toFixed(1)} s)`;
    console.log(line);
    summary.push(line);
    // Each panel is scaled to unit maximum norm, so panels compare by angle, not by radius.
    let max = 0;
    for (let i = 0; i < data.test.n; i++) {
      max = Math.max(max, Math.hypot(features[2 * i], features[2 * i + 1]));
    }
    for (let i = 0; i < data.test.n; i++) {
      points.push({
        loss: `${run.label} (${(100 * accuracy).toFixed(1)} %)`,
        x: features[2 * i] / max,
        y: features[2 * i + 1] / max,
        digit: String(data.test.y[i]),
      });
    }
  }
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const svg = await renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "UCI digits, learned 2-d test features per loss (scaled to unit max norm)",
    data: { values: points },
    facet: { field: "loss", type: "nominal", title: null, sort: RUNS.map((r) => r.label) },
    columns: 4,
    spec: {
      width: 220,
      height: 220,
      mark: { type: "circle", size: 14, opacity: 0.75 },
      encoding: {
        x: { field: "x", type: "quantitative", scale: { domain: [-1, 1] }, title: null },
        y: { field: "y", type: "quantitative", scale: { domain: [-1, 1] }, title: null },
        color: { field: "digit", type: "nominal", scale: { scheme: "category10" } },
      },
    },
  });
  await Deno.mkdir(new URL("../docs/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(new URL("../docs/digits.svg", import.meta.url), svg);
  await Deno.writeFile(new URL("../docs/digits.png", import.meta.url), await svgToPng(svg));
  console.log("wrote docs/digits.svg, docs/digits.png");
}

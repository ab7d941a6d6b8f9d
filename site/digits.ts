// The digits experiment in the page: the UCI digits (demo/data/digits.json), an MLP 64→64→2 and a
// 10×2 head trained with tfjsHeadLoss for a chosen loss, the test features drawn epoch by epoch.
// The same data split, network, seeds, batches and optimiser as demo/digits.ts.
import { tf, type TfjsBackendName, useTfjsBackend } from "../train/tfjs_setup.ts";
import { tfjsHeadLoss } from "../train/tfjs_loss.ts";
import { type Digits, digitsModel, shuffled, splitDigits } from "../demo/digits_data.ts";

export { type Digits, splitDigits };
import {
  arcFaceHead,
  cosFaceHead,
  type HeadSpec,
  lambdaSchedule,
  lSoftmaxHead,
  normFaceHead,
  softmaxHead,
  sphereFaceHead,
} from "../mod.ts";

const BATCH = 64, LEARNING_RATE = 0.01, CLASSES = 10, SEED = 7;
const LAMBDA = { base: 1000, gamma: 0.1, power: 2, min: 0 };

/** The losses of the picker: demo/digits.ts's runs (2-d features: small scales and margins). */
export const DIGIT_LOSSES: Record<string, { label: string; head: (step: number) => HeadSpec }> = {
  arcFace: { label: "ArcFace s=10 m=0.4", head: () => arcFaceHead({ scale: 10, margin: 0.4 }) },
  cosFace: { label: "CosFace s=10 m=0.3", head: () => cosFaceHead({ scale: 10, margin: 0.3 }) },
  sphereFace: {
    label: "SphereFace m=3",
    head: (step) => sphereFaceHead({ margin: 3, lambda: lambdaSchedule(step, LAMBDA) }),
  },
  lSoftmax: {
    label: "L-Softmax m=2",
    head: (step) => lSoftmaxHead({ margin: 2, lambda: lambdaSchedule(step, LAMBDA) }),
  },
  normFace: { label: "NormFace s=10", head: () => normFaceHead({ scale: 10 }) },
  softmax: { label: "softmax", head: () => softmaxHead() },
};

/** What a loss of tfjsHeadLoss may have to prepare its engine's heads (train/tfjs_loss.ts). */
interface Preparable {
  prepare?(shape: { samples: number; dims: number; classes: number }): Promise<void>;
  dispose?(): void;
}

/** The state after one epoch. */
export interface Epoch {
  epoch: number;
  loss: number;
  /** Test accuracy: the class of the largest logit (cosine for angular heads). */
  accuracy: number;
  /** The test features, 2 per sample. */
  features: Float32Array;
  /** The head's weights, C×2. */
  weights: Float32Array;
  /** Seconds since training started. */
  seconds: number;
}

/** Options of {@linkcode trainDigits}. */
export interface TrainOptions {
  loss: keyof typeof DIGIT_LOSSES;
  epochs: number;
  backend: TfjsBackendName;
  /** Called after each epoch; training waits for it (so a page can draw). */
  onEpoch?: (epoch: Epoch) => void | Promise<void>;
  /** Stops after the current epoch when it returns true. */
  stopped?: () => boolean;
}

function accuracyOf(features: Float32Array, w: Float32Array, test: Digits, angular: boolean) {
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
  return correct / test.n;
}

/** Trains one loss on the digits; resolves with the last epoch. */
export async function trainDigits(
  data: { train: Digits; test: Digits },
  o: TrainOptions,
): Promise<Epoch> {
  const availability = await useTfjsBackend(o.backend);
  if (!availability.available) throw new Error(availability.reason);
  const { head } = DIGIT_LOSSES[o.loss];
  const net = digitsModel(SEED);
  const weights = tf.variable(tf.randomNormal<tf.Rank.R2>([CLASSES, 2], 0, 1, "float32", SEED + 2));
  let step = 0;
  const loss = tfjsHeadLoss(() => head(step)) as ReturnType<typeof tfjsHeadLoss> & Preparable;
  const optimizer = tf.train.adam(LEARNING_RATE);
  const { train, test } = data;
  // A browser compiles engine-wasm's kernels only asynchronously: the loss's heads are prepared
  // before the first (synchronous) call, for the full batches and the shorter last one.
  for (const samples of new Set([BATCH, train.n % BATCH || BATCH])) {
    await loss.prepare?.({ samples, dims: 2, classes: CLASSES });
  }
  const xAll = tf.tensor2d(train.x, [train.n, 64]), yAll = tf.tensor1d(train.y, "int32");
  const xTest = tf.tensor2d(test.x, [test.n, 64]);
  const batches = Math.ceil(train.n / BATCH), started = performance.now();
  let last: Epoch | undefined;
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const order = tf.tensor1d(shuffled(train.n, SEED + epoch - 1), "int32");
      let sum = 0;
      for (let b = 0; b < batches; b++) {
        sum += tf.tidy(() => {
          const index = order.slice(b * BATCH, Math.min(BATCH, train.n - b * BATCH));
          const x = tf.gather(xAll, index), y = tf.gather(yAll, index);
          const value = optimizer.minimize(
            () => loss(net.apply(x) as tf.Tensor2D, weights, y as tf.Tensor1D),
            true,
          );
          return value!.dataSync()[0];
        });
        step++;
      }
      order.dispose();
      const features = tf.tidy(() =>
        (net.predict(xTest) as tf.Tensor2D).dataSync() as Float32Array
      );
      const angular = head(step).logits === "angular";
      const w = weights.dataSync() as Float32Array;
      last = {
        epoch,
        loss: sum / batches,
        accuracy: accuracyOf(features, w, test, angular),
        features,
        weights: w,
        seconds: (performance.now() - started) / 1000,
      };
      await o.onEpoch?.(last);
      if (o.stopped?.()) break;
    }
  } finally {
    tf.dispose([xAll, yAll, xTest, weights]);
    net.dispose();
    optimizer.dispose();
    loss.dispose?.();
  }
  return last!;
}

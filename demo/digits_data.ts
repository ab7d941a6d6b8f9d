// What the digits demo (demo/digits.ts) and the page's digits experiment (site/digits.ts) share:
// the fixed data split, the seeded batch order and the 64→64→2 network, so both train the same.
import { tf } from "../train/tfjs_setup.ts";
import { seededRandom } from "../testing/random.ts";

/** One split of the digits: N×64 pixels in [0, 1] and N labels. */
export interface Digits {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

/** The digits file's text → the fixed split: every fifth sample is a test sample (20 %). */
export function splitDigits(text: string): { train: Digits; test: Digits } {
  const file = JSON.parse(text) as { pixels: string[]; labels: string };
  const all = file.pixels.map((row, i) => ({
    x: Array.from(row, (ch) => parseInt(ch, 17) / 16),
    y: Number(file.labels[i]),
  }));
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

/** A seeded permutation (mulberry32), so batches are the same every run. */
export function shuffled(n: number, seed: number): Int32Array {
  const random = seededRandom(seed);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The body: an MLP 64→64→2 (ReLU), Glorot-uniform weights seeded by `seed` and `seed + 1`. */
export function digitsModel(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [64],
        units: 64,
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({
        units: 2,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

// Bench inputs: random, seeded, float32 (so every backend sees the same representable values).
import type { HeadInput } from "../mod.ts";
import { gaussian, seededRandom } from "../testing/random.ts";
import type { BenchSize } from "./_config.ts";

function rows(count: number, D: number, normal: () => number): Float32Array {
  const data = new Float32Array(count * D);
  for (let r = 0; r < count; r++) {
    const norm = 0.5 + 2 * Math.abs(normal()); // varied row norms, as real features have
    const scale = norm / Math.sqrt(D);
    for (let k = 0; k < D; k++) data[r * D + k] = normal() * scale;
  }
  return data;
}

/**
 * Features, weights and labels of one size, the same on every call with the same seed; labels in
 * [0, C), weights C·rowsPerClass×D (sub-center ArcFace's K sub-centers per class).
 */
export function benchInput(size: BenchSize, seed = 1, rowsPerClass = 1): HeadInput {
  const normal = gaussian(seededRandom(seed));
  const { N, D, C } = size;
  const R = C * rowsPerClass;
  return {
    features: { rows: N, cols: D, data: rows(N, D, normal) },
    weights: { rows: R, cols: D, data: rows(R, D, normal) },
    labels: Int32Array.from({ length: N }, (_, i) => (i * 7919 + seed) % C),
  };
}

// One-off: the cost of one tfjsHeadLoss step (forward and backward, tf.valueAndGrads) of a successor
// head at M (N 128, D 512, C 10 000) on engine "wasm" vs engine "reference", with the head rebuilt
// every step (ElasticFace's margins drawn anew, AdaFace's state passed along through onState), and
// what preparing a new engine-wasm head every step would cost instead (the loss disposed after each
// step, so the next one prepares again). ArcFace on engine "wasm" for scale. Sub-center ArcFace
// (K = 3) runs on C·K = 30 000 rows of W; AdaCos's scale goes along through onState. Not a test.
// deno run -A bench/tfjs_successor_step.ts [backend: cpu|wasm] [wasm steps] [reference steps]
//   [heads whose name contains this]
import { tf, useTfjsBackend } from "../train/tfjs_setup.ts";
import { tfjsHeadLoss, type TfjsLossEngine } from "../train/tfjs_loss.ts";
import {
  adaCosHead,
  adaFaceHead,
  arcFaceHead,
  elasticFaceHead,
  elasticFaceMargins,
  type HeadSpec,
  magFaceHead,
  subCenterArcFaceHead,
  type SuccessorHeadSpec,
} from "../mod.ts";

const backend = (Deno.args[0] ?? "wasm") as "cpu" | "wasm";
const wasmSteps = Number(Deno.args[1] ?? 10), referenceSteps = Number(Deno.args[2] ?? 3);
const only = Deno.args[3] ?? "";
const N = 128, D = 512, C = 10_000;
const availability = await useTfjsBackend(backend);
if (!availability.available) throw new Error(availability.reason);

const x = tf.randomNormal([N, D], 0, 1, "float32", 1);
// Feature norms spread over AdaFace's and MagFace's ranges.
const xs = tf.mul(x, tf.linspace(0.5, 5, N).reshape([N, 1])) as tf.Tensor2D;
const K = 3;
const w = tf.randomNormal([C, D], 0, 1, "float32", 2) as tf.Tensor2D;
const wK = tf.randomNormal([C * K, D], 0, 1, "float32", 3) as tf.Tensor2D; // sub-center rows
const y = tf.tensor1d(Array.from({ length: N }, (_, i) => (i * 7919) % C), "int32");

type Make = (
  step: number,
  state: Record<string, number> | undefined,
) => HeadSpec | SuccessorHeadSpec;
const heads: [string, Make][] = [
  ["arcFace (HeadSpec)", () => arcFaceHead()],
  [
    "elasticFace arc, new margins each step",
    (step) => elasticFaceHead({ margins: elasticFaceMargins(N, { seed: 1000 + step }) }),
  ],
  [
    "adaFace, state passed along",
    (_step, state) => adaFaceHead({ state: state as { mean: number; std: number } | undefined }),
  ],
  ["magFace", () => magFaceHead()],
  [`subCenterArcFace K = ${K} (${C * K} rows)`, () => subCenterArcFaceHead({ subCenters: K })],
  [
    "adaCos, scale passed along",
    (_step, state) => adaCosHead({ state: state as { scale: number } | undefined }),
  ],
];

/** Median ms of `steps` timed steps after one warm-up; `fresh`: a new loss (new head) each step. */
function time(make: Make, engine: TfjsLossEngine, steps: number, fresh = false): number {
  const head = make(0, undefined);
  const weights = "successor" in head && head.successor.kind === "subCenter" ? wK : w;
  let state: Record<string, number> | undefined, step = 0;
  const newLoss = () =>
    tfjsHeadLoss(() => make(step, state), {
      engine,
      onState: (next) => {
        state = next as Record<string, number>;
      },
    });
  let loss = newLoss();
  const run = () => {
    const grads = tf.valueAndGrads((a, b) => loss(a as tf.Tensor2D, b as tf.Tensor2D, y));
    const { value, grads: g } = grads([xs, weights]);
    value.dataSync();
    g.forEach((t) => t.dataSync());
    tf.dispose([value, ...g]);
    step++;
  };
  run(); // warm-up: prepares the head
  const times: number[] = [];
  for (let k = 0; k < steps; k++) {
    if (fresh) {
      loss.dispose();
      loss = newLoss();
    }
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  loss.dispose();
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

console.log(
  `tfjs-${backend}, N ${N}, D ${D}, C ${C}, ${navigator.hardwareConcurrency} logical cores; ` +
    `median ms per step (forward + backward through tfjsHeadLoss)`,
);
for (const [name, make] of heads.filter(([name]) => name.includes(only))) {
  const wasm = time(make, "wasm", wasmSteps);
  const fresh = time(make, "wasm", Math.max(3, Math.floor(wasmSteps / 2)), true);
  const reference = name.startsWith("arcFace") ? NaN : time(make, "reference", referenceSteps);
  console.log(
    `${name}: wasm ${wasm.toFixed(0)} ms (new prepared head every step: ${fresh.toFixed(0)} ms)` +
      (Number.isNaN(reference)
        ? ""
        : `; reference ${reference.toFixed(0)} ms (${
          (reference / wasm).toFixed(1)
        }× the wasm step)`),
  );
}
tf.dispose([x, xs, w, wK, y]);

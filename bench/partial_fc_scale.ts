// One-off: Partial FC at C = 1 000 000, D = 512, N = 128, rate 0.1 (issue 13): time per step and
// peak RSS on one engine. Not a test. W is C×D float32 (2 GB).
// Each step after the first writes into the last one's arrays (`into`), as a training loop does,
// and a successor head gets the last step's state (`state`).
// deno run -A bench/partial_fc_scale.ts wasm|webgpu|native [steps] [classes] [head]
// (head: arcFace, curricularFace, adaFace, magFace or adaCos; arcFace by default)
import {
  adaCosHead,
  adaFaceHead,
  arcFaceHead,
  curricularFaceHead,
  magFaceHead,
  partialFc,
  partialFcClasses,
  partialFcInput,
  type PartialFcResult,
  preparePartialFc,
} from "../mod.ts";
import type { EngineName } from "../engines/registry.ts";

const engine = (Deno.args[0] ?? "wasm") as EngineName;
const steps = Number(Deno.args[1] ?? 3);
const C = Number(Deno.args[2] ?? 1_000_000), D = 512, N = 128, rate = 0.1;
const HEADS = {
  arcFace: arcFaceHead,
  curricularFace: curricularFaceHead,
  adaFace: adaFaceHead,
  magFace: magFaceHead,
  adaCos: adaCosHead,
};
const headName = (Deno.args[3] ?? "arcFace") as keyof typeof HEADS;
if (!HEADS[headName]) throw new Error(`head: one of ${Object.keys(HEADS).join(", ")}`);
const peak = () => {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024 ** 2; // GiB
};

let state = 0x12345678;
const next = () => { // xorshift32, uniform in [-1, 1)
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 2 ** 31 - 1;
};
let t = performance.now();
const w = new Float32Array(C * D);
for (let k = 0; k < w.length; k++) w[k] = next();
const x = new Float32Array(N * D);
for (let k = 0; k < x.length; k++) x[k] = next();
console.log(`W ${C}×${D} float32 filled in ${((performance.now() - t) / 1000).toFixed(1)} s`);
const input = {
  features: { rows: N, cols: D, data: x },
  weights: { rows: C, cols: D, data: w },
  labels: Array.from({ length: N }, () => Math.floor((next() + 1) / 2 * C)),
};
t = performance.now();
const sampled = partialFcClasses(input.labels, C, { rate, seed: 1 });
const t1 = performance.now();
partialFcInput(input, sampled);
console.log(
  `sample ${(t1 - t).toFixed(0)} ms, gather ${(performance.now() - t1).toFixed(0)} ms (host only)`,
);
t = performance.now();
await using pfc = await preparePartialFc(
  partialFc(HEADS[headName](), { rate, seed: 1 }),
  { samples: N, dims: D, classes: C },
  { engine },
);
console.log(`${engine} ${headName}: prepared in ${((performance.now() - t) / 1000).toFixed(1)} s`);
let last: PartialFcResult | undefined;
for (let step = 0; step < steps; step++) {
  t = performance.now();
  const r = last = await pfc.run(input, { step, into: last, state: last?.state });
  const s = (performance.now() - t) / 1000;
  console.log(
    `${engine} step ${step}: ${s.toFixed(2)} s, loss ${r.loss.toFixed(4)}, ` +
      `${r.classes.length} classes, gradWeights ${r.gradWeights.rows}×${r.gradWeights.cols}, ` +
      (r.state ? `state ${JSON.stringify(r.state)}, ` : "") +
      `peak RSS ${peak().toFixed(2)} GiB`,
  );
}

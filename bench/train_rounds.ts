/**
 * The training-step contenders of bench/train_bench.ts in interleaved rounds: within each tfjs
 * backend's group every trainer is made first (the heads prepared, its warm-up steps taken), then
 * each round gives every contender, in an order that rotates from round to round, one untimed step
 * (the first after a switch finds the caches holding another model) and `--timed` timed ones (2),
 * as a training loop runs them: a machine that slows down for a while slows them all. `--rounds 1
 * --timed 20` runs each contender's steps in one block instead, the steady state of a long run.
 * Prints, per contender, the median of its rounds' mean step and the median over rounds of the
 * baseline's step over its step (the group's first: tfjs autodiff), as a Markdown table; PyTorch's
 * anchor is left out (its own group in the bench).
 *
 * Run: `deno task bench:train:rounds [--rounds 9] [--timed 2] [--groups wasm,webgpu] [--out FILE]`
 * (`deno run -A bench/train_rounds.ts …`; M only). `--out` prepends the report to FILE
 * (bench/results/train-rounds.md keeps the runs the README quotes).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { nativeEngine } from "../engines/native/engine.ts";
import { median } from "./_config.ts";
import { type Contender, contenders, type SizeName, useBestOpenBlas } from "./_train_steps.ts";

/** One group's contenders in `rounds` interleaved rounds: each one's step times, in ms. */
async function roundsOf(
  group: Contender[],
  rounds: number,
  timed: number,
): Promise<number[][]> {
  const trainers = [];
  for (const c of group) {
    const trainer = await c.make();
    for (let k = 0; k < c.warmup; k++) await trainer.step();
    trainers.push(trainer);
  }
  const times = group.map(() => [] as number[]);
  try {
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < group.length; k++) {
        const at = (k + r) % group.length;
        await trainers[at].step(); // untimed: the step after a switch finds the caches cold
        const start = performance.now();
        for (let s = 0; s < timed; s++) await trainers[at].step();
        times[at].push((performance.now() - start) / timed);
      }
    }
  } finally {
    for (const t of trainers) await t.dispose();
  }
  return times;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "9" },
    timed: { type: "string", default: "2" },
    size: { type: "string", default: "M" },
    groups: { type: "string", default: "wasm,webgpu" },
    out: { type: "string" },
  },
});
const rounds = Number(values.rounds), timed = Number(values.timed), size = values.size as SizeName;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds must be an integer ≥ 1");
if (!Number.isInteger(timed) || timed < 1) throw new Error("--timed must be an integer ≥ 1");
if (size !== "M") {
  // Interleaving keeps every trainer of a group alive at once.
  throw new Error(
    `--size ${size}: rounds run at M only (at L tfjs autodiff cannot run, and tfjs-wasm's 4 GiB ` +
      "heap holds one trainer): `TRAIN_BENCH_SIZES=L deno task bench:train` times L",
  );
}
console.error(`[train rounds] ${await useBestOpenBlas()}`);
const native = await nativeEngine.availability();
if (!native.available) console.error(`[train rounds] engine-native: ${native.reason}`);
const all = contenders(size, native.available).filter((c) => !c.ignore);
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
const started = new Date().toISOString().slice(0, 16) + "Z";
const lines = [
  `Training steps at ${size}, ${plural(rounds, "round")} of ${plural(timed, "timed step")} per ` +
  `contender (${started}):`,
  "",
  "| group | contender | step (median of rounds' means) | baseline ÷ it (median of rounds) |",
  "|---|---|---|---|",
];
for (const backend of values.groups.split(",")) {
  const group = all.filter((c) => c.group.endsWith(`tfjs-${backend}`));
  if (group.length === 0) throw new Error(`--groups: no contenders on tfjs-${backend}`);
  const times = await roundsOf(group, rounds, timed);
  group.forEach((c, k) => {
    const ratio = median(times[0].map((base, r) => base / times[k][r]));
    lines.push(
      `| ${c.group} | ${c.name} | ${median(times[k]).toFixed(1)} ms | ${ratio.toFixed(2)}× |`,
    );
  });
}
const command = `deno task bench:train:rounds ${Deno.args.join(" ")}`.trim();
const report = [`<!-- ${command} -->`, ...lines, ""].join("\n");
console.log(report);
// --out FILE: the report is prepended to FILE (newest first), which keeps the earlier ones.
if (values.out) {
  const before = await Deno.readTextFile(values.out).catch(() => "");
  await Deno.writeTextFile(values.out, before ? `${report}\n${before}` : report);
}

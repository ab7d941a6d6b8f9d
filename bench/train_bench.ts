/**
 * `deno bench` of one training step (groups "train <size> · …"): a small MLP body (IN → HIDDEN,
 * relu, → D) whose output is the features, an ArcFace head (s = 64, m = 0.5) on C class weights,
 * and one Adam step (lr 1e-3) on the body and on the class weights; float32. Each timed iteration
 * is what a training loop waits for: `optimizer.minimize`, then the loss read back (on tfjs-webgpu,
 * `await data()`, which waits for every queued pass, Adam's included).
 *
 * Contenders, by tfjs backend (the group's baseline first):
 * - tfjs autodiff of the same head (adapters/tfjs_head.ts's ops, differentiated by tfjs);
 * - tfjsHeadLoss on the engine that backend picks: engine-wasm on tfjs-wasm (both of its
 *   synchronous ways: "blocking", worker threads while the caller waits, and "calling-thread"),
 *   and on request engine-native there (the machine's BLAS through Deno's FFI, where available),
 *   engine-webgpu on tfjs-webgpu (tfjs's device and buffers, no read-back; W in shards where one
 *   tensor would pass the adapter's binding limit, as tfjs's own Adam on W needs);
 * - the tfjs work alone (no head: a zero loss with zero gradients, W in the engine's shards), the
 *   part of every step that no head changes, so autodiff's step over it is the most a head can gain;
 * - and, in a group of its own, PyTorch's step of the same model (bench/train_pytorch.py, a
 *   sidecar: set-up outside the timed part, one line per step).
 *
 * Sizes: M (N 128, D 512, C 10 000) and L (256, 512, 100 000), chosen by TRAIN_BENCH_SIZES
 * (default "M"). tfjs autodiff is left out at L: tfjs-wasm aborts there and tfjs-webgpu cannot bind
 * the N×C and C×D tensors (lavapipe's 128 MiB binding limit).
 *
 * Run: `deno bench -A bench/train_bench.ts` (TRAIN_BENCH_SIZES=M,L for both sizes). Contenders run
 * one after another here, each after its warm-up steps; bench/train_rounds.ts interleaves them
 * (`deno task bench:train:rounds`), which is what the README quotes.
 *
 * @module
 */
import {
  type Contender,
  contenders,
  type SizeName,
  type Trainer,
  useBestOpenBlas,
} from "./_train_steps.ts";
import { nativeEngine } from "../engines/native/engine.ts";

/** The trainer of the bench running now: benches run one after another, each keeps its own. */
let current: { key: string; trainer: Trainer } | undefined;
globalThis.addEventListener("unload", () => current?.trainer.dispose());

/**
 * One bench of a contender: its trainer made, and its warm-up steps taken, by the bench's first
 * (warm-up) call, which deno bench 2.9 makes once whatever `warmup` says; released by the next.
 */
function bench(c: Contender): void {
  const key = `${c.group} ${c.name}`;
  Deno.bench({
    name: c.name,
    group: c.group,
    baseline: c.baseline,
    ignore: c.ignore,
    n: c.n,
    async fn() {
      if (current?.key !== key) {
        await current?.trainer.dispose();
        current = undefined;
        const trainer = await c.make();
        for (let k = 0; k < c.warmup; k++) await trainer.step();
        current = { key, trainer };
      }
      await current.trainer.step();
    },
  });
}

const selected = (Deno.env.get("TRAIN_BENCH_SIZES") ?? "M").split(",") as SizeName[];
console.error(`[train bench] ${await useBestOpenBlas()}`);
const nativeAvailability = await nativeEngine.availability();
const NATIVE = nativeAvailability.available;
if (!NATIVE) console.error(`[train bench] engine-native: ${nativeAvailability.reason}`);

for (const name of selected) {
  for (const c of contenders(name, NATIVE)) bench(c);
}

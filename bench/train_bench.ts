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
 * - and, in a group of its own, PyTorch's step of the same model (bench/train_pytorch.py, a
 *   sidecar: set-up outside the timed part, one line per step).
 *
 * Sizes: M (N 128, D 512, C 10 000) and L (256, 512, 100 000), chosen by TRAIN_BENCH_SIZES
 * (default "M"). tfjs autodiff is left out at L: tfjs-wasm aborts there and tfjs-webgpu cannot bind
 * the N×C and C×D tensors (lavapipe's 128 MiB binding limit).
 *
 * Run: `deno bench -A bench/train_bench.ts` (TRAIN_BENCH_SIZES=M,L for both sizes).
 *
 * @module
 */
import { tf, type TfjsBackendName, useTfjsBackend } from "../train/tfjs_setup.ts";
import { type TfjsHeadLoss, tfjsHeadLoss } from "../train/tfjs_loss.ts";
import { headLosses } from "../adapters/tfjs_head.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { pytorchAllocator } from "./_pytorch.ts";
import { nativeEngine } from "../engines/native/engine.ts";

/** The body's input and hidden widths. */
const IN = 128, HIDDEN = 256, SEED = 5;
const SIZES = {
  M: { N: 128, D: 512, C: 10_000 },
  L: { N: 256, D: 512, C: 100_000 },
} as const;
type SizeName = keyof typeof SIZES;
type Size = typeof SIZES[SizeName];
const HEAD = arcFaceHead({ scale: 64, margin: 0.5 });

/** A contender's state: one step, timed by the bench, and its release. */
interface Trainer {
  step(): Promise<number>;
  dispose(): void;
}

/** The model's variables on the active tfjs backend, W in `shards` shards. */
function tfjsModel(size: Size, shards: number) {
  const { N, D, C } = size;
  const body = [
    tf.variable(tf.randomNormal([IN, HIDDEN], 0, 1 / Math.sqrt(IN), "float32", SEED)),
    tf.variable(tf.zeros([HIDDEN])),
    tf.variable(tf.randomNormal([HIDDEN, D], 0, 1 / Math.sqrt(HIDDEN), "float32", SEED + 1)),
    tf.variable(tf.zeros([D])),
  ];
  const rows = Math.ceil(C / shards);
  const w = Array.from({ length: shards }, (_, k) => {
    const r = Math.min(rows, C - k * rows);
    return tf.variable(
      tf.randomNormal([r, D], 0, 1 / Math.sqrt(D), "float32", SEED + 2 + k),
    ) as tf.Variable<tf.Rank.R2>;
  });
  const x0 = tf.randomNormal([N, IN], 0, 1, "float32", SEED + 100);
  const labels = tf.randomUniform([N], 0, C, "int32", SEED + 101) as tf.Tensor1D;
  const features = () =>
    tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x0, body[0]), body[1])), body[2]), body[3]);
  return { body, w, x0, labels, features };
}

type HeadFn = (features: tf.Tensor2D, w: tf.Tensor2D[], labels: tf.Tensor1D) => tf.Scalar;

/** tfjs's own autodiff of the head (W in one tensor). */
const autodiff: HeadFn = (features, w, labels) =>
  tf.mean(headLosses(HEAD, { features, weights: w[0], labels })) as tf.Scalar;

/** A tfjs trainer on `backend`, its head computed by `head`. */
async function tfjsTrainer(
  backend: TfjsBackendName,
  size: Size,
  shards: number,
  head: () => { fn: HeadFn; loss?: TfjsHeadLoss },
): Promise<Trainer> {
  const ok = await useTfjsBackend(backend);
  if (!ok.available) throw new Error(`tfjs-${backend}: ${ok.reason}`);
  const model = tfjsModel(size, shards);
  const optimizer = tf.train.adam(1e-3);
  const { fn, loss } = head();
  // Its engine's head prepared ahead, as a training script would (engine-native's helper threads).
  await loss?.prepare({ samples: size.N, dims: size.D, classes: size.C });
  return {
    async step() {
      await useTfjsBackend(backend);
      const value = optimizer.minimize(
        () => fn(model.features() as tf.Tensor2D, model.w as tf.Tensor2D[], model.labels),
        true,
      )!;
      const found = (await value.data())[0];
      value.dispose();
      if (!Number.isFinite(found)) throw new Error(`tfjs-${backend}: the loss is ${found}`);
      return found;
    },
    dispose() {
      loss?.dispose();
      optimizer.dispose();
      tf.dispose([...model.body, ...model.w, model.x0, model.labels]);
    },
  };
}

/** Shards of W under the binding limit of tfjs-webgpu's adapter (tfjs binds a tensor whole). */
function webgpuShards(size: Size): number {
  const limit = ((tf.backend() as unknown as { device?: GPUDevice }).device?.limits
    .maxStorageBufferBindingSize) ?? 128 * 2 ** 20;
  return Math.ceil((4 * size.C * size.D) / (limit - 4096));
}

/** PyTorch's step, in a sidecar process (bench/train_pytorch.py). */
async function pytorchTrainer(size: Size): Promise<Trainer> {
  const script = new URL("./train_pytorch.py", import.meta.url).pathname;
  const child = new Deno.Command("/usr/bin/python3", {
    args: [script, ...[size.N, size.D, size.C, IN, HIDDEN, SEED].map(String)],
    env: pytorchAllocator(),
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const writer = child.stdin.getWriter();
  let pending = "";
  const line = async (): Promise<string> => {
    while (!pending.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("train_pytorch.py ended");
      pending += value;
    }
    const at = pending.indexOf("\n"), out = pending.slice(0, at);
    pending = pending.slice(at + 1);
    return out;
  };
  console.error(`[train bench] PyTorch: ${await line()}`);
  const step = new TextEncoder().encode("step\n");
  return {
    async step() {
      await writer.write(step);
      return JSON.parse(await line()).loss;
    },
    dispose() {
      writer.write(new TextEncoder().encode("quit\n")).then(() => writer.close()).catch(() => {});
      lines.cancel().catch(() => {});
    },
  };
}

/** The trainer of the bench running now: benches run one after another, each keeps its own. */
let current: { key: string; trainer: Trainer } | undefined;
globalThis.addEventListener("unload", () => current?.trainer.dispose());

/** One bench of `make`'s trainer, made by its first (warm-up) iteration, released by the next bench. */
function bench(
  group: string,
  name: string,
  options: { n: number; baseline?: boolean; ignore?: boolean },
  make: () => Promise<Trainer>,
): void {
  const key = `${group} ${name}`;
  Deno.bench({
    name,
    group,
    baseline: options.baseline,
    ignore: options.ignore,
    n: options.n,
    warmup: 1,
    async fn() {
      if (current?.key !== key) {
        current?.trainer.dispose();
        current = undefined;
        current = { key, trainer: await make() };
      }
      await current.trainer.step();
    },
  });
}

const selected = (Deno.env.get("TRAIN_BENCH_SIZES") ?? "M").split(",") as SizeName[];
const nativeAvailability = await nativeEngine.availability();
const NATIVE = nativeAvailability.available;
if (!NATIVE) console.error(`[train bench] engine-native: ${nativeAvailability.reason}`);

for (const name of selected) {
  const size = SIZES[name];
  if (!size) throw new Error(`TRAIN_BENCH_SIZES: unknown size ${name} (M or L)`);
  const L = name === "L";
  const n = L ? 3 : 5;
  const wasm = `train ${name} · tfjs-wasm`, webgpu = `train ${name} · tfjs-webgpu`;
  bench(
    `train ${name} · anchor`,
    "PyTorch 1.13 step",
    { n, baseline: true },
    () => pytorchTrainer(size),
  );
  bench(
    wasm,
    "tfjs autodiff",
    { n: 3, baseline: true, ignore: L },
    () => tfjsTrainer("wasm", size, 1, () => ({ fn: autodiff })),
  );
  for (const mode of ["blocking", "calling-thread"] as const) {
    bench(
      wasm,
      `tfjsHeadLoss engine-wasm (${mode})`,
      { n, ignore: L && mode !== "blocking" },
      () =>
        tfjsTrainer("wasm", size, 1, () => {
          const loss = tfjsHeadLoss(HEAD, { engine: "wasm", wasmMode: mode });
          return { fn: loss as unknown as HeadFn, loss };
        }),
    );
  }
  bench(
    wasm,
    "tfjsHeadLoss engine-native",
    { n, ignore: !NATIVE },
    () =>
      tfjsTrainer("wasm", size, 1, () => {
        const loss = tfjsHeadLoss(HEAD, { engine: "native" });
        return { fn: loss as unknown as HeadFn, loss };
      }),
  );
  bench(
    webgpu,
    "tfjs autodiff",
    { n: 3, baseline: true, ignore: L },
    () => tfjsTrainer("webgpu", size, 1, () => ({ fn: autodiff })),
  );
  bench(webgpu, "tfjsHeadLoss engine-webgpu", { n }, async () => {
    await useTfjsBackend("webgpu");
    return await tfjsTrainer("webgpu", size, webgpuShards(size), () => {
      const loss = tfjsHeadLoss(HEAD, { engine: "webgpu" });
      return { fn: loss as unknown as HeadFn, loss };
    });
  });
}

// The training step that bench/train_bench.ts (deno bench) and bench/train_rounds.ts (interleaved
// rounds) time: the model, each contender's head and its trainer.
import { tf, type TfjsBackendName, useTfjsBackend } from "../train/tfjs_setup.ts";
import { type TfjsHeadLoss, tfjsHeadLoss } from "../train/tfjs_loss.ts";
import { headLosses } from "../adapters/tfjs_head.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { pytorchAllocator, setUpOpenBlas } from "./_pytorch.ts";

/** The body's input and hidden widths. */
const IN = 128, HIDDEN = 256, SEED = 5;
export const SIZES = {
  M: { N: 128, D: 512, C: 10_000 },
  L: { N: 256, D: 512, C: 100_000 },
} as const;
export type SizeName = keyof typeof SIZES;
export type Size = typeof SIZES[SizeName];
export const HEAD = arcFaceHead({ scale: 64, margin: 0.5 });

/** A contender's state: one step, timed by the bench, and its release. */
export interface Trainer {
  step(): Promise<number>;
  /** Releases it; PyTorch's resolves once its process has ended (its threads off the cores). */
  dispose(): void | Promise<void>;
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

export type HeadFn = (features: tf.Tensor2D, w: tf.Tensor2D[], labels: tf.Tensor1D) => tf.Scalar;

/** tfjs's own autodiff of the head (W in one tensor). */
export const autodiff: HeadFn = (features, w, labels) =>
  tf.mean(headLosses(HEAD, { features, weights: w[0], labels })) as tf.Scalar;

/**
 * No head: a zero loss whose gradients are zeros of the features' and W's shapes, so the step is
 * the tfjs work every head shares (the body's forward and backward, Adam on the body and on all of
 * W). Its time bounds every tfjsHeadLoss step from below: autodiff's step over it is the most any
 * head can gain on that backend.
 */
export const noHead: HeadFn = (features, w, _labels) => {
  const zero = tf.customGrad(
    ((f: tf.Tensor, ...rest: tf.Tensor[]) => {
      const shards = rest.slice(0, -1); // the last is tfjs's save function
      return {
        value: tf.scalar(0),
        gradFunc: () => [tf.zerosLike(f), ...shards.map((s) => tf.zerosLike(s))],
      };
    }) as Parameters<typeof tf.customGrad>[0],
  );
  return (zero as unknown as (...t: tf.Tensor[]) => tf.Scalar)(features, ...w);
};

/** A tfjs trainer on `backend`, its head computed by `head`. */
export async function tfjsTrainer(
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
      // tfjs-webgpu: every pass this step queued has run (the loss's read-back alone may not wait
      // for Adam's passes, queued after it), so no step's work is charged to the next one.
      await (tf.backend() as unknown as { device?: GPUDevice }).device?.queue.onSubmittedWorkDone();
      if (!Number.isFinite(found)) throw new Error(`tfjs-${backend}: the loss is ${found}`);
      return found;
    },
    dispose() {
      loss?.dispose();
      optimizer.dispose();
      tf.dispose([...model.body, ...model.w, model.x0, model.labels]);
      // At L, Adam's temporaries grow tfjs-wasm's heap to its 4 GiB (wasm32) and it never shrinks:
      // the next trainer's allocations would fail, and tfjs-wasm does not check them (it writes at
      // offset 0 and fails later in a dispose). New backend instances start with a new heap.
      if (size.C * size.D >= 2 ** 25) tf.engine().reset();
    },
  };
}

/** Shards of W under the binding limit of tfjs-webgpu's adapter (tfjs binds a tensor whole). */
export function webgpuShards(size: Size): number {
  const limit = ((tf.backend() as unknown as { device?: GPUDevice }).device?.limits
    .maxStorageBufferBindingSize) ?? 128 * 2 ** 20;
  return Math.ceil((4 * size.C * size.D) / (limit - 4096));
}

/** PyTorch's step, in a sidecar process (bench/train_pytorch.py). */
export async function pytorchTrainer(size: Size): Promise<Trainer> {
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
    async dispose() {
      await writer.write(new TextEncoder().encode("quit\n")).then(() => writer.close()).catch(
        () => {},
      );
      await lines.cancel().catch(() => {});
      await child.status;
    },
  };
}

/**
 * Gives engine-native (this process) and PyTorch (its child) the CPU's best OpenBLAS kernels, as the
 * main job does, over a weaker OPENBLAS_CORETYPE of the environment; call before OpenBLAS loads.
 * Returns what was found, in one line.
 */
export async function useBestOpenBlas(): Promise<string> {
  const blas = await setUpOpenBlas();
  if (blas.coretype) Deno.env.set("OPENBLAS_CORETYPE", blas.coretype);
  return blas.note;
}

/** One contender of a training-step group: its name, how to make its trainer, when it runs. */
export interface Contender {
  group: string;
  name: string;
  /** The group's baseline (its first contender). */
  baseline?: boolean;
  /** Timed steps in `deno bench`. */
  n: number;
  /**
   * Steps before the timed ones: tfjs autodiff's first steps grow tfjs-wasm's heap and run ~1.5×
   * slower than later ones; at L the heap grows for the first six steps of every trainer.
   */
  warmup: number;
  /** Left out at this size, or without engine-native. */
  ignore?: boolean;
  make(): Promise<Trainer>;
}

/** A tfjsHeadLoss contender's head on `engine`. */
function engineHead(options: Parameters<typeof tfjsHeadLoss>[1]) {
  return () => {
    const loss = tfjsHeadLoss(HEAD, options);
    return { fn: loss as unknown as HeadFn, loss };
  };
}

/**
 * The contenders at size `name` (see bench/train_bench.ts's module doc), by group, each group's
 * baseline first; `native` says whether engine-native can run.
 */
export function contenders(name: SizeName, native: boolean): Contender[] {
  const size = SIZES[name];
  if (!size) throw new Error(`TRAIN_BENCH_SIZES: unknown size ${name} (M or L)`);
  const L = name === "L", n = L ? 3 : 8, warmup = L ? 6 : 3;
  const wasm = `train ${name} · tfjs-wasm`, webgpu = `train ${name} · tfjs-webgpu`;
  const onWebgpu = (head: () => { fn: HeadFn; loss?: TfjsHeadLoss }) => async () => {
    await useTfjsBackend("webgpu");
    return await tfjsTrainer("webgpu", size, webgpuShards(size), head);
  };
  const alone = "tfjs work alone (body, Adam on W; no head)";
  return [
    {
      group: `train ${name} · anchor`,
      name: "PyTorch 1.13 step",
      baseline: true,
      n,
      warmup,
      make: () => pytorchTrainer(size),
    },
    {
      group: wasm,
      name: "tfjs autodiff",
      baseline: true,
      n: 4,
      warmup,
      ignore: L,
      make: () => tfjsTrainer("wasm", size, 1, () => ({ fn: autodiff })),
    },
    {
      group: wasm,
      name: alone,
      n,
      warmup,
      ignore: L,
      make: () => tfjsTrainer("wasm", size, 1, () => ({ fn: noHead })),
    },
    ...(["blocking", "calling-thread"] as const).map((mode) => ({
      group: wasm,
      name: `tfjsHeadLoss engine-wasm (${mode})`,
      n,
      warmup,
      ignore: L && mode !== "blocking",
      make: () => tfjsTrainer("wasm", size, 1, engineHead({ engine: "wasm", wasmMode: mode })),
    })),
    {
      group: wasm,
      name: "tfjsHeadLoss engine-native",
      n,
      warmup,
      ignore: !native,
      make: () => tfjsTrainer("wasm", size, 1, engineHead({ engine: "native" })),
    },
    {
      group: webgpu,
      name: "tfjs autodiff",
      baseline: true,
      n: 4,
      warmup,
      ignore: L,
      make: () => tfjsTrainer("webgpu", size, 1, () => ({ fn: autodiff })),
    },
    { group: webgpu, name: alone, n, warmup, ignore: L, make: onWebgpu(() => ({ fn: noHead })) },
    {
      group: webgpu,
      name: "tfjsHeadLoss engine-webgpu",
      n,
      warmup,
      make: onWebgpu(engineHead({ engine: "webgpu" })),
    },
  ];
}

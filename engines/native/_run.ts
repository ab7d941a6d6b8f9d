// One prepared head of engine-native, synchronously: the host's work around the two phases (the
// samples staged, the row statistics between the passes, the gradients finished after them), the
// products a forward-only run keeps for the run after it, and the checks that name a bad input.
// engine.ts wraps it for the engine contract (promises), train/ runs it inside tf.customGrad.
import { reductionWeight } from "../../losses/cross_entropy.ts";
import type { EngineResult, ForwardResult, RunInput, RunSettings } from "../engine.ts";
import {
  BACKWARD,
  BAD,
  BAD_GRAD,
  BAD_LOGITS,
  BAD_WEIGHTS,
  DIRECT_GW,
  ERROR,
  FORWARD,
  HAS_BIAS,
  KEEP_PRODUCTS,
  LOGITS,
  type NativeLayout,
  ON_PRODUCTS,
  PRODUCTS,
  RATIO,
  SLOT_GW,
  SLOT_LOGITS,
  SLOT_W,
  threadRegions,
  W_BYTES,
} from "./_tiles.ts";
import type { Pool } from "./_pool.ts";
import { finishGradients, finishLogits, rowStatistics, stageSamples } from "./_host.ts";
import { type HostHeadSpec, kernelHead, successorOutputs, targetRow } from "../host/samples.ts";
import { onKeptInput, runHead } from "../adacos.ts";

const WHERE = "engine-native";

/** The address of a typed array, for the threads (.buffer first moves a small array off V8's heap). */
function address(array: Float32Array | Float64Array): bigint {
  void array.buffer;
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(array)));
}

const finite = (name: string, data: ArrayLike<number>) => {
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) {
      throw new RangeError(`${WHERE}: ${name} overflowed float32 at ${k} (inputs too large)`);
    }
  }
};

/**
 * The kernels do not look at every input value (a NaN shows as a non-finite logit or loss); when a
 * run fails, the input is scanned so that the error names the argument and the index.
 */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The input value a failed run's error should name, if any.
 */
function inputBlamed(view: RunInput): RangeError | undefined {
  const arrays = [["features", view.x], ["weights", view.w], ["bias", view.bias ?? []]] as const;
  for (const [name, data] of arrays) {
    for (let k = 0; k < data.length; k++) {
      if (!Number.isFinite(data[k])) {
        return new RangeError(`${WHERE}: ${name} must hold finite numbers, got ${data[k]} at ${k}`);
      }
      if (Math.abs(data[k]) > FLOAT32_MAX) {
        return new RangeError(
          `${WHERE}: ${name} exceed the float32 range (|v| ≤ 3.4e38): ${data[k]} at ${k}`,
        );
      }
    }
  }
  return undefined;
}

/**
 * Whether a linear head's non-target ∂W is surely finite in float32: |H_ij| ≤ weight (a
 * probability times the reduction's factor), so |∂W_jd| ≤ weight·Σ_i |x_id|, the column sums of the
 * staged features; far below float32's largest value, no rounding of the product reaches it.
 */
function boundedGradient(L: NativeLayout, buffer: ArrayBufferLike, weight: number): boolean {
  const X = new Float32Array(buffer, L.xt, L.N * L.D), sums = new Float64Array(L.D);
  for (let i = 0; i < L.N; i++) {
    for (let d = 0; d < L.D; d++) sums[d] += Math.abs(X[i * L.D + d]);
  }
  let largest = 0;
  for (const v of sums) largest = Math.max(largest, v);
  return weight * largest < 1e37;
}

/** How a run treats the products of the forward pass (see {@linkcode KeptProducts}). */
interface ProductsUse {
  /** 0, KEEP_PRODUCTS or ON_PRODUCTS. */
  mode: number;
  /** ON_PRODUCTS: this run's scale over the kept products' (float32). */
  ratio: number;
  /** This run's scale (a head of scale radius). */
  scale: number;
}

/**
 * The input whose products (S = X̃·Wᵀ) the memory holds after a forward-only run of a plain head
 * (angular, scale radius; no bias, cosine clamp, hard negatives or sub-centers): AdaCos's first
 * run, whose products its second run, at a new scale on the same arrays (`sameInput`), starts from.
 */
class KeptProducts {
  #of?: { view: RunInput; scale: number };
  constructor(readonly layout: NativeLayout) {}

  /** How this run treats the products; any run ends what was kept. */
  use(
    head: HostHeadSpec,
    view: RunInput,
    settings: RunSettings,
    forwardOnly: boolean,
  ): ProductsUse {
    const last = this.#of, L = this.layout;
    this.#of = undefined;
    const plain = !("successor" in head) && head.logits === "angular" &&
      head.radius.kind === "scale" && !view.bias && L.zlo === -Infinity && !L.hard &&
      !L.subCenters;
    if (!plain) return { mode: 0, ratio: 1, scale: 0 };
    const scale = (head.radius as { scale: number }).scale;
    if (forwardOnly) return { mode: KEEP_PRODUCTS, ratio: 1, scale };
    if (settings.sameInput && last && onKeptInput(view, last.view)) {
      return { mode: ON_PRODUCTS, ratio: Math.fround(scale / last.scale), scale };
    }
    return { mode: 0, ratio: 1, scale };
  }

  /** Records the forward-only run that left its products. */
  keep(view: RunInput, scale: number): void {
    this.#of = { view, scale };
  }
}

/** The forward pass and the losses, synchronously: a forward-only run, or a full run's first half. */
function forwardSync(
  head: HostHeadSpec,
  L: NativeLayout,
  memory: WebAssembly.Memory,
  pool: Pool,
  view: RunInput,
  settings: RunSettings & { logitsOut?: Float32Array; products?: ProductsUse },
) {
  const buffer = memory.buffer, logits = settings.logitsOut;
  const ctl = new Int32Array(buffer, L.control, 16);
  ctl[PRODUCTS] = settings.products?.mode ?? 0;
  new Float32Array(buffer, L.control + 4 * RATIO, 1)[0] = settings.products?.ratio ?? 1;
  const slots = new BigInt64Array(buffer, L.control + 64, 4);
  const weight = reductionWeight(settings.reduction, L.N);
  const samples = stageSamples(head, L, buffer, view);
  if (view.bias) new Float32Array(buffer, L.bias, L.C).set(view.bias);
  // The caller's W stays where it is: the threads read its tiles through its address.
  ctl[W_BYTES] = view.w.BYTES_PER_ELEMENT;
  slots[SLOT_W] = address(view.w);
  if (logits) slots[SLOT_LOGITS] = address(logits);
  ctl[HAS_BIAS] = view.bias ? 1 : 0;
  ctl[LOGITS] = logits ? 1 : 0;
  ctl[BAD] = ctl[ERROR] = 0;

  pool.phase(FORWARD);
  const bad = Atomics.load(ctl, BAD);
  if (bad & BAD_WEIGHTS) throw new RangeError(`${WHERE}: weights exceed the float32 range`);
  if (bad & BAD_LOGITS) {
    throw new RangeError(`${WHERE}: logits overflowed float32 (inputs too large for this loss)`);
  }
  const { reduction } = settings;
  const statistics = rowStatistics(L, buffer, samples.zy, weight, reduction, samples.extraLoss);
  return { samples, statistics, weight };
}

/** Both passes and the host's work around them, synchronously. */
function runSync(
  head: HostHeadSpec,
  L: NativeLayout,
  memory: WebAssembly.Memory,
  pool: Pool,
  view: RunInput,
  settings: RunSettings & { products?: ProductsUse },
): EngineResult<Float32Array> {
  const buffer = memory.buffer;
  const ctl = new Int32Array(buffer, L.control, 16);
  const slots = new BigInt64Array(buffer, L.control + 64, 4);
  const { N, D, C } = L;
  const classes = L.subCenters ? C / L.subCenters : C; // sub-center ArcFace: C counts C·K rows
  const logits = settings.logits ? new Float32Array(N * classes) : undefined;
  const { samples, statistics, weight } = forwardSync(head, L, memory, pool, view, {
    ...settings,
    logitsOut: logits,
  });
  ctl[PRODUCTS] = 0; // the backward phase overwrites them
  const { loss, losses, rest } = statistics;
  // The kernels write every element of ∂W: `into`'s array needs no clearing.
  const gradWeights = (settings.into?.gradWeights as Float32Array) ?? new Float32Array(C * D);
  slots[SLOT_GW] = address(gradWeights);
  ctl[DIRECT_GW] = !L.angular && boundedGradient(L, buffer, weight) ? 1 : 0;
  pool.phase(BACKWARD);
  if (Atomics.load(ctl, BAD) & BAD_GRAD) {
    throw new RangeError(`${WHERE}: gradWeights overflowed float32 (inputs too large)`);
  }

  const parts = Array.from(
    { length: L.threads },
    (_, t) => new Float32Array(buffer, threadRegions(L, t).gx, N * D),
  );
  const gradBias = view.bias ? new Float32Array(buffer, L.gb, C).slice() : undefined;
  const gradFeatures = finishGradients(
    kernelHead(head),
    samples,
    rest,
    weight,
    parts,
    gradWeights,
    gradBias,
  );
  finite("loss", [loss]);
  finite("losses", losses);
  finite("gradFeatures", gradFeatures);
  for (let i = 0; i < N; i++) {
    const y = targetRow(samples, i);
    finite("gradWeights", gradWeights.subarray(y * D, y * D + D));
  }
  if (gradBias) finite("gradBias", gradBias);
  const result: EngineResult<Float32Array> = {
    loss,
    losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradWeights: { rows: C, cols: D, data: gradWeights },
    ...successorOutputs(samples),
  };
  if (gradBias) result.gradBias = gradBias;
  if (logits) {
    finishLogits(samples, logits, classes);
    finite("logits", logits);
    result.logits = { rows: N, cols: classes, data: logits };
  }
  return result;
}

/** The forward pass alone (no BACKWARD phase, none of its products): the losses. */
function forwardOnly(
  head: HostHeadSpec,
  L: NativeLayout,
  memory: WebAssembly.Memory,
  pool: Pool,
  view: RunInput,
  settings: RunSettings & { products?: ProductsUse },
): ForwardResult {
  const { reduction, products } = settings;
  const { loss, losses } = forwardSync(head, L, memory, pool, view, {
    reduction,
    logits: false,
    products,
  }).statistics;
  finite("loss", [loss]);
  finite("losses", losses);
  return { loss, losses };
}

/** What a prepared head runs on. */
export interface HeadParts {
  head: HostHeadSpec;
  layout: NativeLayout;
  memory: WebAssembly.Memory;
  pool: Pool;
  /** The logical cores: the BLAS's own threads when the head has one thread. */
  cores: number;
}

/**
 * A prepared head, synchronous: each run blocks the calling thread while the helper threads and the
 * BLAS work, and reads the caller's arrays in place. A run's head may differ from the prepared one
 * in its numbers (a successor's state, AdaCos's scale, a margin), not in its structure.
 */
export class NativeHead {
  readonly #parts: HeadParts;
  readonly #kept: KeptProducts;
  #disposed = false;

  constructor(parts: HeadParts) {
    this.#parts = parts;
    this.#kept = new KeptProducts(parts.layout);
  }

  /** The threads that take tiles. */
  get threads(): number {
    return this.#parts.layout.threads;
  }

  /** Both passes: the loss, the per-sample losses and the gradients. */
  run(view: RunInput, settings: RunSettings, head?: HostHeadSpec): EngineResult<Float32Array> {
    return this.#guarded(runSync, view, settings, head);
  }

  /** The forward pass alone: the loss and the per-sample losses. */
  forward(view: RunInput, settings: RunSettings, head?: HostHeadSpec): ForwardResult {
    return this.#guarded(forwardOnly, view, settings, head);
  }

  #guarded<R>(
    pass: (...args: Parameters<typeof runSync>) => R,
    view: RunInput,
    settings: RunSettings,
    head = this.#parts.head,
  ): R {
    if (this.#disposed) throw new Error(`${WHERE}: run() after dispose()`);
    const { layout, memory, pool, cores } = this.#parts;
    // One-thread products on each of our threads; with one thread, the BLAS's own threads.
    const restore = pool.main.blasThreads(layout.threads > 1 ? 1 : cores);
    try {
      const now = runHead(head, settings); // AdaCos's per-run scale, where given
      const products = this.#kept.use(now, view, settings, pass === forwardOnly);
      const result = pass(now, layout, memory, pool, view, { ...settings, products });
      if (products.mode === KEEP_PRODUCTS) this.#kept.keep(view, products.scale);
      return result;
    } catch (error) {
      throw inputBlamed(view) ?? error;
    } finally {
      restore();
    }
  }

  /** Ends the helper threads; idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#parts.pool.dispose();
  }
}

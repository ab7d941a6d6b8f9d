// An engine whose runs return at once (engine-wasm's synchronous head, engine-native) inside
// tf.customGrad: the tensors read synchronously (free on tfjs-cpu and tfjs-wasm, whose tensors live
// in CPU memory), one fused forward and backward on a prepared head, and the gradients handed to
// the backward pass as new tensors. A successor head's state after the batch goes to onState in the
// backward pass. The heads are kept by shape (and what else fixes them) and released after a while
// without a call; ∂W goes into the last step's array once tfjs has copied it (tfjs-wasm).
import type { EngineResult, HeadShape } from "../engines/engine.ts";
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import type { HeadInput, Reduction } from "../losses/types.ts";
import type { HostHeadSpec } from "../engines/host/samples.ts";
import { isSuccessorHead } from "../losses/successor_head.ts";
import { tf } from "./tfjs_setup.ts";
import { hostCenterStep } from "./_centers.ts";
import {
  type Call,
  HeadCache,
  type Step,
  tensorFrom,
  weightGradients,
  weightValues,
} from "./_steps.ts";

const RECYCLED = "this step's gradient was taken once and its memory since reused by a later " +
  "step (tfjs-wasm copies each gradient); take a step's gradient before the next step runs";

/**
 * How long the heads stay prepared without a call. Their worker threads keep a Deno process
 * alive, so a training script that never calls dispose() still ends this long after its last
 * step; a later call prepares again (a few milliseconds).
 */
export const IDLE_RELEASE_MS = 2000;

/** A timer that never keeps the process alive by itself (Deno, Node.js; a page never ends). */
function unrefTimer(fn: () => void, ms: number): number {
  const id = setTimeout(fn, ms) as unknown as number | { unref?: () => void };
  const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
  if (typeof id === "number") deno?.unrefTimer?.(id);
  else id.unref?.();
  return id as number;
}

/**
 * A head of an engine whose runs return at once, as a training step runs it: `head` may change
 * from run to run in its numbers; the gradient for W may go into `gradWeightsInto`.
 */
export interface StepHead {
  runSync(
    head: HostHeadSpec,
    input: HeadInput,
    options: { reduction?: Reduction; gradWeightsInto?: Float32Array },
  ): EngineResult<Float32Array>;
  dispose(): void;
}

/** How a {@linkcode SyncPath} makes its heads: now, or ahead (its threads started). */
export interface StepHeads<H extends StepHead> {
  /** The cache key of a call's head: its shape, and what else fixes a prepared head. */
  key(spec: HeadSpec | SuccessorHeadSpec, shape: HeadShape): string;
  create(spec: HeadSpec | SuccessorHeadSpec, shape: HeadShape): H;
  prepare(spec: HeadSpec | SuccessorHeadSpec, shape: HeadShape): Promise<H>;
  /**
   * Whether a head made at a call has less than a prepared one (engine-native's: no helper
   * threads), so that one is prepared at once and takes its place when ready.
   */
  readonly createdLess?: boolean;
}

/** The prepared heads of one loss on an engine whose runs return at once, by key. */
export class SyncPath<H extends StepHead> {
  readonly heads = new HeadCache<H>();
  #idle?: number;
  /** A ∂W array whose values tfjs has copied, with its step: the next step writes it again. */
  #spare?: { array: Float32Array; owner: { recycled: boolean } };
  /** The shards of W copied into one array (W in several tensors), kept from step to step. */
  #stage?: Float32Array;
  constructor(readonly make: StepHeads<H>) {}

  /** Re-arms the release of the heads after {@linkcode IDLE_RELEASE_MS} without a call. */
  #touch(): void {
    clearTimeout(this.#idle);
    this.#idle = unrefTimer(() => this.heads.clear(), IDLE_RELEASE_MS);
  }

  /**
   * The spare ∂W array when it has `size` elements, taken from its step (whose gradient, if taken
   * again, is then an error instead of another step's values).
   */
  #takeSpare(size: number): Float32Array | undefined {
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare?.array.length !== size) return undefined;
    spare.owner.recycled = true;
    return spare.array;
  }

  /** Prepares a head of `shape` ahead, asynchronously. */
  async prepare(
    call: Pick<Call<HeadSpec | SuccessorHeadSpec>, "spec">,
    shape: HeadShape,
  ): Promise<void> {
    const key = this.make.key(call.spec, shape);
    if (this.heads.has(key)) return;
    this.heads.set(key, await this.make.prepare(call.spec, shape));
    this.#touch();
  }

  /**
   * One step: forward and backward now, the gradients kept for the backward pass; a successor
   * head's state after the batch goes to `onState` in the backward pass (once per gradient taken).
   */
  step(
    call: Call<HeadSpec | SuccessorHeadSpec>,
    onState?: (state: Record<string, number>) => void,
  ): Step {
    const { features, labels, N, D, C, spec, reduction, center } = call;
    this.#touch();
    // Prepared for this head's structure (a sub-center tile, …); runSync reads each run's head.
    const shape = { samples: N, dims: D, classes: C }, key = this.make.key(spec, shape);
    const head = this.heads.get(key, () => {
      const made = this.make.create(spec, shape);
      if (this.make.createdLess) {
        this.make.prepare(spec, shape).then(
          (ready) => this.heads.replace(key, made, ready),
          () => {}, // the head made at the call stays
        );
      }
      return made;
    });
    const x = features.dataSync() as Float32Array, y = labels.dataSync();
    const spare = this.#takeSpare(C * D);
    if (call.weights.length > 1 && this.#stage?.length !== C * D) this.#stage = undefined;
    const weights = weightValues(call, this.#stage);
    if (call.weights.length > 1) this.#stage = weights;
    const result = head.runSync(spec, {
      features: { rows: N, cols: D, data: x },
      weights: { rows: C, cols: D, data: weights },
      labels: y,
    }, { reduction, gradWeightsInto: spare });
    const gradFeatures = result.gradFeatures.data, gradWeights = result.gradWeights.data;
    const mine = { recycled: false };
    const state = isSuccessorHead(spec) ? { ...result.state } : undefined;
    let loss = result.loss, moveCenters = () => {};
    if (center) {
      const c = hostCenterStep(call.where, center, x, y, { N, D }, reduction);
      loss += c.loss;
      c.addGradient(gradFeatures);
      moveCenters = () => c.move();
    }
    return {
      value: tf.scalar(loss),
      gradFunc: (dy: tf.Scalar) => {
        if (mine.recycled) throw new Error(`${call.where}: ${RECYCLED}`);
        moveCenters();
        if (state) onState?.({ ...state });
        const scale = dy.dataSync()[0];
        const gx = tensorFrom(call.where, gradFeatures, [N, D]);
        const grads = [
          scale === 1 ? gx : tf.mul(gx, scale),
          tf.zerosLike(labels),
          ...weightGradients(call, gradWeights, scale),
        ];
        // tfjs-wasm copied ∂W into its heap: the next step may write this array.
        if (tf.getBackend() === "wasm") this.#spare = { array: gradWeights, owner: mine };
        return grads;
      },
    };
  }

  /** Releases every prepared head. */
  dispose(): void {
    clearTimeout(this.#idle);
    this.heads.clear();
  }
}

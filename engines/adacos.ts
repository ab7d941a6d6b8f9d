/**
 * AdaCos on any engine whose heads take a per-run scale ({@linkcode RunSettings.scale}): given the
 * batch's new scale, AdaCos is the scale-only angular head without margin (NormFace's), which
 * every engine computes, so it is built here once, from the engine's own `prepare`.
 *
 * A run with `updateScale` (the default) is two runs of that head: the first at the old scale s,
 * whose per-sample losses ℓ_i = ln Σ_j e^(s·c_ij) − s·c_iy give each sample's non-target sum
 * without the N×C logits: ln Σ_{j≠y} e^(s·c_ij) = s·c_iy + ln expm1(ℓ_i), in float64 with the
 * target cosines c_iy from x and the target rows of W (engines/host/samples.ts); then the new
 * scale by losses/adacos_scale.ts (the reference's own function: a log-sum-exp, so no exp
 * overflows at any s); then the run at the new scale, whose result carries `state: { scale }`.
 * The first run needs only the losses: it is the engine's forward-only run
 * ({@linkcode EngineHead.forward}: no backward pass, no gradient products) where it has one
 * (engine-wasm, engine-native, engine-webgpu), else a full run whose gradients are dropped; the
 * second run is marked `sameInput`, so an engine may start from the first one's cosines (each of
 * the three). The prepared head
 * keeps a copy of W (the second run starts after an await, when the caller may have changed its
 * arrays). `updateScale: false` is one run at s. A head whose runs return at once (engine-wasm's
 * synchronous head, for tfjsHeadLoss) makes the same two runs through {@linkcode runAdaCosSync},
 * without the copies (its first run is a full one).
 *
 * @module
 */
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import { adaCosNextScale, adaCosOldScale, logExpm1 } from "../losses/adacos_scale.ts";
import type { EngineHead, HeadShape, RunInput, RunSettings } from "./engine.ts";
import { type HostHeadSpec, sampleTerms } from "./host/samples.ts";

/**
 * The head a run computes: the run's own successor head ({@linkcode RunSettings.head}: new state
 * or margins) or the prepared `head`, and with {@linkcode RunSettings.scale} the prepared head at
 * that scale (which needs a head of scale radius).
 */
export function runHead(head: HeadSpec, settings: Omit<RunSettings, "head">): HeadSpec;
export function runHead(head: HostHeadSpec, settings: RunSettings): HostHeadSpec;
export function runHead(head: HostHeadSpec, settings: RunSettings): HostHeadSpec {
  const scale = settings.scale;
  if (scale === undefined) return settings.head ?? head;
  if ("successor" in head || head.logits !== "angular" || head.radius.kind !== "scale") {
    throw new RangeError(`a run's scale needs a head of scale radius, got head "${head.name}"`);
  }
  if (!Number.isFinite(scale) || scale <= 0) {
    throw new RangeError(`a run's scale must be a finite number > 0, got ${scale}`);
  }
  return { ...head, radius: { kind: "scale", scale } };
}

/**
 * Whether a run marked {@linkcode RunSettings.sameInput} is on the arrays of `last`, the
 * forward-only run whose cosines (or products) an engine kept: the same x, W and labels arrays.
 */
export function onKeptInput(
  view: Pick<RunInput, "x" | "w" | "labels">,
  last?: Pick<RunInput, "x" | "w" | "labels">,
): boolean {
  return last !== undefined && last.x === view.x && last.w === view.w &&
    last.labels === view.labels;
}

/** AdaCos's base head: angular, of scale radius, without margin. */
export type AdaCosBase = Extract<HeadSpec, { logits: "angular" }> & {
  radius: { kind: "scale"; scale: number };
};

/** What AdaCos's next scale reads of a run's input: x (N×D), W and the labels. */
export interface AdaCosInput {
  N: number;
  D: number;
  x: Float32Array | Float64Array;
  w: Float32Array | Float64Array;
  labels: Int32Array;
}

/**
 * AdaCos's scale-only angular head without margin (NormFace's) at the scale before the batch, for
 * a checked `adaCos` successor head on `classes` classes: every run of an AdaCos head is a run of
 * this head, at this scale or at the batch's new one.
 */
export function adaCosBaseHead(
  where: string,
  head: SuccessorHeadSpec,
  classes: number,
): AdaCosBase {
  const hook = head.successor;
  if (hook.kind !== "adaCos") {
    throw new RangeError(`${where}: head.successor (${JSON.stringify(hook.kind)}) is not AdaCos`);
  }
  return {
    name: head.name,
    logits: "angular",
    radius: { kind: "scale", scale: adaCosOldScale(where, hook.scale, classes) },
    margin: { kind: "none" },
    marginGradient: head.marginGradient,
  };
}

/**
 * The batch's new scale from a run of the base head at the old scale (its per-sample `losses`):
 * each sample's non-target sum ln Σ_{j≠y} e^(s·c_ij) = s·c_iy + ln expm1(ℓ_i), then
 * losses/adacos_scale.ts.
 */
export function adaCosScaleAfter(
  base: AdaCosBase,
  input: AdaCosInput,
  losses: ArrayLike<number>,
): number {
  const old = base.radius.scale, { N, D, x, w, labels } = input;
  const targets = sampleTerms(base, { N, D, labels, x, w, wRow: labels }).tc;
  // ℓ_i ≥ 0 (a rounding below 0 would make ln expm1 NaN).
  const logSums = targets.map((c, i) => old * c + logExpm1(Math.max(losses[i], 0)));
  return adaCosNextScale(old, logSums, targets);
}

/**
 * An AdaCos run on a head whose runs return at once (engine-wasm's synchronous head): `first` (the
 * per-sample losses alone) of the base head at the old scale, then `run` at the new one with
 * `afterFirst` set (the same input: the engine may reuse that pass's cosines), or one `run` at the
 * old scale without `updateScale`; its result with `state: { scale }`. The caller's arrays cannot
 * change in between, so nothing is copied.
 */
export function runAdaCosSync<R>(
  where: string,
  head: SuccessorHeadSpec,
  input: AdaCosInput & { C: number },
  passes: {
    first: (head: HeadSpec) => { losses: ArrayLike<number> };
    run: (head: HeadSpec, afterFirst: boolean) => R;
  },
): R & { state: { scale: number } } {
  const base = adaCosBaseHead(where, head, input.C);
  const old = base.radius.scale;
  if (!(head.successor as { updateScale: boolean }).updateScale) {
    return { ...passes.run(base, false), state: { scale: old } };
  }
  const scale = adaCosScaleAfter(base, input, passes.first(base).losses);
  const next = passes.run({ ...base, radius: { kind: "scale", scale } }, true);
  return { ...next, state: { scale } };
}

/**
 * An engine's `prepareSuccessor` from its `prepare` (which takes a plain head or a successor head
 * the engine computes itself): AdaCos through {@linkcode prepareAdaCos}, any other head straight
 * to `prepare`.
 */
export function successorPreparer<T extends Float32Array | Float64Array, O>(
  where: string,
  prepare: (head: HostHeadSpec, shape: HeadShape, options: O) => Promise<EngineHead<T>>,
): (head: SuccessorHeadSpec, shape: HeadShape, options: O) => Promise<EngineHead<T>> {
  return (head, shape, options) =>
    head.successor.kind === "adaCos"
      ? prepareAdaCos(where, head, shape, (base) => prepare(base, shape, options))
      : prepare(head, shape, options);
}

/**
 * Prepares an AdaCos head (a checked `adaCos` successor head) on an engine, from its `prepare` of
 * a plain head and its shape: see the module doc.
 */
export async function prepareAdaCos<T extends Float32Array | Float64Array>(
  where: string,
  head: SuccessorHeadSpec,
  shape: HeadShape,
  prepare: (base: HeadSpec) => Promise<EngineHead<T>>,
): Promise<EngineHead<T>> {
  const base = adaCosBaseHead(where, head, shape.classes);
  const old = base.radius.scale, { updateScale } = head.successor as { updateScale: boolean };
  const inner = await prepare(base);
  const { samples: N, dims: D, classes: C } = shape;
  // The run at the new scale starts after an await, so each run copies the caller's arrays into
  // buffers kept from run to run (a new 41 MB W per run costs its page faults: ~100 ms), W in the
  // caller's precision; prepareOn queues the runs of a head, so one run at a time uses them.
  const x = new Float64Array(N * D), labels = new Int32Array(N);
  let w: Float32Array | Float64Array | undefined;
  return {
    threads: inner.threads,
    async run(view, { head: own, ...settings }) {
      // A run's own state: its scale, the base head's at that scale (everything else the same).
      const before = own ? adaCosBaseHead(where, own, C).radius.scale : old;
      const atBefore = own ? { scale: before } : {};
      if (!updateScale) {
        return { ...await inner.run(view, { ...settings, ...atBefore }), state: { scale: before } };
      }
      if (w?.constructor !== view.w.constructor) {
        w = view.w instanceof Float32Array ? new Float32Array(C * D) : new Float64Array(C * D);
      }
      x.set(view.x);
      w.set(view.w);
      labels.set(view.labels);
      const input: RunInput = { ...view, x, w, labels };
      const first: RunSettings = { reduction: settings.reduction, logits: false, ...atBefore };
      const runBase: AdaCosBase = { ...base, radius: { kind: "scale", scale: before } };
      const { losses } = await (inner.forward?.(input, first) ?? inner.run(input, first));
      const scale = adaCosScaleAfter(runBase, { N, D, x, w, labels }, losses);
      // The same input again: an engine may take the cosines from its forward pass.
      const second = { ...settings, scale, sameInput: true };
      return { ...await inner.run(input, second), state: { scale } };
    },
    dispose: () => inner.dispose(),
  };
}

// One run of engine-wasm on the host side, shared by the asynchronous heads (engine.ts) and the
// synchronous ones (_blocking.ts): the head's memory and parameter block, the inputs written before
// the kernels run, and the float64 finishing step after they ran.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import { reductionWeight } from "../../losses/cross_entropy.ts";
import type { CheckedHeadView } from "../../losses/checks.ts";
import type { EngineResult, RunSettings, RunTargets } from "../engine.ts";
import * as L from "./assembly/layout.ts";
import { PARAMS, type WasmLayout } from "./_layout.ts";
import {
  checkFloat32,
  fitsFloat32,
  FLOAT32_MAX,
  float32Error,
  layOutWeights,
  packSamples,
  sampleMaths,
  type Samples,
} from "./_inputs.ts";
import { checkFiniteOutput, gradFeaturesOf, logitsOf, unpad } from "./_finish.ts";
import { type Losses, lossesOf } from "../host/losses.ts";
import {
  type HostHeadSpec,
  type SampleCopies,
  successorOutputs,
  targetRow,
} from "../host/samples.ts";

const RUN = "wasm run";

/** Refuses an angular head whose scale is beyond float32 (this engine computes in float32). */
export function checkScale(where: string, head: HeadSpec): void {
  if (head.logits === "angular" && head.radius.kind === "scale") {
    if (!fitsFloat32(head.radius.scale)) {
      throw new RangeError(
        `${where}: head.radius.scale must lie within float32's range for this float32 ` +
          `engine, got ${head.radius.scale}`,
      );
    }
  }
}

/** A head's shared memory, sized by its layout. */
export function headMemory(layout: WasmLayout): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: layout.pages, maximum: layout.pages, shared: true });
}

/** Writes the parameter block of `layout` (whose slots depend on the head's structure). */
export function writeSlots(head: HeadSpec, layout: WasmLayout, memory: WebAssembly.Memory): void {
  const params = new Int32Array(memory.buffer, PARAMS, L.PARAM_SLOTS);
  for (const [slot, value] of layout.slots) params[slot] = value;
  if (head.logits === "linear") {
    new Float32Array(memory.buffer, layout.offsets.invcw).fill(1, 0, layout.Cp);
  }
}

/** Each head's float64 copies from its last run, by its memory (one per prepared head). */
const sampleCopies = new WeakMap<WebAssembly.Memory, SampleCopies>();

/**
 * Writes a run's inputs into the memory; returns the float64 copies the finishing step needs.
 * `forwardOnly`: the kernels skip the backward pass (finish with {@linkcode finishLosses}).
 */
export function layOutRun(
  head: HostHeadSpec,
  layout: WasmLayout,
  memory: WebAssembly.Memory,
  view: CheckedHeadView,
  reduction: Reduction,
  passes: { forwardOnly?: boolean; reuseCosines?: boolean } = {},
): Samples {
  const { C, Np, Dp, Cp, offsets: o } = layout, buffer = memory.buffer;
  let copies = sampleCopies.get(memory);
  if (!copies) sampleCopies.set(memory, copies = {});
  const samples = sampleMaths(RUN, head, view, copies);
  const bias = new Float32Array(buffer, o.bias, C);
  if (view.bias) {
    checkFloat32(RUN, "bias", view.bias);
    bias.set(view.bias);
  } else bias.fill(0);
  // Reusing the last pass's cosines: W (and its norms) are in place from that pass.
  if (!passes.reuseCosines) {
    layOutWeights(new Float32Array(buffer, o.w, Cp * Dp), view.w, layout.D, Dp);
  }
  packSamples(
    samples,
    {
      xpack: new Float32Array(buffer, o.xpack, Np * Dp),
      xpackk: new Float32Array(buffer, o.xpackk, Np * Dp),
      a: new Float32Array(buffer, o.a, Np),
      zy: new Float64Array(buffer, o.zy, Np),
      labels: new Int32Array(buffer, o.labels, Np),
      weight: new Float32Array(buffer, o.weight, Np),
    },
    Dp,
    reductionWeight(reduction, layout.N),
  );
  const params = new Int32Array(buffer, PARAMS, L.PARAM_SLOTS);
  if (layout.hard) writeHardNegatives(samples, layout, buffer, params);
  for (const slot of [L.SLOT_BAD, L.SLOT_BAD_W, L.SLOT_BAD_Z]) params[slot] = 0;
  params[L.SLOT_NEXT_FORWARD] = params[L.SLOT_NEXT_BACKWARD] = 0;
  params[L.SLOT_FORWARD_ONLY] = passes.forwardOnly ? 1 : 0;
  params[L.SLOT_REUSE_COS] = passes.reuseCosines ? 1 : 0;
  return samples;
}

/** CurricularFace's t and thresholds for the kernels (padding rows: +∞, no hard negative). */
function writeHardNegatives(
  s: Samples,
  layout: WasmLayout,
  buffer: ArrayBufferLike,
  params: Int32Array,
): void {
  if (!s.hardNegatives) {
    throw new Error(`${RUN}: a hard-negative layout needs the head's thresholds`);
  }
  new Float32Array(buffer, layout.offsets.thr, layout.Np).fill(Infinity).set(
    s.hardNegatives.threshold,
  );
  new Float32Array(params.buffer, params.byteOffset + 4 * L.SLOT_HARD_T, 1)[0] = s.hardNegatives.t;
}

/**
 * The losses from the forward pass's statistics (all a forward-only run returns), after the
 * kernels' checks of W and of the logits.
 */
export function finishLosses(
  layout: WasmLayout,
  memory: WebAssembly.Memory,
  s: Samples,
  reduction: Reduction,
): Losses {
  const buffer = memory.buffer, params = new Int32Array(buffer, PARAMS, L.PARAM_SLOTS);
  if (params[L.SLOT_BAD_W]) throw weightsError(layout, buffer);
  if (params[L.SLOT_BAD_Z]) throw logitsError();
  const stats = new Float64Array(buffer, layout.offsets.stats, 2 * layout.Np);
  return lossesOf(stats, s.zy, layout.N, reduction, s.extraLoss);
}

/**
 * Reads the kernels' results into new arrays (∂W into `settings.into`'s where given) and finishes
 * them in float64.
 */
export function finishRun(
  head: HeadSpec,
  layout: WasmLayout,
  memory: WebAssembly.Memory,
  s: Samples,
  settings: Omit<RunSettings, "into"> & { bias: boolean; into?: Pick<RunTargets, "gradWeights"> },
): EngineResult<Float32Array> {
  const { N, D, C, Np, Dp, Cp, offsets: o } = layout, buffer = memory.buffer;
  const params = new Int32Array(buffer, PARAMS, L.PARAM_SLOTS);
  const losses = finishLosses(layout, memory, s, settings.reduction);
  const weight = reductionWeight(settings.reduction, N);
  const radius = head.logits === "angular" ? head.radius.kind : undefined;
  const parts = layout.thread.map((t) => ({
    gx: new Float64Array(buffer, t.gx, Np * Dp),
    sumx: new Float64Array(buffer, t.sumx, Np),
    grada: new Float64Array(buffer, t.grada, Np),
  }));
  const into = settings.into?.gradWeights as Float32Array | undefined;
  const gradWeights = unpad(new Float32Array(buffer, o.gw, Cp * Dp), C, D, Dp, into);
  const gradBias = settings.bias ? new Float32Array(buffer, o.gb, C).slice() : undefined;
  const targets = { gradWeights, gradBias };
  const gradFeatures = gradFeaturesOf(s, radius, parts, losses, weight, Dp, targets);
  checkFiniteOutput(RUN, "gradFeatures", gradFeatures, D);
  if (params[L.SLOT_BAD]) checkFiniteOutput(RUN, "gradWeights", gradWeights, D);
  for (let i = 0; i < N; i++) {
    const y = targetRow(s, i);
    checkFiniteOutput(RUN, "gradWeights", gradWeights.subarray(y * D, y * D + D), D, y * D);
  }
  if (gradBias) checkFiniteOutput(RUN, "gradBias", gradBias, C);
  const result: EngineResult<Float32Array> = {
    loss: losses.loss,
    losses: losses.losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradWeights: { rows: C, cols: D, data: gradWeights },
    ...successorOutputs(s),
  };
  if (gradBias) result.gradBias = gradBias;
  if (settings.logits) {
    const cos = new Float32Array(buffer, o.cos, Cp * Np);
    const nw = radius === "normProduct" ? new Float32Array(buffer, o.nw, C) : undefined;
    const clamp = Number.isFinite(layout.clamp[0]) ? layout.clamp : undefined;
    // Sub-center ArcFace: N×(C/K) class logits, each the largest of its K rows'.
    const K = Math.max(layout.subCenters, 1), classes = C / K;
    const data = logitsOf(s, cos, Np, classes, nw, clamp, K);
    result.logits = { rows: N, cols: classes, data };
  }
  return result;
}

/** The culprit of a row of W the kernels refused: an element beyond float32, or the row's norm. */
function weightsError(layout: WasmLayout, buffer: ArrayBufferLike): RangeError {
  const { C, D, Dp, offsets: o } = layout;
  const w = new Float32Array(buffer, o.w, C * Dp);
  for (let j = 0; j < C; j++) {
    for (let k = 0; k < D; k++) {
      if (!Number.isFinite(w[j * Dp + k])) {
        // The float32 copy holds NaN as NaN; a value past float32 became ±Infinity there.
        const v = w[j * Dp + k];
        return float32Error(RUN, "weights", j * D + k, Number.isNaN(v) ? v : undefined, D);
      }
    }
  }
  const nw = new Float32Array(buffer, o.nw, C);
  const j = nw.findIndex((n) => !Number.isFinite(n));
  return new RangeError(
    `${RUN}: the norm of weights row ${j} exceeds float32's range (${FLOAT32_MAX}); this float32 ` +
      "engine cannot normalise it",
  );
}

function logitsError(): RangeError {
  return new RangeError(
    `${RUN}: the logits a_i·b_j·cos (or x·w + b) exceed float32's range: features, weights or ` +
      "bias too large for this float32 engine",
  );
}

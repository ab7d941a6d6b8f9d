// The host half of a run's read-back, pure: per-sample losses in float64 from the row pass's
// (m − z_y, R), the reduced loss, the gradients copied out of the mapped read-back buffer, and a
// clear error where a result is not finite in float32. A successor head's run is finished as on
// engine-wasm and engine-native, by the same host maths (engines/host/): its losses with MagFace's
// regulariser, the targets' part of ∂x and ∂W in float64 (the passes leave it out) with MagFace's
// radial term, the state and margins passed on.
import type { EngineResult, ForwardResult, RunSettings } from "../engine.ts";
import type { Reduction } from "../../losses/types.ts";
import type { Layout } from "./_layout.ts";
import { lossesOf } from "../host/losses.ts";
import { type RowReader, type RowSums, sampleGradients } from "../host/gradients.ts";
import { type Samples, successorOutputs, targetRow } from "../host/samples.ts";

/**
 * loss = log(1 + e^{m − z_y}·R) = softplus(d + log R), with d = m − z_y (m the largest non-target
 * logit) and R = Σ_{j≠y} e^{z_j − m} ≥ 1: exact to its inputs' precision however small the loss.
 * R = 0 means there is no other class (C = 1): the loss is 0.
 */
export function sampleLoss(d: number, R: number): number {
  if (R === 0) return 0;
  const u = R * Math.exp(d);
  if (u > 0 && u < Infinity) return Math.log1p(u);
  const t = d + Math.log(R); // e^d under- or overflows float64
  return t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t));
}

function notFinite(where: string, name: string, k: number, value: number): RangeError {
  return new RangeError(
    `${where}: ${name}[${k}] is ${value}, not finite in float32 (inputs too large for this loss ` +
      `in float32; the reference engine computes in float64)`,
  );
}

/**
 * Copies `src` into `out` from `at`, checking in the same pass that every value is finite
 * (v − v is 0 for a finite v and NaN otherwise, so one branch-free sum tells).
 */
function copyFinite(where: string, name: string, src: Float32Array, out: Float32Array, at = 0) {
  let acc = 0;
  for (let k = 0; k < src.length; k++) {
    const v = src[k];
    out[at + k] = v;
    acc += v - v;
  }
  if (acc === 0) return;
  const k = src.findIndex((v) => !Number.isFinite(v));
  throw notFinite(where, name, at + k, src[k]);
}

/** A new copy of `src`, checked (see {@linkcode copyFinite}). */
function finiteCopy(where: string, name: string, src: Float32Array): Float32Array {
  const out = new Float32Array(src.length);
  copyFinite(where, name, src, out);
  return out;
}

/** The per-sample losses from the row pass's N pairs (m − z_y, R). */
function rowLosses(rows: Float32Array, N: number): Float64Array {
  const losses = new Float64Array(N);
  for (let i = 0; i < N; i++) losses[i] = sampleLoss(rows[2 * i], rows[2 * i + 1]);
  return losses;
}

/** The losses' reduction; throws where one is not finite. */
function reducedLoss(where: string, losses: Float64Array, reduction: Reduction): number {
  const k = losses.findIndex((v) => !Number.isFinite(v));
  if (k >= 0) throw notFinite(where, "losses", k, losses[k]);
  let total = 0;
  for (const v of losses) total += v;
  return reduction === "mean" ? total / losses.length : total;
}

/** A forward-only run's losses from its read-back: the row pass's (m − z_y, R), N of them. */
export function finishForward(
  where: string,
  layout: Layout,
  range: ArrayBuffer,
  reduction: Reduction,
): ForwardResult {
  const losses = rowLosses(new Float32Array(range, 0, 2 * layout.N), layout.N);
  return { loss: reducedLoss(where, losses, reduction), losses };
}

/**
 * Builds a run's result from the mapped read-back `range`, laid out as `layout.read` (then the
 * logits, when the run asked for them).
 */
export function finishRun(
  where: string,
  layout: Layout,
  range: ArrayBuffer,
  settings: RunSettings,
  hasBias: boolean,
  successor?: Samples,
): EngineResult<Float32Array> {
  const { N, C, D } = layout;
  const classes = layout.logitsBytes / 4 / N; // sub-center ArcFace: C/K
  let losses: Float64Array = new Float64Array(N), rows = new Float32Array(0);
  const gradWeights = (settings.into?.gradWeights as Float32Array) ?? new Float32Array(C * D);
  let gradFeatures: Float32Array = new Float32Array(0), gradBias: Float32Array | undefined;
  let offset = 0, filled = 0;
  for (const part of layout.read) {
    const data = new Float32Array(range, offset, part.bytes / 4);
    offset += part.bytes;
    if (part.name === "rows") {
      rows = data;
      losses = rowLosses(data, N);
    } else if (part.name === "gradFeatures") gradFeatures = finiteCopy(where, part.name, data);
    else if (part.name === "gradWeights") {
      copyFinite(where, part.name, data, gradWeights, filled);
      filled += data.length;
    } else if (part.name === "gradBias" && hasBias) gradBias = finiteCopy(where, part.name, data);
  }
  if (successor) {
    const done = finishSuccessor(where, rows, settings, successor, gradFeatures, gradWeights);
    losses = done.losses;
    gradFeatures = done.gradFeatures;
  }
  const result: EngineResult<Float32Array> = {
    loss: reducedLoss(where, losses, settings.reduction),
    losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradWeights: { rows: C, cols: D, data: gradWeights },
    ...(successor ? successorOutputs(successor) : {}),
  };
  if (gradBias) result.gradBias = gradBias;
  if (settings.logits) {
    const logits = new Float32Array(range, offset, N * classes);
    result.logits = { rows: N, cols: classes, data: finiteCopy(where, "logits", logits) };
  }
  return result;
}

/** The passes' ∂x rows as the non-target sums of the host's gradients (norm backward included). */
class GradRows implements RowReader {
  readonly sums: RowSums = { scale: 1, sumx: 0, grada: 0 };
  constructor(readonly gx: Float32Array, readonly D: number) {}
  read(i: number, row: Float64Array): RowSums {
    row.set(this.gx.subarray(i * this.D, i * this.D + this.D));
    return this.sums;
  }
}

/**
 * A successor head's per-sample losses (lossesOf on the row pass's (m − z_y, R) pairs: the gap
 * itself, so z_y is 0 there), its extra loss included, and ∂x with the targets' part, whose ∂W
 * rows are added to `gradWeights` in place (sampleGradients, in float64: f′ grows without bound
 * near c = ±1, where the passes' float32 would cancel), MagFace's radial term with it.
 */
function finishSuccessor(
  where: string,
  rows: Float32Array,
  settings: RunSettings,
  s: Samples,
  gx: Float32Array,
  gradWeights: Float32Array,
): { losses: Float64Array; gradFeatures: Float32Array } {
  const { N, D } = s;
  const weight = settings.reduction === "mean" ? 1 / N : 1;
  const { losses, rest } = lossesOf(rows, new Float64Array(N), N, "sum", s.extraLoss);
  const reader = new GradRows(gx, D);
  const gradFeatures = sampleGradients(s, "scale", { rest }, weight, reader, { gradWeights });
  checkFinite(where, "gradFeatures", gradFeatures);
  for (let i = 0; i < N; i++) {
    const r = targetRow(s, i);
    checkFinite(where, "gradWeights", gradWeights.subarray(r * D, r * D + D), r * D);
  }
  return { losses, gradFeatures };
}

function checkFinite(where: string, name: string, values: Float32Array, at = 0): void {
  const k = values.findIndex((v) => !Number.isFinite(v));
  if (k >= 0) throw notFinite(where, name, at + k, values[k]);
}

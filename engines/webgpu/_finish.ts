// The host half of a run's read-back, pure: per-sample losses in float64 from the row pass's
// (m − z_y, R), the reduced loss, the gradients copied out of the mapped read-back buffer, and a
// clear error where a result is not finite in float32.
import type { EngineResult, RunSettings } from "../engine.ts";
import type { Layout } from "./_layout.ts";

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
): EngineResult<Float32Array> {
  const { N, C, D } = layout;
  const losses = new Float64Array(N);
  const gradWeights = new Float32Array(C * D);
  let gradFeatures: Float32Array = new Float32Array(0), gradBias: Float32Array | undefined;
  let offset = 0, filled = 0;
  for (const part of layout.read) {
    const data = new Float32Array(range, offset, part.bytes / 4);
    offset += part.bytes;
    if (part.name === "rows") {
      for (let i = 0; i < N; i++) losses[i] = sampleLoss(data[2 * i], data[2 * i + 1]);
    } else if (part.name === "gradFeatures") gradFeatures = finiteCopy(where, part.name, data);
    else if (part.name === "gradWeights") {
      copyFinite(where, part.name, data, gradWeights, filled);
      filled += data.length;
    } else if (part.name === "gradBias" && hasBias) gradBias = finiteCopy(where, part.name, data);
  }
  const k = losses.findIndex((v) => !Number.isFinite(v));
  if (k >= 0) throw notFinite(where, "losses", k, losses[k]);
  let total = 0;
  for (const v of losses) total += v;
  const result: EngineResult<Float32Array> = {
    loss: settings.reduction === "mean" ? total / N : total,
    losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradWeights: { rows: C, cols: D, data: gradWeights },
  };
  if (gradBias) result.gradBias = gradBias;
  if (settings.logits) {
    const logits = new Float32Array(range, offset, N * C);
    result.logits = { rows: N, cols: C, data: finiteCopy(where, "logits", logits) };
  }
  return result;
}

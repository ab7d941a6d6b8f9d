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

/** The index of the first value of `data` that is not finite, or -1. */
function firstNonFinite(data: Float32Array | Float64Array): number {
  let acc = 0; // v − v is 0 for a finite v and NaN otherwise: one branch-free pass
  for (let k = 0; k < data.length; k++) acc += data[k] - data[k];
  if (acc === 0) return -1;
  for (let k = 0; k < data.length; k++) if (!Number.isFinite(data[k])) return k;
  return -1;
}

function assertFinite(where: string, name: string, data: Float32Array | Float64Array): void {
  const k = firstNonFinite(data);
  if (k >= 0) {
    throw new RangeError(
      `${where}: ${name}[${k}] is ${data[k]}, not finite in float32 (inputs too large for ` +
        `this loss in float32; the reference engine computes in float64)`,
    );
  }
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
  let gradFeatures = new Float32Array(0), gradBias: Float32Array | undefined;
  let offset = 0, filled = 0;
  for (const part of layout.read) {
    const data = new Float32Array(range, offset, part.bytes / 4);
    offset += part.bytes;
    if (part.name === "rows") {
      for (let i = 0; i < N; i++) losses[i] = sampleLoss(data[2 * i], data[2 * i + 1]);
    } else if (part.name === "gradFeatures") gradFeatures = data.slice();
    else if (part.name === "gradWeights") {
      gradWeights.set(data, filled);
      filled += data.length;
    } else if (part.name === "gradBias" && hasBias) gradBias = data.slice();
  }
  const logits = settings.logits ? new Float32Array(range, offset, N * C).slice() : undefined;
  const outputs = { losses, gradFeatures, gradWeights, gradBias, logits };
  for (const [name, data] of Object.entries(outputs)) if (data) assertFinite(where, name, data);
  let total = 0;
  for (const v of losses) total += v;
  const result: EngineResult<Float32Array> = {
    loss: settings.reduction === "mean" ? total / N : total,
    losses,
    gradFeatures: { rows: N, cols: D, data: gradFeatures },
    gradWeights: { rows: C, cols: D, data: gradWeights },
  };
  if (gradBias) result.gradBias = gradBias;
  if (logits) result.logits = { rows: N, cols: C, data: logits };
  return result;
}

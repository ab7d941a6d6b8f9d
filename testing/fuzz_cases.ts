// The cases of the differential fuzz test (engines/fuzz_test.ts): a small record that fast-check
// draws and shrinks (head and options, sizes, scales, a data seed), and the input built from it.
import fc from "fast-check";
import {
  HEAD_CATALOG,
  type HeadInput,
  type HeadResult,
  type HeadSpec,
  matrix,
  type Reduction,
} from "../mod.ts";
import { MAX_PSI_MARGIN, NORM_EPS } from "../losses/checks.ts";
import { targetFunction } from "../losses/target.ts";
import { targetMarginParams } from "../losses/margin_params.ts";
import { gaussian, seededRandom } from "./random.ts";

/** One fuzz case: everything the input is built from, small enough to print and to shrink. */
export interface FuzzCase {
  /** A name of {@linkcode HEAD_CATALOG}. */
  head: string;
  /** The loss's options (scale, margins, marginGradient…), all within their valid ranges. */
  options: Record<string, unknown>;
  /** N samples, D dims, C classes. */
  N: number;
  D: number;
  C: number;
  /** Seed of the features, weights, labels and bias. */
  seed: number;
  /** log10 of the feature rows' norm, and how many decades the rows spread around it. */
  xScale: number;
  xSpread: number;
  /** log10 of the weight rows' norm, and how many decades the rows spread around it. */
  wScale: number;
  wSpread: number;
  /** The share of samples placed near their target row (well classified when the noise is small). */
  fit: number;
  /** log10 of the smallest and the largest angular noise of the fitted samples. */
  noiseFrom: number;
  noiseTo: number;
  /** A bias (linear heads only). */
  bias: boolean;
}

const REDUCTIONS: readonly Reduction[] = ["mean", "sum", "none"];

/** Every reduction, in the order the fuzz test runs them on one prepared head. */
export const FUZZ_REDUCTIONS = REDUCTIONS;

/**
 * A number in [min, max]: uniform most of the time, else fast-check's own doubles, which favour the
 * ends of the range (and values such as 5e-324 next to 0).
 */
function within(min: number, max: number, options: { maxExcluded?: boolean } = {}) {
  const steps = 1 << 20;
  const uniform = fc.integer({ min: 0, max: options.maxExcluded ? steps - 1 : steps })
    .map((k) => min + (max - min) * k / steps);
  const edges = fc.double({ min, max, maxExcluded: options.maxExcluded, noNaN: true });
  return fc.oneof({ arbitrary: uniform, weight: 3 }, { arbitrary: edges, weight: 1 });
}

const scale = within(1, 128);
const marginGradient = fc.constantFrom("exact", "detached");
const psiMargin = fc.integer({ min: 1, max: MAX_PSI_MARGIN });
const lambda = fc.oneof(
  fc.constant(0),
  within(-2, 3).map((e) => 10 ** e),
);
const angle = within(0, Math.PI, { maxExcluded: true });
const unit = within(0, 1);

/** Valid options of each catalog head, covering each range end to end. */
const OPTIONS: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  softmax: fc.constant({}),
  normFace: fc.record({ scale }),
  lSoftmax: fc.record({ margin: psiMargin, lambda, marginGradient }),
  sphereFace: fc.record({ margin: psiMargin, lambda, marginGradient }),
  fNormSphereFace: fc.record({ scale, margin: psiMargin, marginGradient }),
  cosFace: fc.record({ scale, margin: unit, marginGradient }),
  arcFace: fc.record({ scale, margin: angle, easyMargin: fc.boolean(), marginGradient }),
  combinedMargin: fc.record({
    scale,
    m1: within(0.01, 8),
    m2: angle,
    m3: unit,
    marginGradient,
  }),
};

/** D from 1 to 70, odd half of the time (engines pad D to their vector width). */
const dims = fc.oneof(
  fc.integer({ min: 0, max: 34 }).map((k) => 2 * k + 1),
  fc.integer({ min: 1, max: 70 }),
);

/** log10 of row norms: mostly 1e-3 to 1e3, sometimes 1e-15 (past NORM_EPS) to 1e15. */
const norms = fc.oneof({ arbitrary: within(-3, 3), weight: 4 }, {
  arbitrary: within(-15, 15),
  weight: 1,
});

/** The arbitrary of fuzz cases: every catalog head, N 1–40, D 1–70, C 2–300, logits tiny to large. */
export function fuzzCase(): fc.Arbitrary<FuzzCase> {
  const head = fc.constantFrom(...HEAD_CATALOG.map((e) => e.name));
  return head.chain((name) =>
    fc.record({
      head: fc.constant(name),
      options: OPTIONS[name],
      N: fc.integer({ min: 1, max: 40 }),
      D: dims,
      C: fc.integer({ min: 2, max: 300 }),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
      xScale: norms,
      xSpread: within(0, 2),
      wScale: norms,
      wSpread: within(0, 2),
      fit: unit,
      noiseFrom: within(-7, 0.5),
      noiseTo: within(-7, 0.5),
      bias: fc.boolean(),
    })
  );
}

/**
 * How far a target cosine is kept from a margin's jump: many times a float32 cosine's error
 * (~D·ε for D ≤ 70, 8.4e-6).
 */
export const JUMP_CLEARANCE = 2 ** -16;

/** Where a head's target function jumps, if it does: insightface's switch, or the easy margin's. */
export function discontinuity(head: HeadSpec): number | undefined {
  if (head.logits !== "angular" || head.margin.kind !== "angular") return undefined;
  if (head.margin.fallback === "easy") return 0;
  if (head.margin.fallback === "insightface") return targetMarginParams(head.margin).threshold;
  return undefined;
}

/** The head of a case: its catalog entry with its options. */
export function fuzzHead(c: FuzzCase): HeadSpec {
  const entry = HEAD_CATALOG.find((e) => e.name === c.head);
  if (!entry) throw new Error(`no catalog head "${c.head}"`);
  return entry.head(c.options);
}

/**
 * The input of a case, in float64: weight rows of norm 10^(wScale ± wSpread/2); a share `fit` of
 * the samples is its target row's direction plus noise of 10^noiseFrom … 10^noiseTo (well classified
 * when small: losses far below 1e-10 at large logits), the others random directions; feature rows of
 * norm 10^(xScale ± xSpread/2).
 */
export function fuzzInput(c: FuzzCase, head: HeadSpec): HeadInput {
  const { N, D, C } = c;
  const random = seededRandom(c.seed);
  const normal = gaussian(random);
  const spread = (center: number, width: number) => 10 ** (center + width * (random() - 0.5));
  const unitRow = (data: Float64Array, at: number) => {
    let sq = 0;
    for (let k = 0; k < D; k++) sq += data[at + k] ** 2;
    const norm = Math.sqrt(sq) || 1;
    for (let k = 0; k < D; k++) data[at + k] /= norm;
  };
  const weights = matrix(C, D);
  const w = weights.data as Float64Array;
  for (let j = 0; j < C; j++) {
    for (let k = 0; k < D; k++) w[j * D + k] = normal();
    unitRow(w, j * D);
  }
  const labels = Array.from({ length: N }, () => Math.floor(random() * C));
  const features = matrix(N, D);
  const x = features.data as Float64Array;
  for (let i = 0; i < N; i++) {
    const at = i * D, fitted = random() < c.fit;
    const noise = 10 ** (c.noiseFrom + (c.noiseTo - c.noiseFrom) * random());
    for (let k = 0; k < D; k++) {
      x[at + k] = fitted ? w[labels[i] * D + k] + noise * normal() / Math.sqrt(D) : normal();
    }
    unitRow(x, at);
    const norm = spread(c.xScale, c.xSpread);
    for (let k = 0; k < D; k++) x[at + k] *= norm;
  }
  for (let j = 0; j < C; j++) {
    const norm = spread(c.wScale, c.wSpread);
    for (let k = 0; k < D; k++) w[j * D + k] *= norm;
  }
  // Keep each target cosine clear of a margin's jump (insightface's switch at cos(π − m2), the easy
  // margin's at 0): within float32's rounding of it, f32 and f64 may take different sides.
  const jump = discontinuity(head);
  if (jump !== undefined) {
    for (let i = 0; i < N; i++) {
      const at = i * D, y = labels[i];
      const cx = Math.max(rowNorms(x.subarray(at, at + D), 1, D)[0], NORM_EPS);
      const cw = Math.max(rowNorms(w.subarray(y * D, y * D + D), 1, D)[0], NORM_EPS);
      for (let tries = 0; tries < 100; tries++) {
        if (!(Math.abs(cosineOf(x, w, i, y, D, cx, cw) - jump) < JUMP_CLEARANCE)) break;
        const norm = cx;
        for (let k = 0; k < D; k++) x[at + k] = normal();
        unitRow(x, at);
        for (let k = 0; k < D; k++) x[at + k] *= norm;
      }
    }
  }
  const input: HeadInput = { features, weights, labels };
  if (c.bias && head.logits === "linear") {
    const b = 10 ** (c.xScale + c.wScale);
    input.bias = Float64Array.from({ length: C }, () => b * normal());
  }
  return input;
}

/** Probabilities below this may be taken as 0 by a float32 engine (engine-webgpu flushes them). */
export const FLUSHED_PROBABILITY = 1e-30;

/** Per-element magnitudes of the gradient arrays (their largest element each). */
export interface GradientScales {
  gradFeatures: number;
  gradWeights: number;
  gradBias: number;
}

/** What a float32 run's rounding is proportional to, for one case and reduction. */
export interface RoundingScales {
  /**
   * Per sample: the largest of |z_ij| + R_ij over the row, R_ij the radius (‖x_i‖·‖w_j‖ + |b_j| for a
   * linear head), and of R_iy·(1 + π·m) for the target, m the margin's angular multiplier (m1, or
   * ψ's m). Float32 cosines (inner products) are off by a few ε of R, and the target's angle θ ≤ π
   * by a few ε of itself, which the margin multiplies by up to m: every logit of row i is within a
   * few ε of this.
   */
  rowScale: Float64Array;
  /**
   * For each gradient array, the largest sum of the magnitudes of the terms that make one element
   * (Σ_j |∂loss/∂z_ij|·|∂z_ij/∂x_i| for ∂X): float32 rounding is relative to this where the terms
   * cancel (D = 1, where every cosine is ±1 and the angular gradients are 0).
   */
  terms: GradientScales;
  /**
   * The same sums with every |∂loss/∂z| at {@linkcode FLUSHED_PROBABILITY}: an absolute bound on
   * what dropping the probabilities below it costs.
   */
  flushed: GradientScales;
  /**
   * The same sums over the targets alone with |f′(c)| in place of |f′(c)|·sin θ: the size of the
   * two halves of a target's gradient, f′(c)·ŵ_y and f′(c)·c·x̂_i, which cancel to
   * f′(c)·(ŵ_y − c·x̂_i) = O(f′·sin θ). An engine that sums them apart in float32 is off by ε of
   * this where an exact margin's slope is large (near θ = 0 or π).
   */
  targetTerms: GradientScales;
}

/** The magnitudes a float32 engine's rounding is proportional to, from the float64 reference. */
export function roundingScales(
  input: HeadInput,
  head: HeadSpec,
  expected: HeadResult,
  reduction: Reduction,
): RoundingScales {
  const { rows: N, cols: D } = input.features, C = input.weights.rows;
  const x = input.features.data, w = input.weights.data, z = expected.logits.data;
  const nx = rowNorms(x, N, D), nw = rowNorms(w, C, D);
  const bias = input.bias;
  const target = head.logits === "angular"
    ? targetFunction(head.margin, head.marginGradient)
    : undefined;
  const multiplier = head.logits === "linear"
    ? 1
    : head.margin.kind === "angular"
    ? Math.max(1, head.margin.m1)
    : head.margin.kind === "psi"
    ? head.margin.margin
    : 1;
  const per = reduction === "mean" ? 1 / N : 1;
  const rowScale = new Float64Array(N);
  const sums = () => ({ x: new Float64Array(N), w: new Float64Array(C), b: new Float64Array(C) });
  const terms = sums(), flushed = sums(), targets = sums();
  const add = (
    to: ReturnType<typeof sums>,
    i: number,
    j: number,
    g: number,
    dx: number,
    dw: number,
  ) => {
    to.x[i] += g * dx;
    to.w[j] += g * dw;
    to.b[j] += g;
  };
  for (let i = 0; i < N; i++) {
    let max = -Infinity, sum = 0;
    for (let j = 0; j < C; j++) max = Math.max(max, z[i * C + j]);
    for (let j = 0; j < C; j++) sum += Math.exp(z[i * C + j] - max);
    const y = input.labels[i];
    const cx = Math.max(nx[i], NORM_EPS), ux = nx[i] / cx; // ‖x̂_i‖: 1, or less below NORM_EPS
    for (let j = 0; j < C; j++) {
      const g = Math.abs(Math.exp(z[i * C + j] - max) / sum - (j === y ? 1 : 0)) * per;
      let radius: number, dx: number, dw: number;
      if (head.logits === "linear") {
        radius = nx[i] * nw[j] + Math.abs(bias?.[j] ?? 0);
        dx = nw[j];
        dw = nx[i];
      } else {
        radius = head.radius.kind === "scale"
          ? head.radius.scale
          : head.radius.kind === "featureNorm"
          ? nx[i]
          : nx[i] * nw[j];
        const cw = Math.max(nw[j], NORM_EPS), uw = nw[j] / cw;
        // |∂c/∂x| ≤ ‖ŵ‖·sin θ/max(‖x‖, ε): the target's slope times sin θ stays finite.
        let slope = 1;
        if (j === y && target) {
          const c = cosineOf(x, w, i, j, D, cx, cw);
          const raw = Math.abs(target(c).slope);
          slope = Math.max(1, raw * Math.sqrt(Math.max(0, 1 - c * c)));
          add(targets, i, j, g * radius * raw, uw / cx, ux / cw);
          rowScale[i] = Math.max(rowScale[i], radius * (1 + Math.PI * multiplier));
        }
        const own = Math.abs(z[i * C + j]);
        dx = (radius * slope * uw + own) / cx;
        dw = (radius * slope * ux + own) / cw;
      }
      rowScale[i] = Math.max(rowScale[i], Math.abs(z[i * C + j]) + radius);
      add(terms, i, j, g, dx, dw);
      add(flushed, i, j, FLUSHED_PROBABILITY * per, dx, dw);
    }
  }
  const largest = (s: ReturnType<typeof sums>): GradientScales => {
    const max = (a: Float64Array) => a.reduce((m, v) => Math.max(m, v), 0);
    return { gradFeatures: max(s.x), gradWeights: max(s.w), gradBias: max(s.b) };
  };
  return {
    rowScale,
    terms: largest(terms),
    flushed: largest(flushed),
    targetTerms: largest(targets),
  };
}

function rowNorms(data: ArrayLike<number>, rows: number, D: number): Float64Array {
  return Float64Array.from({ length: rows }, (_, r) => {
    let sq = 0;
    for (let k = 0; k < D; k++) sq += data[r * D + k] ** 2;
    return Math.sqrt(sq);
  });
}

/** c_ij = x_i·w_j/(max(‖x_i‖, ε)·max(‖w_j‖, ε)), as the reference has it. */
function cosineOf(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  i: number,
  j: number,
  D: number,
  cx: number,
  cw: number,
): number {
  let dot = 0;
  for (let k = 0; k < D; k++) dot += x[i * D + k] * w[j * D + k];
  return dot / (cx * cw);
}

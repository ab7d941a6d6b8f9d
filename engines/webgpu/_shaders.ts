// WGSL for the fused margin-softmax engine, generated from a HeadSpec: the structure (linear or
// angular, radius kind, margin kind, gradient mode) picks the code, the numbers live in a uniform
// buffer, so every loss of one structure shares its pipelines.
import type { HeadSpec } from "../../losses/head_spec.ts";

/** Rows of X and W are padded to a multiple of this, so register blocks never run over. */
export const ROW_ALIGN = 16;
/** D is padded to a multiple of this, so register blocks of vec4 columns never run over. */
export const D_ALIGN = 32;
/** Invocations per matmul workgroup along each axis. */
export const TILE = 8;
/** Invocations of the row pass (one workgroup per sample). */
export const ROW_THREADS = 256;
/** Invocations per workgroup of the elementwise passes. */
export const LINE_THREADS = 64;

/** Float32 slots of the uniform buffer; see {@linkcode PARAMS_STRUCT}. */
export const PARAMS_FLOATS = 24;

/** Per-sample statistics the row pass leaves for the later passes (float32 slots per row). */
export const ROW_STATS = 8;

const PARAMS_STRUCT = /* wgsl */ `
struct Params {
  N: u32, C: u32, D: u32, Np: u32,
  Cp: u32, Dp: u32, psiMargin: u32, c0: u32,
  scale: f32, weight: f32, m1: f32, m2: f32,
  m3: f32, cosM2: f32, sinM2: f32, lambda: f32,
  threshold: f32, shift: f32, unused1: f32, unused2: f32,
  // The chunk of classes a product dispatch covers: W rows [c0, c0 + cC), cCp with padding.
  cC: u32, cCp: u32, first: u32, unused3: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
const NORM_EPS: f32 = 1e-12;
const SIN_FLOOR: f32 = 1e-8;
const PI: f32 = 3.14159265358979;
// Probabilities below this are flushed to 0: lavapipe keeps float32 subnormals, and products with
// them run ~100× slower on the CPU; they are 1e-30 of the largest gradient entry at most.
fn probability(shifted: f32, sum: f32) -> f32 {
  let q = exp(max(shifted, -87.0)) / sum;
  return select(q, 0.0, q < 1e-30);
}
// asin on [-0.5, 0.5] (Cephes asinf, ~2.5e-7 relative): lavapipe's built-in acos is off by 1.6e-4.
fn asinSmall(x: f32) -> f32 {
  let z = x * x;
  return ((((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z
    + 1.6666752422e-1) * z * x + x;
}
// θ from c and h = (1 − c, 1 + c), the latter accurate near ±1 (see targetsShader).
fn acosAccurate(c: f32, h: vec2f) -> f32 {
  if (abs(c) <= 0.5) { return PI / 2.0 - asinSmall(c); }
  if (c > 0.0) { return 2.0 * asinSmall(sqrt(0.5 * h.x)); }
  return PI - 2.0 * asinSmall(sqrt(0.5 * h.y));
}
// sin θ = √((1 − c)(1 + c)): no cancellation near |c| = 1, unlike √(1 − c²).
fn sinOf(h: vec2f) -> f32 { return sqrt(max(0.0, h.x * h.y)); }
`;

/** The structural kind of a head: heads of one kind share shader text. */
export function shaderKey(head: HeadSpec): string {
  if (head.logits === "linear") return "linear";
  const m = head.margin;
  const margin = m.kind === "angular"
    ? `angular-${m.m1 === 1 ? "additive" : "general"}-${m.fallback}`
    : m.kind;
  return `angular-${head.radius.kind}-${margin}-${head.marginGradient}`;
}

/** f(c) and f'(c) of the head's margin, as WGSL returning vec2f(value, slope): losses/_target.ts. */
function targetFunction(head: HeadSpec): string {
  if (head.logits === "linear") {
    return "fn targetOf(c: f32, h: vec2f) -> vec2f { return vec2f(c, 1.0); }";
  }
  const m = head.margin;
  let body: string;
  if (m.kind === "none") {
    body = "return vec2f(cosine, 1.0);";
  } else if (m.kind === "psi") {
    body = `
  let c = clamp(cosine, -1.0, 1.0);
  let k = floor(f32(p.psiMargin) * acosAccurate(c, h) / PI);
  let sign = select(-1.0, 1.0, (u32(k) & 1u) == 0u);
  // Chebyshev T_m and U_{m-1} by their recurrences.
  var t0 = 1.0; var t1 = c; var u0 = 0.0; var u1 = 1.0;
  if (p.psiMargin == 0u) { t1 = 1.0; u1 = 0.0; }
  for (var n = 1u; n < p.psiMargin; n++) {
    let t2 = 2.0 * c * t1 - t0; t0 = t1; t1 = t2;
    let u2 = 2.0 * c * u1 - u0; u0 = u1; u1 = u2;
  }
  let slopeT = select(f32(p.psiMargin) * u1, 0.0, p.psiMargin == 0u);
  return vec2f((p.lambda * c + sign * t1 - 2.0 * k) / (1.0 + p.lambda),
               (p.lambda + sign * slopeT) / (1.0 + p.lambda));`;
  } else {
    const margin = m.m1 === 1
      ? `
  let c = clamp(cosine, -1.0, 1.0);
  let s = sinOf(h);
  return vec2f(c * p.cosM2 - s * p.sinM2 - p.m3, p.cosM2 + c * p.sinM2 / max(s, SIN_FLOOR));`
      : `
  let c = clamp(cosine, -1.0, 1.0);
  let theta = acosAccurate(c, h);
  let s = sinOf(h);
  return vec2f(cos(p.m1 * theta + p.m2) - p.m3,
               p.m1 * sin(p.m1 * theta + p.m2) / max(s, SIN_FLOOR));`;
    const fallback = m.fallback === "easy"
      ? "if (!(cosine > 0.0)) { return vec2f(cosine, 1.0); }"
      : m.fallback === "insightface"
      ? "if (!(cosine > p.threshold)) { return vec2f(cosine - p.shift, 1.0); }"
      : "";
    body = `${fallback}${margin}`;
  }
  const detach = head.marginGradient === "detached";
  return `
fn exactTarget(cosine: f32, h: vec2f) -> vec2f {${body}
}
fn targetOf(cosine: f32, h: vec2f) -> vec2f {
  ${detach ? "return vec2f(exactTarget(cosine, h).x, 1.0);" : "return exactTarget(cosine, h);"}
}`;
}

/** a_i and b_j of the radius R_ij = a_i·b_j; 1 for a linear head. */
function radiusFunctions(head: HeadSpec): string {
  const kind = head.logits === "linear" ? "linear" : head.radius.kind;
  const a = kind === "linear" ? "1.0" : kind === "scale" ? "p.scale" : "nx[i]";
  const b = kind === "normProduct" ? "nw[j]" : "1.0";
  return `
fn radiusA(i: u32) -> f32 { return ${a}; }
fn radiusB(j: u32) -> f32 { return ${b}; }
const A_IS_NORM: bool = ${kind === "featureNorm" || kind === "normProduct"};
const B_IS_NORM: bool = ${kind === "normProduct"};
const ANGULAR: bool = ${head.logits === "angular"};`;
}

/** Row norms of X (first N rows) and W (next C rows); padding rows get 0. */
export function normsShader(): string {
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read> X: array<vec4f>;
@group(0) @binding(2) var<storage, read> W: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> nx: array<f32>;
@group(0) @binding(4) var<storage, read_write> nw: array<f32>;
@compute @workgroup_size(${LINE_THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  let D4 = p.Dp / 4u;
  if (r < p.Np) {
    var s = vec4f(0.0);
    for (var k = 0u; k < D4; k++) { let v = X[r * D4 + k]; s += v * v; }
    nx[r] = sqrt(s.x + s.y + s.z + s.w);
  } else if (r < p.Np + p.cCp) {
    let j = r - p.Np;
    var s = vec4f(0.0);
    for (var k = 0u; k < D4; k++) { let v = W[j * D4 + k]; s += v * v; }
    nw[p.c0 + j] = sqrt(s.x + s.y + s.z + s.w);
  }
}`;
}

/**
 * (1 − c, 1 + c) of each sample's target cosine, from ‖x̂ ∓ ŵ_y‖²/2: near c = ±1 the product's
 * cosine has an absolute error of ~1e-7, which 1/sin θ in a margin's slope would magnify.
 */
export function targetsShader(): string {
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read> X: array<vec4f>;
@group(0) @binding(2) var<storage, read> W: array<vec4f>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> nx: array<f32>;
@group(0) @binding(5) var<storage, read> nw: array<f32>;
@group(0) @binding(6) var<storage, read_write> halves: array<vec2f>;
@compute @workgroup_size(${LINE_THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.N) { return; }
  let y = labels[i];
  if (y < p.c0 || y >= p.c0 + p.cC) { return; }
  if (!(nx[i] > NORM_EPS) || !(nw[y] > NORM_EPS)) {
    halves[i] = vec2f(1.0, 1.0); // the cosine of a zero vector is 0
    return;
  }
  let D4 = p.Dp / 4u;
  let ix = 1.0 / nx[i];
  let iw = 1.0 / nw[y];
  var u = vec4f(0.0);
  var v = vec4f(0.0);
  for (var k = 0u; k < D4; k++) {
    let a = X[i * D4 + k] * ix;
    let b = W[(y - p.c0) * D4 + k] * iw;
    v += (a - b) * (a - b);
    u += (a + b) * (a + b);
  }
  halves[i] = 0.5 * vec2f(v.x + v.y + v.z + v.w, u.x + u.y + u.z + u.w);
}`;
}

const range = (n: number) => Array.from({ length: n }, (_, k) => k);

/** Register blocks of the three products (rows per invocation; Q = vec4 columns of D). */
export const SHAPES = {
  // Measured on lavapipe (min CPU time of 5, 128 × 512 × 10 000): 16×16 / 16×8 / 16×8 beat 8×8 by
  // ~25 %; lavapipe loads storage buffers lane by lane, so fewer loads per FMA win until register
  // spills and LLVM's compile time (32×32 does not finish in minutes) take over.
  /** S = X·Wᵀ: FI samples × FJ classes per invocation. */
  FI: 16,
  FJ: 16,
  /** ∂X = G·W: GI samples × GQ vec4 features. */
  GI: 16,
  GQ: 8,
  /** ∂W = Gᵀ·X: WJ classes × WQ vec4 features. */
  WJ: 16,
  WQ: 8,
  /** Workgroup rows of the products (TILE × TY invocations). */
  TY: 8,
};

/**
 * Forward: S = X·Wᵀ in FI×FJ blocks per invocation, then the cosine S/(‖x‖·‖w‖) (angular) or the
 * logit S + b (linear) into the N×C buffer. Neighbouring invocations share the W rows, which
 * lavapipe then loads once for its SIMD lanes.
 */
export function forwardShader(head: HeadSpec): string {
  const { FI, FJ } = SHAPES;
  const I = range(FI), J = range(FJ);
  const epilogue = (r: number, c: number) => {
    const value = head.logits === "linear"
      ? `a${r}_${c} + bias[p.c0 + jb + ${c}u]`
      : `a${r}_${c} / (cx${r} * max(nw[p.c0 + jb + ${c}u], NORM_EPS))`;
    return `S[(ib + ${r}u) * p.Cp + p.c0 + jb + ${c}u] = ${value};`;
  };
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read> X: array<vec4f>;
@group(0) @binding(2) var<storage, read> W: array<vec4f>;
@group(0) @binding(3) var<storage, read> nx: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> S: array<f32>;
@compute @workgroup_size(${TILE}, ${SHAPES.TY})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let ib = g.x * ${FI}u;
  let jb = g.y * ${FJ}u;
  if (jb >= p.cCp || ib >= p.Np) { return; }
  let D4 = p.Dp / 4u;
  ${I.map((r) => J.map((c) => `var a${r}_${c} = 0.0;`).join(" ")).join("\n  ")}
  for (var k = 0u; k < D4; k++) {
    ${I.map((r) => `let x${r} = X[(ib + ${r}u) * D4 + k];`).join(" ")}
    ${J.map((c) => `let w${c} = W[(jb + ${c}u) * D4 + k];`).join(" ")}
    ${I.map((r) => J.map((c) => `a${r}_${c} += dot(x${r}, w${c});`).join(" ")).join("\n    ")}
  }
  ${I.map((r) => `let cx${r} = max(nx[ib + ${r}u], NORM_EPS);`).join(" ")}
  ${I.map((r) => J.map((c) => epilogue(r, c)).join("\n  ")).join("\n  ")}
}`;
}

/** The logit z_ij and the target value/slope, shared by the row and column passes. */
const LOGIT_HELPERS = `
fn logitOf(i: u32, j: u32, y: u32, c: f32, tv: f32) -> f32 {
  return radiusA(i) * radiusB(j) * select(c, tv, j == y);
}`;

/**
 * One workgroup per sample: max and sum of exp over the classes, the loss, the target's f and f′,
 * and the sample's norm-gradient factor (∂loss/∂‖x_i‖ ÷ ‖x_i‖).
 */
export function rowShader(head: HeadSpec): string {
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> nx: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> losses: array<f32>;
@group(0) @binding(7) var<storage, read> halves: array<vec2f>;
${targetFunction(head)}
${radiusFunctions(head)}
${LOGIT_HELPERS}
var<workgroup> red: array<f32, ${ROW_THREADS}>;
fn reduceMax(t: u32, v: f32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${ROW_THREADS / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = max(red[t], red[t + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn reduceSum(t: u32, v: f32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${ROW_THREADS / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = wid.x;
  let y = labels[i];
  let row = i * p.Cp;
  let cy = S[row + y];
  let tf = select(vec2f(cy, 1.0), targetOf(cy, halves[i]), ANGULAR);
  var m = -3.0e38;
  for (var j = t; j < p.C; j += ${ROW_THREADS}u) { m = max(m, logitOf(i, j, y, S[row + j], tf.x)); }
  m = reduceMax(t, m);
  var s = 0.0;
  for (var j = t; j < p.C; j += ${ROW_THREADS}u) { s += exp(max(logitOf(i, j, y, S[row + j], tf.x) - m, -87.0)); }
  s = reduceSum(t, s);
  // ∂loss/∂a_i and Σ_j ∂loss/∂c_ij · c_ij, for the norm terms of x_i.
  var ga = 0.0;
  var gcc = 0.0;
  if (ANGULAR) {
    let a = radiusA(i);
    for (var j = t; j < p.C; j += ${ROW_THREADS}u) {
      let c = S[row + j];
      let isY = j == y;
      let value = select(c, tf.x, isY);
      let z = a * radiusB(j) * value;
      let gz = p.weight * (probability(z - m, s) - select(0.0, 1.0, isY));
      ga += gz * radiusB(j) * value;
      gcc += gz * a * radiusB(j) * select(1.0, tf.y, isY) * c;
    }
  }
  ga = reduceSum(t, ga);
  gcc = reduceSum(t, gcc);
  if (t == 0u) {
    let o = i * ${ROW_STATS}u;
    let n = nx[i];
    let cx = max(n, NORM_EPS);
    let coefficient = select(0.0, -gcc / cx, n > NORM_EPS) + select(0.0, ga, A_IS_NORM);
    stats[o] = m;
    stats[o + 1u] = s;
    stats[o + 2u] = tf.x;
    stats[o + 3u] = tf.y;
    stats[o + 4u] = select(0.0, coefficient / n, ANGULAR && n != 0.0);
    losses[i] = log(s) + m - logitOf(i, y, y, cy, tf.x);
  }
}`;
}

/** The N×C logits z_ij, for callers that want them (one invocation per entry). */
export function logitsShader(head: HeadSpec): string {
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> nx: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> Z: array<f32>;
${radiusFunctions(head)}
${LOGIT_HELPERS}
@compute @workgroup_size(${LINE_THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  let i = g.y;
  if (j >= p.C || i >= p.N) { return; }
  Z[i * p.C + j] = logitOf(i, j, labels[i], S[i * p.Cp + j], stats[i * ${ROW_STATS}u + 2u]);
}`;
}

/**
 * One invocation per class: turns the column of S into ∂loss/∂(X·Wᵀ) in place, and leaves the
 * class's norm-gradient factor and the bias gradient.
 */
export function columnShader(head: HeadSpec): string {
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> nx: array<f32>;
@group(0) @binding(4) var<storage, read> nw: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> wFactor: array<f32>;
@group(0) @binding(7) var<storage, read_write> gradBias: array<f32>;
${radiusFunctions(head)}
@compute @workgroup_size(${LINE_THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.Cp) { return; }
  if (j >= p.C) {
    for (var i = 0u; i < p.Np; i++) { S[i * p.Cp + j] = 0.0; }
    wFactor[j] = 0.0;
    gradBias[j] = 0.0;
    return;
  }
  let b = radiusB(j);
  let cw = max(nw[j], NORM_EPS);
  var gb = 0.0;
  var gcc = 0.0;
  for (var i = 0u; i < p.N; i++) {
    let o = i * ${ROW_STATS}u;
    let isY = labels[i] == j;
    let c = S[i * p.Cp + j];
    let value = select(c, stats[o + 2u], isY);
    let a = radiusA(i);
    let gz = p.weight *
      (probability(a * b * value - stats[o], stats[o + 1u]) - select(0.0, 1.0, isY));
    if (ANGULAR) {
      gb += gz * a * value;
      let gc = gz * a * b * select(1.0, stats[o + 3u], isY);
      gcc += gc * c;
      S[i * p.Cp + j] = gc / (max(nx[i], NORM_EPS) * cw);
    } else {
      gb += gz;
      S[i * p.Cp + j] = gz;
    }
  }
  let n = nw[j];
  let coefficient = select(0.0, -gcc / cw, n > NORM_EPS) + select(0.0, gb, B_IS_NORM);
  wFactor[j] = select(0.0, coefficient / n, ANGULAR && n != 0.0);
  gradBias[j] = gb;
}`;
}

/**
 * ∂loss/∂X = G·W + f_i·x_i (f_i the sample's norm factor): GI samples × GQ vec4 features per
 * invocation; neighbouring invocations are neighbouring samples and share the W loads.
 */
export function gradFeaturesShader(): string {
  const { GI, GQ } = SHAPES;
  const I = range(GI), Q = range(GQ);
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<vec4f>;
@group(0) @binding(3) var<storage, read> X: array<vec4f>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;
@compute @workgroup_size(${TILE}, ${SHAPES.TY})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let kb = g.y * ${GQ}u; // first vec4 column of the block
  let ib = g.x * ${GI}u;
  let D4 = p.Dp / 4u;
  if (kb >= D4 || ib >= p.Np) { return; }
  ${I.map((r) => Q.map((q) => `var a${r}_${q} = vec4f(0.0);`).join(" ")).join("\n  ")}
  for (var j = 0u; j < p.cC; j++) {
    ${I.map((r) => `let g${r} = G[(ib + ${r}u) * p.Cp + p.c0 + j];`).join(" ")}
    ${Q.map((q) => `let w${q} = W[j * D4 + kb + ${q}u];`).join(" ")}
    ${I.map((r) => Q.map((q) => `a${r}_${q} += g${r} * w${q};`).join(" ")).join("\n    ")}
  }
  ${
    I.map((r) =>
      `{ let i = ib + ${r}u; if (i < p.N) { let f = select(0.0, stats[i * ${ROW_STATS}u + 4u], p.first == 1u);
    ${
        Q.map((q) =>
          `{ let v = a${r}_${q} + f * X[i * D4 + kb + ${q}u]; let k = (kb + ${q}u) * 4u;
      for (var e = 0u; e < 4u; e++) { if (k + e < p.D) { let o = i * p.D + k + e;
        gx[o] = select(gx[o] + v[e], v[e], p.first == 1u); } } }`
        ).join("\n    ")
      } } }`
    ).join("\n  ")
  }
}`;
}

/**
 * ∂loss/∂W = Gᵀ·X + f_j·w_j (f_j the class's norm factor): WJ classes × WQ vec4 features per
 * invocation; neighbouring invocations are neighbouring classes and share the X loads.
 */
export function gradWeightsShader(): string {
  const { WJ, WQ } = SHAPES;
  const J = range(WJ), Q = range(WQ);
  return `${PARAMS_STRUCT}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<vec4f>;
@group(0) @binding(3) var<storage, read> W: array<vec4f>;
@group(0) @binding(4) var<storage, read> wFactor: array<f32>;
@group(0) @binding(5) var<storage, read_write> gw: array<f32>;
@compute @workgroup_size(${TILE}, ${SHAPES.TY})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let kb = g.y * ${WQ}u;
  let jb = g.x * ${WJ}u;
  let D4 = p.Dp / 4u;
  if (kb >= D4 || jb >= p.cCp) { return; }
  ${J.map((r) => Q.map((q) => `var a${r}_${q} = vec4f(0.0);`).join(" ")).join("\n  ")}
  for (var i = 0u; i < p.N; i++) {
    ${J.map((r) => `let g${r} = G[i * p.Cp + p.c0 + jb + ${r}u];`).join(" ")}
    ${Q.map((q) => `let x${q} = X[i * D4 + kb + ${q}u];`).join(" ")}
    ${J.map((r) => Q.map((q) => `a${r}_${q} += g${r} * x${q};`).join(" ")).join("\n    ")}
  }
  ${
    J.map((r) =>
      `{ let j = jb + ${r}u; if (j < p.cC) { let f = wFactor[p.c0 + j];
    ${
        Q.map((q) =>
          `{ let v = a${r}_${q} + f * W[j * D4 + kb + ${q}u]; let k = (kb + ${q}u) * 4u;
      for (var e = 0u; e < 4u; e++) { if (k + e < p.D) { gw[j * p.D + k + e] = v[e]; } } }`
        ).join("\n    ")
      } } }`
    ).join("\n  ")
  }
}
`;
}

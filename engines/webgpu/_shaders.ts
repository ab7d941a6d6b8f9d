// WGSL for the fused margin-softmax engine, generated from a HeadSpec: the structure (linear or
// angular, radius kind, margin kind, gradient mode) picks the code, the numbers live in the uniform
// buffer (_uniforms.ts), so every loss of one structure shares its pipelines. Each shader comes with
// its bindings, named after the buffers they bind, so the runtime cannot bind them out of order.
import type { HeadSpec, Radius, TargetMargin } from "../../losses/head_spec.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import { type Layout, ROW_STATS, SHAPES, type StageName } from "./_layout.ts";
import { structText, UNIFORM_FIELDS } from "./_uniforms.ts";

/** The engine's buffers, by the name the shaders give them. */
export type BufferName =
  | "x"
  | "w"
  | "labels"
  | "bias"
  | "nx"
  | "nw"
  | "scores"
  | "stats"
  | "halves"
  | "targets"
  | "thresholds"
  | "rows"
  | "wFactor"
  | "gradBias"
  | "partials"
  | "gx"
  | "gw"
  | "logits"
  // Bound only by the external runs' staging and loss passes (_external.ts).
  | "src"
  | "norms"
  | "out"
  | "loss";

/** One storage binding (after the uniform at 0): the buffer, its element type and access. */
export interface Binding {
  name: BufferName;
  type: "f32" | "u32" | "vec2f" | "vec4f";
  access: "read" | "read_write";
}

/** A shader's text and its storage bindings in binding order. */
export interface Shader {
  code: string;
  bindings: Binding[];
}

const r = (name: BufferName, type: Binding["type"] = "f32"): Binding => ({
  name,
  type,
  access: "read",
});
const rw = (name: BufferName, type: Binding["type"] = "f32"): Binding => ({
  name,
  type,
  access: "read_write",
});

const { ROW_THREADS, LINE_THREADS, TILE, TY } = SHAPES;

const PRELUDE = /* wgsl */ `
${structText("Params", UNIFORM_FIELDS)}
@group(0) @binding(0) var<uniform> p: Params;
const NORM_EPS: f32 = ${NORM_EPS};
const SIN_FLOOR: f32 = 1e-8;
const PI: f32 = 3.14159265358979;
const ROW_STATS: u32 = ${ROW_STATS}u;
// e^v, or 0 where it would be subnormal: lavapipe keeps float32 subnormals, and products with them
// run ~100× slower on the CPU.
fn expOrZero(v: f32) -> f32 { return select(0.0, exp(v), v > -87.0); }
// A non-target's softmax probability; below 1e-30 flushed to 0, for the same reason.
fn probability(shifted: f32, sum: f32) -> f32 {
  let q = expOrZero(shifted) / sum;
  return select(q, 0.0, q < 1e-30);
}
// Kahan summation: acc = (sum, compensation); the value is acc.x − acc.y.
fn kahan(acc: vec2f, v: f32) -> vec2f {
  let y = v - acc.y;
  let t = (acc.x + y) * p.one;
  return vec2f(t, (t - acc.x) - y);
}
// asin on [-0.5, 0.5] (Cephes asinf, ~2.5e-7 relative): lavapipe's built-in acos is off by 1.6e-4.
fn asinSmall(x: f32) -> f32 {
  let z = x * x;
  return ((((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z
    + 1.6666752422e-1) * z * x + x;
}
// θ from c and h = (1 − c, 1 + c), the latter accurate near ±1 (see the targets pass).
fn acosAccurate(c: f32, h: vec2f) -> f32 {
  if (abs(c) <= 0.5) { return PI / 2.0 - asinSmall(c); }
  if (c > 0.0) { return 2.0 * asinSmall(sqrt(0.5 * h.x)); }
  return PI - 2.0 * asinSmall(sqrt(0.5 * h.y));
}
// sin θ = √((1 − c)(1 + c)): no cancellation near |c| = 1, unlike √(1 − c²).
fn sinOf(h: vec2f) -> f32 { return sqrt(max(0.0, h.x * h.y)); }
`;

/** A whole shader: the prelude, its bindings' declarations and its body. */
function shader(bindings: Binding[], body: string): Shader {
  const declarations = bindings.map((b, k) =>
    `@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`
  );
  return { code: `${PRELUDE}\n${declarations.join("\n")}\n${body}`, bindings };
}

const unreachable = (what: string, value: never): never => {
  throw new Error(`engine-webgpu: unknown ${what} ${JSON.stringify(value)}`);
};

/** The fallback of an angular margin where it stops being monotone, as a WGSL early return. */
function fallbackGuard(fallback: "none" | "insightface" | "easy"): string {
  switch (fallback) {
    case "none":
      return "";
    case "insightface":
      return "if (!(cosine > p.threshold)) { return vec2f(cosine - p.shift, 1.0); }";
    case "easy":
      return "if (!(cosine > 0.0)) { return vec2f(cosine, 1.0); }";
    default:
      return unreachable("fallback", fallback);
  }
}

const PSI_BODY = `
  let c = clamp(cosine, -1.0, 1.0);
  let k = floor(f32(p.psiMargin) * acosAccurate(c, h) / PI);
  let sign = select(-1.0, 1.0, (u32(k) & 1u) == 0u);
  // Chebyshev T_m and U_{m-1} by their recurrences.
  var t0 = 1.0; var t1 = c; var u0 = 0.0; var u1 = 1.0;
  for (var n = 1u; n < p.psiMargin; n++) {
    let t2 = 2.0 * c * t1 - t0; t0 = t1; t1 = t2;
    let u2 = 2.0 * c * u1 - u0; u0 = u1; u1 = u2;
  }
  return vec2f((p.lambda * c + sign * t1 - 2.0 * k) / (1.0 + p.lambda),
               (p.lambda + sign * f32(p.psiMargin) * u1) / (1.0 + p.lambda));`;

/** The body of f(c), f′(c) for one target margin (losses/target.ts). */
function marginBody(margin: TargetMargin): string {
  switch (margin.kind) {
    case "none":
      return "return vec2f(cosine, 1.0);";
    case "psi":
      return PSI_BODY;
    case "angular": {
      const formula = margin.m1 === 1
        ? `let s = sinOf(h);
  return vec2f(c * p.cosM2 - s * p.sinM2 - p.m3, p.cosM2 + c * p.sinM2 / max(s, SIN_FLOOR));`
        : `let theta = acosAccurate(c, h);
  let s = sinOf(h);
  return vec2f(cos(p.m1 * theta + p.m2) - p.m3,
               p.m1 * sin(p.m1 * theta + p.m2) / max(s, SIN_FLOOR));`;
      return `${fallbackGuard(margin.fallback)}
  let c = clamp(cosine, -1.0, 1.0);
  ${formula}`;
    }
    default:
      return unreachable("margin kind", margin);
  }
}

/** targetOf(c, h) → vec2f(f(c), f′(c)) for the head (f′ = 1 for a detached margin gradient). */
function targetFunction(head: HeadSpec & { logits: "angular" }): string {
  const slope = head.marginGradient === "detached" ? "1.0" : "value.y";
  return `
fn exactTarget(cosine: f32, h: vec2f) -> vec2f {${marginBody(head.margin)}
}
fn targetOf(cosine: f32, h: vec2f) -> vec2f {
  let value = exactTarget(cosine, h);
  return vec2f(value.x, ${slope});
}`;
}

/** a_i and b_j of the radius R_ij = a_i·b_j, and which of them are norms. */
function radiusOf(radius: Radius | undefined): { a: string; b: string } {
  switch (radius?.kind) {
    case undefined: // a linear head
      return { a: "1.0", b: "1.0" };
    case "scale":
      return { a: "p.scale", b: "1.0" };
    case "featureNorm":
      return { a: "nx[i]", b: "1.0" };
    case "normProduct":
      return { a: "nx[i]", b: "nw[j]" };
    default:
      return unreachable("radius kind", radius);
  }
}

function radiusFunctions(head: HeadSpec): string {
  const { a, b } = radiusOf(head.logits === "angular" ? head.radius : undefined);
  return `
fn radiusA(i: u32) -> f32 { return ${a}; }
fn radiusB(j: u32) -> f32 { return ${b}; }
const A_IS_NORM: bool = ${a === "nx[i]"};
const B_IS_NORM: bool = ${b === "nw[j]"};`;
}

/**
 * What of a head's structure beyond its HeadSpec the shaders read: host targets, a cosine clamp,
 * CurricularFace's hard negatives, sub-center ArcFace's K.
 */
export type KernelVariant =
  & Pick<Layout, "hostTargets" | "clamp">
  & Partial<Pick<Layout, "hard" | "subCenters">>;

/** A head whose targets the GPU computes and whose cosines are not clamped. */
const PLAIN: KernelVariant = { hostTargets: false };

/**
 * A non-target cosine as its logit reads it and the slope of that: clamped to [p.cosLo, p.cosHi]
 * with slope 0 outside (AdaFace clamps every cosine), c·(t + c) with slope t + 2c above the
 * sample's threshold (CurricularFace's hard negatives; each pass sets `hardThreshold` with
 * {@linkcode setThreshold}), or as it is (the inputs are finite).
 */
function cosineFunctions(variant: KernelVariant): string {
  if (variant.hard) {
    return `
var<private> hardThreshold: f32;
fn nonTarget(c: f32) -> f32 { return select(c, c * (p.hardT + c), c > hardThreshold); }
fn nonTargetSlope(c: f32) -> f32 { return select(1.0, p.hardT + 2.0 * c, c > hardThreshold); }`;
  }
  return variant.clamp
    ? `
fn nonTarget(c: f32) -> f32 { return clamp(c, p.cosLo, p.cosHi); }
fn nonTargetSlope(c: f32) -> f32 { return select(1.0, 0.0, c < p.cosLo || c > p.cosHi); }`
    : `
fn nonTarget(c: f32) -> f32 { return c; }
fn nonTargetSlope(c: f32) -> f32 { return 1.0; }`;
}

/** A new line making sample i's threshold the hard negatives' (none without them). */
const setThreshold = (variant: KernelVariant, indent = "  ") =>
  variant.hard ? `\n${indent}hardThreshold = thresholds[i];` : "";

/** The thresholds' binding of a pass with hard negatives. */
const thresholdsOf = (variant: KernelVariant): Binding[] => variant.hard ? [r("thresholds")] : [];

/**
 * How the passes read a class's cosine from S: its entry (C classes), or for sub-center ArcFace
 * the largest of its K rows j·K … j·K + K − 1 (C/K classes). The row pass `claim`s each class:
 * the largest row (the first of equal ones, as torch.max) keeps it, the others get NOT_ARG_MAX,
 * so the column pass gives the class's gradient to that row alone and exactly 0 to the others.
 */
interface Classes {
  count: string;
  /** Class `j`'s cosine in S's row starting at `row`; claiming it (the row pass's last loop). */
  read: (row: string, j: string) => string;
  claim: (row: string, j: string) => string;
  /** The class of S's column `j`. */
  ofColumn: (j: string) => string;
  /** WGSL functions these read and claim with (`claimed` writes S: the row pass only). */
  functions: (claimed: boolean) => string;
}

function classesOf(variant: KernelVariant): Classes {
  if (!variant.subCenters) {
    return {
      count: "p.C",
      read: (row, j) => `scores[${row} + ${j}]`,
      claim: (row, j) => `scores[${row} + ${j}]`,
      ofColumn: (j) => j,
      functions: () => "",
    };
  }
  const claim = `
fn claimCosine(row: u32, j: u32) -> f32 {
  let first = row + j * p.K;
  var best = first;
  for (var k = 1u; k < p.K; k++) { if (scores[first + k] > scores[best]) { best = first + k; } }
  let c = scores[best];
  for (var k = 0u; k < p.K; k++) { if (first + k != best) { scores[first + k] = NOT_ARG_MAX; } }
  return c;
}`;
  return {
    count: "(p.C / p.K)",
    read: (row, j) => `classCosine(${row}, ${j})`,
    claim: (row, j) => `claimCosine(${row}, ${j})`,
    ofColumn: (j) => `${j} / p.K`,
    functions: (claimed) => `
const NOT_ARG_MAX: f32 = -4.0; // below every cosine
fn classCosine(row: u32, j: u32) -> f32 {
  var c = scores[row + j * p.K];
  for (var k = 1u; k < p.K; k++) { c = max(c, scores[row + j * p.K + k]); }
  return c;
}${claimed ? claim : ""}`,
  };
}

/** Whether a head is angular, narrowing its type. */
const isAngular = (head: HeadSpec): head is HeadSpec & { logits: "angular" } =>
  head.logits === "angular";

/**
 * (1 − c, 1 + c) of each sample's target cosine, from ‖x̂ ∓ ŵ_y‖²/2 on the normalised rows: near
 * c = ±1 the product's cosine has an absolute error of ~1e-7, which 1/sin θ in a margin's slope
 * would magnify.
 */
function targetsShader(): Shader {
  return shader(
    [r("x", "vec4f"), r("w", "vec4f"), r("labels", "u32"), r("nx"), r("nw"), rw("halves", "vec2f")],
    `
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
  var u = vec4f(0.0);
  var v = vec4f(0.0);
  for (var k = 0u; k < D4; k++) {
    let a = x[i * D4 + k];
    let b = w[(y - p.c0) * D4 + k];
    v += (a - b) * (a - b);
    u += (a + b) * (a + b);
  }
  halves[i] = 0.5 * vec2f(v.x + v.y + v.z + v.w, u.x + u.y + u.z + u.w);
}`,
  );
}

const range = (n: number) => Array.from({ length: n }, (_, k) => k);

/**
 * Forward: S = X̂·Ŵᵀ (the cosines; the host uploads normalised rows) or X·Wᵀ + b (linear) in
 * FI×FJ blocks per invocation. Neighbouring invocations share the W rows, which lavapipe then
 * loads once for its SIMD lanes.
 */
function forwardShader(head: HeadSpec): Shader {
  const { FI, FJ } = SHAPES;
  const I = range(FI), J = range(FJ);
  const bias = (c: number) => isAngular(head) ? "" : ` + bias[p.c0 + jb + ${c}u]`;
  return shader(
    [r("x", "vec4f"), r("w", "vec4f"), ...(isAngular(head) ? [] : [r("bias")]), rw("scores")],
    `
@compute @workgroup_size(${TILE}, ${TY})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let ib = g.x * ${FI}u;
  let jb = g.y * ${FJ}u;
  if (jb >= p.cCp || ib >= p.Np) { return; }
  let D4 = p.Dp / 4u;
  ${I.map((i) => J.map((c) => `var a${i}_${c} = 0.0;`).join(" ")).join("\n  ")}
  for (var k = 0u; k < D4; k++) {
    ${I.map((i) => `let x${i} = x[(ib + ${i}u) * D4 + k];`).join(" ")}
    ${J.map((c) => `let w${c} = w[(jb + ${c}u) * D4 + k];`).join(" ")}
    ${I.map((i) => J.map((c) => `a${i}_${c} += dot(x${i}, w${c});`).join(" ")).join("\n    ")}
  }
  ${
      I.map((i) =>
        J.map((c) => `scores[(ib + ${i}u) * p.Cp + p.c0 + jb + ${c}u] = a${i}_${c}${bias(c)};`)
          .join("\n  ")
      ).join("\n  ")
    }
}`,
  );
}

/** Workgroup reductions of the row pass, one per combining operation. */
function reductions(): string {
  const reduce = (name: string, combine: string) => `
fn ${name}(t: u32, v: f32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${ROW_THREADS / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { let a = red[t]; let b = red[t + s]; red[t] = ${combine}; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`;
  return `var<workgroup> red: array<f32, ${ROW_THREADS}>;
${reduce("reduceMax", "max(a, b)")}
${reduce("reduceSum", "a + b")}`;
}

/**
 * The angular part of the row pass: ∂loss/∂a_i and Σ_j ∂loss/∂c_ij · c_ij, compensated (claiming
 * each class's cosine, see {@linkcode Classes}).
 */
const rowNormTerms = (classes: Classes) => `
  var ga = vec2f(0.0);
  var gcc = vec2f(0.0);
  for (var j = t; j < ${classes.count}; j += ${ROW_THREADS}u) {
    let c = ${classes.claim("row", "j")};
    let isY = j == y;
    let value = select(nonTarget(c), tf.x, isY);
    let b = radiusB(j);
    let gz = select(p.weight * probability(a * b * value - top, sum), targetGrad, isY);
    ga = kahan(ga, gz * b * value);
    gcc = kahan(gcc, gz * a * b * select(nonTargetSlope(c), tf.y, isY) * c);
  }
  let gaSum = reduceSum(t, ga.x - ga.y);
  let gccSum = reduceSum(t, gcc.x - gcc.y);
  let n = nx[i];
  let cx = max(n, NORM_EPS);
  let selfFactor = (select(0.0, -gccSum / cx, n > NORM_EPS) + select(0.0, gaSum, A_IS_NORM)) *
    select(0.0, cx / n, n != 0.0);
  let rowScale = 1.0 / cx;`;

/**
 * One workgroup per sample. With m the largest non-target logit and R = Σ_{j≠y} e^{z_j − m} ≥ 1
 * (compensated), the loss is softplus(m − z_y + log R), finished in float64 on the host from
 * rows[i] = (m − z_y, R): it keeps its relative precision however small it is. The target's
 * gradient p_y − 1 is −Σ_{j≠y} p_j, which never cancels. Leaves the softmax shift and sum, f(c),
 * f′(c), the sample's factors on x̂_i and on G·W, and the target's gradient in `stats`. With host
 * targets (a successor head), f(c_iy) is read from `targets` (computed in float64) and f′ is 0 here:
 * the target's part of ∂x and ∂W is the host's, in float64, as on engine-wasm and engine-native.
 */
function rowShader(head: HeadSpec, variant: KernelVariant): Shader {
  const angular = isAngular(head), host = angular && variant.hostTargets;
  const classes = classesOf(variant),
    z = (j: string) => `a * radiusB(${j}) * nonTarget(${classes.read("row", j)})`;
  const targetsOf = host ? [r("targets")] : angular ? [r("halves", "vec2f")] : [];
  // Host targets: f(c_iy) only; the target's gradient through c_iy is the host's, in float64.
  const tf = host
    ? "vec2f(targets[i], 0.0)"
    : angular
    ? "targetOf(cy, halves[i])"
    : "vec2f(cy, 1.0)";
  return shader(
    [
      // A sub-center head's row pass claims each class's largest row in S.
      variant.subCenters ? rw("scores") : r("scores"),
      r("labels", "u32"),
      r("nx"),
      r("nw"),
      ...targetsOf,
      ...thresholdsOf(variant),
      rw("stats"),
      rw("rows", "vec2f"),
    ],
    `${angular && !host ? targetFunction(head) : ""}
${radiusFunctions(head)}
${cosineFunctions(variant)}${classes.functions(true)}
${reductions()}
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let i = wid.x;
  let y = labels[i];
  let row = i * p.Cp;${host ? "" : "\n  let cy = scores[row + y];"}
  let tf = ${tf};
  let a = radiusA(i);
  let zy = a * radiusB(y) * tf.x;${setThreshold(variant)}
  var m = -3.0e38;
  for (var j = t; j < ${classes.count}; j += ${ROW_THREADS}u) {
    if (j != y) { m = max(m, ${z("j")}); }
  }
  m = reduceMax(t, m);
  var rest = vec2f(0.0);
  for (var j = t; j < ${classes.count}; j += ${ROW_THREADS}u) {
    if (j != y) { rest = kahan(rest, expOrZero(${z("j")} - m)); }
  }
  let restSum = reduceSum(t, rest.x - rest.y);
  // The softmax over all classes, shifted by its maximum: sum = e^{z_y − top} + R·e^{m − top}.
  let top = max(m, zy);
  let others = restSum * expOrZero(m - top);
  let sum = expOrZero(zy - top) + others;
  let targetGrad = -p.weight * others / sum;
  ${angular ? rowNormTerms(classes) : "let selfFactor = 0.0;\n  let rowScale = 1.0;"}
  if (t == 0u) {
    let o = i * ROW_STATS;
    stats[o] = top;
    stats[o + 1u] = sum;
    stats[o + 2u] = tf.x;
    stats[o + 3u] = tf.y;
    stats[o + 4u] = selfFactor;
    stats[o + 5u] = rowScale;
    stats[o + 6u] = targetGrad;
    rows[i] = vec2f(m - zy, restSum);
  }
}`,
  );
}

/** The N×C logits z_ij, for runs that ask for them (one invocation per entry). */
function logitsShader(head: HeadSpec, variant: KernelVariant): Shader {
  const classes = classesOf(variant), count = classes.count;
  const cosine = classes.read("i * p.Cp", "j");
  return shader(
    [
      r("scores"),
      r("labels", "u32"),
      r("nx"),
      r("nw"),
      ...thresholdsOf(variant),
      r("stats"),
      rw("logits"),
    ],
    `${radiusFunctions(head)}
${cosineFunctions(variant)}${classes.functions(false)}
@compute @workgroup_size(${LINE_THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  let i = g.y;
  if (j >= ${count} || i >= p.N) { return; }${setThreshold(variant)}
  let value = select(nonTarget(${cosine}), stats[i * ROW_STATS + 2u], labels[i] == j);
  logits[i * ${count} + j] = radiusA(i) * radiusB(j) * value;
}`,
  );
}

/**
 * One invocation per class (per row of W for a sub-center head): turns the column of S into
 * G = ∂loss/∂c (angular) or ∂loss/∂z (linear) in place, and leaves the class's factors (1/‖w_j‖ on
 * Gᵀ·X, the factor on ŵ_j) and ∂b. A sub-center head's rows that the row pass marked NOT_ARG_MAX
 * get G = 0.
 */
function columnShader(head: HeadSpec, variant: KernelVariant): Shader {
  const angular = isAngular(head), classes = classesOf(variant);
  const slope = variant.subCenters
    ? "select(0.0, select(nonTargetSlope(c), stats[o + 3u], isY), c != NOT_ARG_MAX)"
    : "select(nonTargetSlope(c), stats[o + 3u], isY)";
  const body = angular
    ? `let value = select(nonTarget(c), stats[o + 2u], isY);
    let gz = select(p.weight * probability(a * b * value - stats[o], stats[o + 1u]), stats[o + 6u], isY);
    gb = kahan(gb, gz * a * value);
    let gc = gz * a * b * ${slope};
    gcc = kahan(gcc, gc * c);
    scores[i * p.Cp + j] = gc;`
    : `let gz = select(p.weight * probability(c - stats[o], stats[o + 1u]), stats[o + 6u], isY);
    gb = kahan(gb, gz);
    scores[i * p.Cp + j] = gz;`;
  const epilogue = angular
    ? `let n = nw[j];
  let cw = max(n, NORM_EPS);
  let own = (select(0.0, -(gcc.x - gcc.y) / cw, n > NORM_EPS) + select(0.0, gb.x - gb.y, B_IS_NORM)) *
    select(0.0, cw / n, n != 0.0);
  wFactor[j] = vec2f(1.0 / cw, own);`
    : `wFactor[j] = vec2f(1.0, 0.0);
  gradBias[j] = gb.x - gb.y;`;
  return shader(
    [
      rw("scores"),
      r("labels", "u32"),
      r("nx"),
      r("nw"),
      ...thresholdsOf(variant),
      r("stats"),
      rw("wFactor", "vec2f"),
      ...(angular ? [] : [rw("gradBias")]),
    ],
    `${radiusFunctions(head)}
${cosineFunctions(variant)}${classes.functions(false)}
@compute @workgroup_size(${LINE_THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.C) { return; }
  let b = radiusB(j);
  var gb = vec2f(0.0);
  var gcc = vec2f(0.0);
  for (var i = 0u; i < p.N; i++) {
    let o = i * ROW_STATS;
    let isY = labels[i] == ${classes.ofColumn("j")};
    let c = scores[i * p.Cp + j];${setThreshold(variant, "    ")}
    let a = radiusA(i);
    ${body}
  }
  ${epilogue}
}`,
  );
}

/** What differs between the two gradient products (see {@linkcode productShader}). */
interface Product {
  /** Output rows (R) and vec4 columns (Q) per invocation. */
  R: number;
  Q: number;
  bindings: Binding[];
  /** The bound on the block's first output row, and statements before the loop. */
  rows: string;
  setup: string;
  /** The range of the summation index t. */
  from: string;
  to: string;
  /** G's entry for output row `i` at t, and the other factor's vec4 `q` at t. */
  g: (i: number) => string;
  m: (q: number) => string;
  /** Stores the accumulator a{i}_{q} (a vec4f) of output row base + i, vec4 column kb + q. */
  store: (i: number, q: number) => string;
}

/**
 * The two gradient products from one template: out = Σ_t G(row, t) · M[t] over t, with R output
 * rows × Q vec4 columns in registers per invocation; neighbouring invocations are neighbouring
 * rows and share the M loads.
 */
function productShader(spec: Product): Shader {
  const I = range(spec.R), Q = range(spec.Q);
  return shader(
    spec.bindings,
    `
@compute @workgroup_size(${TILE}, ${TY})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let base = g.x * ${spec.R}u;
  let kb = g.y * ${spec.Q}u; // the block's first vec4 column
  let D4 = p.Dp / 4u;
  if (kb >= D4 || base >= ${spec.rows}) { return; }
  ${spec.setup}
  ${I.map((i) => Q.map((q) => `var a${i}_${q} = vec4f(0.0);`).join(" ")).join("\n  ")}
  for (var t = ${spec.from}; t < ${spec.to}; t++) {
    ${I.map((i) => `let g${i} = ${spec.g(i)};`).join(" ")}
    ${Q.map((q) => `let m${q} = ${spec.m(q)};`).join(" ")}
    ${I.map((i) => Q.map((q) => `a${i}_${q} += g${i} * m${q};`).join(" ")).join("\n    ")}
  }
  ${I.map((i) => Q.map((q) => spec.store(i, q)).join("\n  ")).join("\n  ")}
}`,
  );
}

/**
 * ∂X, first half: each workgroup layer g.z sums one slice of the chunk's classes, G·Ŵ over
 * ≤ p.slice classes, into its own partial sums (see {@linkcode reduceFeaturesShader}).
 */
function gradFeaturesShader(): Shader {
  return productShader({
    R: SHAPES.GI,
    Q: SHAPES.GQ,
    bindings: [r("scores"), r("w", "vec4f"), rw("partials", "vec4f")],
    rows: "p.Np",
    setup: "let first = g.z * p.slice;\n  let last = min(first + p.slice, p.cC);",
    from: "first",
    to: "last",
    g: (i) => `scores[(base + ${i}u) * p.Cp + p.c0 + t]`,
    m: (q) => `w[t * D4 + kb + ${q}u]`,
    store: (i, q) =>
      `partials[((p.slice0 + g.z) * p.Np + base + ${i}u) * D4 + kb + ${q}u] = a${i}_${q};`,
  });
}

/** Stores one vec4 of a row of D floats, skipping D's padding. */
function storeRow(out: BufferName, row: string, q: number, value: string): string {
  const lanes = range(4).map((e) =>
    `if (k + ${e}u < p.D) { ${out}[${row} * p.D + k + ${e}u] = v[${e}]; }`
  );
  return `{ let v = ${value}; let k = (kb + ${q}u) * 4u;\n    ${lanes.join(" ")} }`;
}

/** ∂W = (Gᵀ·X̂)/‖w_j‖ + f_j·ŵ_j, straight into the chunk's rows of ∂W. */
function gradWeightsShader(): Shader {
  return productShader({
    R: SHAPES.WJ,
    Q: SHAPES.WQ,
    bindings: [r("scores"), r("x", "vec4f"), r("w", "vec4f"), r("wFactor", "vec2f"), rw("gw")],
    rows: "p.cCp",
    setup: "",
    from: "0u",
    to: "p.N",
    g: (i) => `scores[t * p.Cp + p.c0 + base + ${i}u]`,
    m: (q) => `x[t * D4 + kb + ${q}u]`,
    store: (i, q) =>
      `if (base + ${i}u < p.cC) { let f = wFactor[p.c0 + base + ${i}u];\n  ${
        storeRow(
          "gw",
          `(base + ${i}u)`,
          q,
          `a${i}_${q} * f.x + f.y * w[(base + ${i}u) * D4 + kb + ${q}u]`,
        )
      } }`,
  });
}

/** ∂X, second half: the slices' partial sums, compensated, then (Σ/‖x_i‖) + f_i·x̂_i. */
function reduceFeaturesShader(): Shader {
  return shader(
    [r("partials"), r("x"), r("stats"), rw("gx")],
    `
@compute @workgroup_size(${LINE_THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let k = g.x;
  let i = g.y;
  if (k >= p.D || i >= p.N) { return; }
  var s = vec2f(0.0);
  for (var q = 0u; q < p.slices; q++) { s = kahan(s, partials[(q * p.Np + i) * p.Dp + k]); }
  let o = i * ROW_STATS;
  gx[i * p.D + k] = (s.x - s.y) * stats[o + 5u] + stats[o + 4u] * x[i * p.Dp + k];
}`,
  );
}

/** The shader of one stage for `head` (of `variant`: a successor head's host targets and clamp). */
export function stageShader(
  stage: StageName,
  head: HeadSpec,
  variant: KernelVariant = PLAIN,
): Shader {
  switch (stage) {
    case "targets":
      return targetsShader();
    case "forward":
      return forwardShader(head);
    case "row":
      return rowShader(head, variant);
    case "logits":
      return logitsShader(head, variant);
    case "column":
      return columnShader(head, variant);
    case "gradFeatures":
      return gradFeaturesShader();
    case "reduceFeatures":
      return reduceFeaturesShader();
    case "gradWeights":
      return gradWeightsShader();
    default:
      return unreachable("stage", stage);
  }
}

// The fused margin-softmax kernels (AssemblyScript → WebAssembly SIMD). Every thread runs them on
// the class tiles it takes; the host (../engine.ts, which describes the algorithm) lays out the
// inputs, synchronises the passes and finishes the per-sample work in float64.
// Build: `deno task build:wasm` (engines/wasm/build.ts).
import {
  MODE_CLAMP,
  MODE_HARD,
  SLOT_A,
  SLOT_ANGULAR,
  SLOT_BAD,
  SLOT_BAD_W,
  SLOT_BAD_Z,
  SLOT_BIAS,
  SLOT_C,
  SLOT_COS,
  SLOT_COS_HI,
  SLOT_COS_LO,
  SLOT_CP,
  SLOT_DP,
  SLOT_FORWARD_ONLY,
  SLOT_GB,
  SLOT_GW,
  SLOT_HARD_T,
  SLOT_INVCW,
  SLOT_LABELS,
  SLOT_MODE,
  SLOT_NEXT_BACKWARD,
  SLOT_NEXT_FORWARD,
  SLOT_NP,
  SLOT_NW,
  SLOT_RADIUS,
  SLOT_REUSE_COS,
  SLOT_STATS,
  SLOT_SUBCENTERS,
  SLOT_THR,
  SLOT_THREAD_BASE,
  SLOT_THREAD_BYTES,
  SLOT_THREADS,
  SLOT_TILE,
  SLOT_W,
  SLOT_WEIGHT,
  SLOT_XPACK,
  SLOT_XPACKK,
  SLOT_ZY,
  T_GRADA,
  T_LOGZ,
  T_MAX,
  T_SUM,
  T_SUMX,
  T_TILE,
  T_TILE_GRADA,
  T_TILE_SUMX,
} from "./layout";
import { expv } from "../../_assembly/exp";

const NORM_EPS: f32 = 1e-12;
const FLOAT32_MAX: f64 = 3.4028234663852886e38;
// Stands in for the logit of a target in the forward statistics: finite, so max − max is 0.
const MASKED: f32 = -3.4028234663852886e38;

// a·b + c: one fused instruction where relaxed SIMD is enabled, else a multiply and an add.
function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

function splat(v: f32): v128 {
  return f32x4.splat(v);
}

function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) +
    f32x4.extract_lane(v, 3);
}

function slot(P: usize, k: i32): i32 {
  return load<i32>(P + (<usize> k << 2));
}

function ptr(P: usize, k: i32): usize {
  return <usize> load<i32>(P + (<usize> k << 2));
}

// The float32 in slot k, in every lane.
function slotSplat(P: usize, k: i32): v128 {
  return v128.load32_splat(P + (<usize> k << 2));
}

// c clamped to [lo, hi] (pmax/pmin: one instruction each; a NaN c stays NaN, ±∞ bounds change
// nothing).
function clampCos(c: v128, lo: v128, hi: v128): v128 {
  return f32x4.pmin(f32x4.pmax(c, lo), hi);
}

// The non-targets' elementwise step (layout.ts's MODE_*) as a type parameter, so that each mode's
// loops are compiled apart and the common heads' carry no test and no extra work.
type Plain = u8;
type Clamp = u16;
type Hard = u32;

function isClamp<M>(): bool {
  return sizeof<M>() == sizeof<Clamp>();
}

function isHard<M>(): bool {
  return sizeof<M>() == sizeof<Hard>();
}

// The cosine part of a non-target's logit (z = a_i·b_j·part): c, clamp(c) to [lo, hi], or
// c·(t + c) where c > thr (CurricularFace's hard negatives).
function cosPart<M>(c: v128, lo: v128, hi: v128, thr: v128, t: v128): v128 {
  if (isClamp<M>()) return clampCos(c, lo, hi);
  if (isHard<M>()) return v128.bitselect(f32x4.mul(c, f32x4.add(t, c)), c, f32x4.gt(c, thr));
  return c;
}

// ∂part/∂c times g: 0 where the clamp binds, t + 2c for a hard negative, else 1.
function partSlope<M>(g: v128, c: v128, lo: v128, hi: v128, thr: v128, t: v128): v128 {
  if (isClamp<M>()) return v128.andnot(g, v128.or(f32x4.lt(c, lo), f32x4.gt(c, hi)));
  if (isHard<M>()) {
    const slope = f32x4.add(t, f32x4.add(c, c));
    return f32x4.mul(g, v128.bitselect(slope, splat(1), f32x4.gt(c, thr)));
  }
  return g;
}

// The rows of a microkernel (a type parameter, so that each size compiles apart): six, whose 12
// accumulators run at 52 GFLOP/s a core where four rows' 8 ran at 46 (a 128-bit peak of 55 here),
// and four for a block's last rows.
type Six = u16;
type Four = u8;

function isSix<R>(): bool {
  return sizeof<R>() == sizeof<Six>();
}

// Where the six-row blocks of `rows` (a multiple of 4) end: the rest is zero to two four-row blocks.
// The plain-SIMD build takes four-row blocks only: its multiply and add, apart, need a register
// more per row, and six rows ran at 26 GFLOP/s a core where four ran at 41.
function sixRowsEnd(rows: i32): i32 {
  if (!ASC_FEATURE_RELAXED_SIMD) return 0;
  return rows - 4 * ((rows >> 2) % 3);
}

// The register-blocked product of all three matrix passes, R (six or four) rows by 8 columns: for
// rows r of `a` (`rs` bytes apart, contiguous in k) and `b` packed 8 floats per k,
//   acc[r] = Σ_{k<len} a[r][k]·b[k][0..8], then
//   wide: out[r][0..8] += acc[r] in float64 (rows `os` bytes apart), or else
//   out[r][0..8] = acc[r]·scale[r] + shift[r]·(v ? v[r][0..8] : 1) (out rows `os`, v rows `vs`
//   bytes apart; a zero `scale` or `shift` pointer leaves that term out).
// Returns the lanes that are not finite (none when wide).
//   cosines: a = W, b = x̂ by 8 samples, scale 1/‖w‖, shift the bias;
//   ∂/∂W:    a = ∂/∂c, b = x̂ by 8 features, scale 1/‖w‖, shift the norm factor, v = ŵ;
//   ∂/∂x̂:   a = ∂/∂c transposed, b = ŵ by 8 features, wide.
function microkernel<R>(
  a: usize,
  rs: usize,
  len: i32,
  b: usize,
  out: usize,
  os: usize,
  wide: bool,
  scale: usize,
  shift: usize,
  v: usize,
  vs: usize,
): v128 {
  const six = isSix<R>();
  let p0 = a;
  const end = a + (<usize> len << 2);
  let a00 = splat(0), a01 = splat(0), a10 = splat(0), a11 = splat(0);
  let a20 = splat(0), a21 = splat(0), a30 = splat(0), a31 = splat(0);
  let a40 = splat(0), a41 = splat(0), a50 = splat(0), a51 = splat(0);
  let px = b;
  while (p0 < end) {
    const x0 = v128.load(px), x1 = v128.load(px, 16);
    let s = v128.load32_splat(p0);
    a00 = fma(s, x0, a00);
    a01 = fma(s, x1, a01);
    s = v128.load32_splat(p0 + rs);
    a10 = fma(s, x0, a10);
    a11 = fma(s, x1, a11);
    s = v128.load32_splat(p0 + 2 * rs);
    a20 = fma(s, x0, a20);
    a21 = fma(s, x1, a21);
    s = v128.load32_splat(p0 + 3 * rs);
    a30 = fma(s, x0, a30);
    a31 = fma(s, x1, a31);
    if (six) {
      s = v128.load32_splat(p0 + 4 * rs);
      a40 = fma(s, x0, a40);
      a41 = fma(s, x1, a41);
      s = v128.load32_splat(p0 + 5 * rs);
      a50 = fma(s, x0, a50);
      a51 = fma(s, x1, a51);
    }
    p0 += 4;
    px += 32;
  }
  if (wide) {
    addRowF64(out, a00, a01);
    addRowF64(out + os, a10, a11);
    addRowF64(out + 2 * os, a20, a21);
    addRowF64(out + 3 * os, a30, a31);
    if (six) {
      addRowF64(out + 4 * os, a40, a41);
      addRowF64(out + 5 * os, a50, a51);
    }
    return splat(0);
  }
  let bad = rowOut(a00, a01, 0, out, os, scale, shift, v, vs);
  bad = v128.or(bad, rowOut(a10, a11, 1, out, os, scale, shift, v, vs));
  bad = v128.or(bad, rowOut(a20, a21, 2, out, os, scale, shift, v, vs));
  bad = v128.or(bad, rowOut(a30, a31, 3, out, os, scale, shift, v, vs));
  if (six) {
    bad = v128.or(bad, rowOut(a40, a41, 4, out, os, scale, shift, v, vs));
    bad = v128.or(bad, rowOut(a50, a51, 5, out, os, scale, shift, v, vs));
  }
  return bad;
}

// Row r of the microkernel's output: out[r][0..8] = acc·scale[r] + shift[r]·(v ? v[r][0..8] : 1).
function rowOut(
  acc0: v128,
  acc1: v128,
  r: usize,
  out: usize,
  os: usize,
  scale: usize,
  shift: usize,
  v: usize,
  vs: usize,
): v128 {
  if (scale) {
    const s = v128.load32_splat(scale + (r << 2));
    acc0 = f32x4.mul(acc0, s);
    acc1 = f32x4.mul(acc1, s);
  }
  if (shift) {
    const f = v128.load32_splat(shift + (r << 2));
    acc0 = v ? fma(v128.load(v + r * vs), f, acc0) : f32x4.add(acc0, f);
    acc1 = v ? fma(v128.load(v + r * vs, 16), f, acc1) : f32x4.add(acc1, f);
  }
  out += r * os;
  v128.store(out, acc0);
  v128.store(out, acc1, 16);
  return v128.or(nonFinite(acc0), nonFinite(acc1));
}

// The lanes of v that are NaN or ±∞ (x − x is NaN exactly there).
function nonFinite(v: v128): v128 {
  return f32x4.ne(f32x4.sub(v, v), splat(0));
}

// p[0..8] (f64) += lo, hi (f32).
function addRowF64(p: usize, lo: v128, hi: v128): void {
  addF64(p, lo);
  addF64(p + 32, hi);
}

// p[0..4] (f64) += v[0..4] (f32).
function addF64(p: usize, v: v128): void {
  v128.store(p, f64x2.add(v128.load(p), f64x2.promote_low_f32x4(v)));
  v128.store(p, f64x2.add(v128.load(p, 16), f64x2.promote_low_f32x4(high(v))), 16);
}

function threadBase(P: usize, tid: i32): usize {
  return ptr(P, SLOT_THREAD_BASE) + <usize> tid * ptr(P, SLOT_THREAD_BYTES);
}

// The thread's float64 partial ∂/∂x (Np×Dp), after its gradient tile and that tile transposed.
function gradXOf(P: usize, tb: usize): usize {
  return tb + <usize> (T_TILE + 2 * slot(P, SLOT_TILE)) * (<usize> slot(P, SLOT_NP) << 2);
}

// f32x4 lanes 2, 3 moved to 0, 1, for promotion to f64x2.
function high(v: v128): v128 {
  return v128.shuffle<f32>(v, v, 2, 3, 0, 1);
}

/**
 * Forward pass of thread `tid` over the class tiles it takes: row norms of W, the cosine tiles into
 * the class-major buffer, and each sample's running max and sum of exp(z − max) over the thread's
 * non-target classes.
 */
export function forward(P: usize, tid: i32): void {
  const Np = slot(P, SLOT_NP), C = slot(P, SLOT_C), Cp = slot(P, SLOT_CP);
  const tile = slot(P, SLOT_TILE), next = P + (<usize> SLOT_NEXT_FORWARD << 2);
  const K = slot(P, SLOT_SUBCENTERS), reuse = slot(P, SLOT_REUSE_COS) != 0;
  const unit = <usize> Np << 2, tb = threadBase(P, tid);
  const tmax = tb + <usize> T_MAX * unit, tsum = tb + <usize> T_SUM * unit;
  for (let i = 0; i < Np; i++) {
    store<f32>(tmax + (<usize> i << 2), -Infinity);
    store<f64>(tsum + (<usize> i << 3), 0);
  }
  // Threads take class tiles from a shared counter, so a busy core holds no one up.
  for (let jt = atomic.add<i32>(next, 1) * tile; jt < Cp; jt = atomic.add<i32>(next, 1) * tile) {
    const je = min(jt + tile, Cp);
    if (!reuse) {
      rowNorms(P, jt, je);
      cosTile(P, jt, je);
    }
    if (min(je, C) > jt) {
      if (K) tileStatsSub(P, tmax, tsum, jt, min(je, C), K);
      else tileStats(P, tmax, tsum, jt, min(je, C));
    }
  }
}

// ‖w_j‖ and 1/max(‖w_j‖, ε) of rows [jt, je) (angular heads); flags rows that are not finite or
// whose norm float32 cannot hold.
function rowNorms(P: usize, jt: i32, je: i32): void {
  const angular = slot(P, SLOT_ANGULAR) != 0, rs = <usize> slot(P, SLOT_DP) << 2;
  const w = ptr(P, SLOT_W), nw = ptr(P, SLOT_NW), invcw = ptr(P, SLOT_INVCW);
  for (let j = jt; j < je; j++) {
    const row = w + <usize> j * rs;
    let s0 = splat(0), s1 = splat(0);
    for (let k: usize = 0; k < rs; k += 32) {
      const v0 = v128.load(row + k), v1 = v128.load(row + k, 16);
      s0 = fma(v0, v0, s0);
      s1 = fma(v1, v1, s1);
    }
    let sq = <f64> hsum(f32x4.add(s0, s1));
    // Float32 squares overflow from ‖w‖ ≈ 1.8e19 on and lose digits near the subnormals (and a
    // non-finite element lands here too): those rows are summed again in float64.
    if (!(sq > 1e-30 && sq < 1e38)) sq = sumOfSquares(row, rs);
    const n = Math.sqrt(sq);
    if (!(n <= FLOAT32_MAX)) store<i32>(P + (<usize> SLOT_BAD_W << 2), 1);
    if (angular) {
      store<f32>(nw + (<usize> j << 2), <f32> n);
      store<f32>(invcw + (<usize> j << 2), <f32> (1 / max(n, <f64> NORM_EPS)));
    }
  }
}

function sumOfSquares(row: usize, bytes: usize): f64 {
  let s: f64 = 0;
  for (let k: usize = 0; k < bytes; k += 4) {
    const v = <f64> load<f32>(row + k);
    s += v * v;
  }
  return s;
}

// Cosines (or a linear head's logits) of classes [jt, je) for every sample.
function cosTile(P: usize, jt: i32, je: i32): void {
  const six = jt + sixRowsEnd(je - jt);
  let j = jt;
  for (; j < six; j += 6) cosRows<Six>(P, j);
  for (; j < je; j += 4) cosRows<Four>(P, j);
}

// cosTile's R classes from j.
function cosRows<R>(P: usize, j: i32): void {
  const Np = slot(P, SLOT_NP), Dp = slot(P, SLOT_DP);
  const w = ptr(P, SLOT_W), xpack = ptr(P, SLOT_XPACK), cos = ptr(P, SLOT_COS);
  const invcw = ptr(P, SLOT_INVCW), bias = ptr(P, SLOT_BIAS);
  const rs = <usize> Dp << 2, unit = <usize> Np << 2;
  const row = w + <usize> j * rs, out = cos + <usize> j * unit, o = <usize> j << 2;
  for (let ib = 0; ib < Np; ib += 8) {
    const xb = xpack + <usize> ib * rs, at = out + (<usize> ib << 2);
    microkernel<R>(row, rs, Dp, xb, at, unit, false, invcw + o, bias + o, 0, 0);
  }
}

// z = a_i·b_j·part(c_ij) for 4 samples (b_j = ‖w_j‖ for a normProduct radius, else 1).
function logit<M>(
  a: v128,
  normProduct: bool,
  nw: usize,
  j: i32,
  cos: usize,
  lo: v128,
  hi: v128,
  thr: v128,
  t: v128,
): v128 {
  const ab = normProduct ? f32x4.mul(a, v128.load32_splat(nw + (<usize> j << 2))) : a;
  return f32x4.mul(ab, cosPart<M>(v128.load(cos), lo, hi, thr, t));
}

// Merges classes [jt, jr) into each sample's running max and Σ exp(z − max) over non-targets
// (targets are left out: the host adds them in float64); flags logits float32 cannot hold.
function tileStats(P: usize, tmax: usize, tsum: usize, jt: i32, jr: i32): void {
  const mode = slot(P, SLOT_MODE);
  if (mode == MODE_HARD) tileStatsOf<Hard>(P, tmax, tsum, jt, jr);
  else if (mode == MODE_CLAMP) tileStatsOf<Clamp>(P, tmax, tsum, jt, jr);
  else tileStatsOf<Plain>(P, tmax, tsum, jt, jr);
}

function tileStatsOf<M>(P: usize, tmax: usize, tsum: usize, jt: i32, jr: i32): void {
  const Np = slot(P, SLOT_NP), unit = <usize> Np << 2;
  const normProduct = slot(P, SLOT_ANGULAR) != 0 && slot(P, SLOT_RADIUS) == 2;
  const cos = ptr(P, SLOT_COS), labels = ptr(P, SLOT_LABELS), av = ptr(P, SLOT_A);
  const nw = ptr(P, SLOT_NW), lo = slotSplat(P, SLOT_COS_LO), hi = slotSplat(P, SLOT_COS_HI);
  const thrs = ptr(P, SLOT_THR), t = slotSplat(P, SLOT_HARD_T);
  let bad = splat(0);
  for (let i = 0; i < Np; i += 4) {
    const off = <usize> i << 2, a = v128.load(av + off), lab = v128.load(labels + off);
    const thr = isHard<M>() ? v128.load(thrs + off) : a;
    let m = splat(MASKED);
    for (let j = jt; j < jr; j++) {
      const z = logit<M>(a, normProduct, nw, j, cos + <usize> j * unit + off, lo, hi, thr, t);
      // nonFinite and pmax: a few instructions where V8's NaN-propagating max takes eight.
      bad = v128.or(bad, nonFinite(z));
      m = f32x4.pmax(m, v128.bitselect(splat(MASKED), z, i32x4.eq(lab, i32x4.splat(j))));
    }
    let s = splat(0);
    for (let j = jt; j < jr; j++) {
      const z = logit<M>(a, normProduct, nw, j, cos + <usize> j * unit + off, lo, hi, thr, t);
      const e = expv(f32x4.sub(z, m));
      s = f32x4.add(s, v128.andnot(e, i32x4.eq(lab, i32x4.splat(j))));
    }
    mergeStats(tmax + off, tsum + (<usize> i << 3), m, s);
  }
  if (v128.any_true(bad)) store<i32>(P + (<usize> SLOT_BAD_Z << 2), 1);
}

// Merges a tile's (m, s) into the running (M, S) of 4 samples: M' = max, S' = S·e^(M−M') + s·e^(m−M').
function mergeStats(mp: usize, sp: usize, m: v128, s: v128): void {
  const mOld = v128.load(mp), mNew = f32x4.max(mOld, m);
  const fOld = expv(f32x4.sub(mOld, mNew)), sNew = f32x4.mul(s, expv(f32x4.sub(m, mNew)));
  const lo = f64x2.mul(v128.load(sp), f64x2.promote_low_f32x4(fOld));
  const hi = f64x2.mul(v128.load(sp, 16), f64x2.promote_low_f32x4(high(fOld)));
  v128.store(sp, f64x2.add(lo, f64x2.promote_low_f32x4(sNew)));
  v128.store(sp, f64x2.add(hi, f64x2.promote_low_f32x4(high(sNew))), 16);
  v128.store(mp, mNew);
}

/**
 * Combines every thread's running max and sum over the non-target classes, and the target logit,
 * into log Σ_j exp(z_ij) for each sample: into the thread's own copy, and (thread 0) the
 * non-target statistics into the shared float64 array for the host.
 */
export function combine(P: usize, tid: i32): void {
  const Np = slot(P, SLOT_NP), T = slot(P, SLOT_THREADS);
  const unit = <usize> Np << 2, own = threadBase(P, tid);
  const stats = ptr(P, SLOT_STATS), zy = ptr(P, SLOT_ZY);
  for (let i = 0; i < Np; i++) {
    let M: f64 = MASKED;
    for (let t = 0; t < T; t++) {
      M = max(M, <f64> load<f32>(threadBase(P, t) + <usize> T_MAX * unit + (<usize> i << 2)));
    }
    let S: f64 = 0;
    for (let t = 0; t < T; t++) {
      const tb = threadBase(P, t);
      const m = <f64> load<f32>(tb + <usize> T_MAX * unit + (<usize> i << 2));
      if (m > -Infinity) {
        S += load<f64>(tb + <usize> T_SUM * unit + (<usize> i << 3)) * Math.exp(m - M);
      }
    }
    const z = load<f64>(zy + (<usize> i << 3)), top = max(M, z);
    const lz = top + Math.log(S * Math.exp(M - top) + Math.exp(z - top));
    store<f32>(own + <usize> T_LOGZ * unit + (<usize> i << 2), <f32> lz);
    if (tid == 0) {
      store<f64>(stats + (<usize> i << 4), M);
      store<f64>(stats + (<usize> i << 4), S, 8);
    }
  }
}

/**
 * Backward pass of thread `tid` over the class tiles it takes: the gradient tile ∂loss/∂cos
 * (targets left to the host, which handles them in float64), the tile's rows of ∂loss/∂W with the
 * normalisation backward folded in, and the thread's partial ∂loss/∂x̂ (N×D) and per-sample sums,
 * accumulated over tiles in float64.
 */
export function backward(P: usize, tid: i32): void {
  if (slot(P, SLOT_FORWARD_ONLY)) return; // the host wants the losses alone
  const Np = slot(P, SLOT_NP), Dp = slot(P, SLOT_DP), Cp = slot(P, SLOT_CP);
  const tile = slot(P, SLOT_TILE), next = P + (<usize> SLOT_NEXT_BACKWARD << 2);
  const K = slot(P, SLOT_SUBCENTERS);
  const unit = <usize> Np << 2, tb = threadBase(P, tid);
  memory.fill(tb + <usize> T_SUMX * unit, 0, 4 * unit);
  const gx = gradXOf(P, tb), wp = gx + (<usize> Np * Dp << 3);
  memory.fill(gx, 0, <usize> Np * Dp << 3);
  let bad = splat(0);
  for (let jt = atomic.add<i32>(next, 1) * tile; jt < Cp; jt = atomic.add<i32>(next, 1) * tile) {
    const je = min(jt + tile, Cp);
    if (K) gradTileSub(P, tb, jt, je, K);
    else gradTile(P, tb, jt, je);
    packTile(P, wp, jt, je);
    bad = v128.or(bad, gradWTile(P, tb, wp, jt, je));
    gradXTile(P, tb, wp, jt, je);
  }
  if (v128.any_true(bad)) store<i32>(P + (<usize> SLOT_BAD << 2), 1);
}

// The gradient tile of classes [jt, je): rows ∂loss/∂c_ij (∂loss/∂z_ij for a linear head), targets
// zero; per class, the factor of ŵ_j in ∂loss/∂w_j (or ∂loss/∂b_j); per sample, the tile's
// share of Σ_j gc_ij·c_ij and of the radius gradient, added to the thread's float64 sums.
function gradTile(P: usize, tb: usize, jt: i32, je: i32): void {
  const mode = slot(P, SLOT_MODE), unit = <usize> slot(P, SLOT_NP) << 2;
  const tsumx = tb + <usize> T_TILE_SUMX * unit, tgrada = tb + <usize> T_TILE_GRADA * unit;
  memory.fill(tsumx, 0, 2 * unit);
  for (let j = jt; j < je; j++) {
    if (mode == MODE_HARD) gradColumn<Hard>(P, tb, j, jt);
    else if (mode == MODE_CLAMP) gradColumn<Clamp>(P, tb, j, jt);
    else gradColumn<Plain>(P, tb, j, jt);
  }
  if (slot(P, SLOT_ANGULAR) == 0) return;
  const sumx = tb + <usize> T_SUMX * unit, grada = tb + <usize> T_GRADA * unit;
  for (let i = 0; i < slot(P, SLOT_NP); i += 4) {
    addF64(sumx + (<usize> i << 3), v128.load(tsumx + (<usize> i << 2)));
    addF64(grada + (<usize> i << 3), v128.load(tgrada + (<usize> i << 2)));
  }
}

// Class j's row of the gradient tile, its factor of ŵ_j (or ∂loss/∂b_j), and its share of the
// per-sample sums.
function gradColumn<M>(P: usize, tb: usize, j: i32, jt: i32): void {
  const Np = slot(P, SLOT_NP), C = slot(P, SLOT_C), unit = <usize> Np << 2;
  const angular = slot(P, SLOT_ANGULAR) != 0, radius = slot(P, SLOT_RADIUS);
  const normProduct = angular && radius == 2, aIsNorm = angular && radius >= 1;
  const cos = ptr(P, SLOT_COS), labels = ptr(P, SLOT_LABELS), av = ptr(P, SLOT_A);
  const weight = ptr(P, SLOT_WEIGHT), nw = ptr(P, SLOT_NW), invcw = ptr(P, SLOT_INVCW);
  const logz = tb + <usize> T_LOGZ * unit, thrs = ptr(P, SLOT_THR), t = slotSplat(P, SLOT_HARD_T);
  const lo = slotSplat(P, SLOT_COS_LO), hi = slotSplat(P, SLOT_COS_HI);
  const tsumx = tb + <usize> T_TILE_SUMX * unit, tgrada = tb + <usize> T_TILE_GRADA * unit;
  const grow = tb + <usize> (T_TILE + j - jt) * unit, gbj = ptr(P, SLOT_GB) + (<usize> j << 2);
  if (j >= C) {
    memory.fill(grow, 0, unit);
    store<f32>(gbj, 0);
    return;
  }
  const nwj = load<f32>(nw + (<usize> j << 2)), icw = load<f32>(invcw + (<usize> j << 2));
  const b = splat(normProduct ? nwj : 1), jv = i32x4.splat(j), crow = cos + <usize> j * unit;
  let colGc = splat(0), colGz = splat(0);
  for (let i = 0; i < Np; i += 4) {
    const off = <usize> i << 2;
    const v = v128.load(crow + off), a = v128.load(av + off), ab = f32x4.mul(a, b);
    const thr = isHard<M>() ? v128.load(thrs + off) : a;
    const part = cosPart<M>(v, lo, hi, thr, t); // z = a·b·part
    const p = expv(f32x4.sub(f32x4.mul(ab, part), v128.load(logz + off)));
    const wt = v128.load(weight + off), target = i32x4.eq(v128.load(labels + off), jv);
    const gz = v128.andnot(f32x4.mul(wt, p), target); // targets: the host, in float64
    if (!angular) {
      v128.store(grow + off, gz);
      colGz = f32x4.add(colGz, gz);
      continue;
    }
    // ∂z/∂c = a·b·∂part/∂c; ∂z/∂a, ∂z/∂b use part itself.
    const gc = partSlope<M>(f32x4.mul(gz, ab), v, lo, hi, thr, t), gcv = f32x4.mul(gc, v);
    v128.store(tsumx + off, f32x4.add(v128.load(tsumx + off), gcv));
    colGc = f32x4.add(colGc, gcv);
    if (aIsNorm) v128.store(tgrada + off, fma(f32x4.mul(gz, b), part, v128.load(tgrada + off)));
    if (normProduct) colGz = fma(f32x4.mul(gz, a), part, colGz);
    v128.store(grow + off, gc);
  }
  // ∂/∂w_j of the norm: (−Σ_i gc·c / max(‖w‖, ε) [if ‖w‖ > ε] + radius term) · w_j/‖w_j‖,
  // as a factor of ŵ_j = w_j / max(‖w_j‖, ε).
  const coef = (nwj > NORM_EPS ? -hsum(colGc) * icw : 0) + (normProduct ? hsum(colGz) : 0);
  const fac = nwj > NORM_EPS ? coef : nwj > 0 ? coef * (NORM_EPS / nwj) : 0;
  store<f32>(gbj, angular ? fac : hsum(colGz));
}

// The tile's rows ŵ_j = w_j / max(‖w_j‖, ε) by blocks of 8 features ((Dp/8)×count×8), so that the
// products below read them in order and never meet a row's own scale (‖w‖ up to 3.4e38).
function packTile(P: usize, wp: usize, jt: i32, je: i32): void {
  const Dp = slot(P, SLOT_DP), w = ptr(P, SLOT_W), invcw = ptr(P, SLOT_INVCW);
  const rs = <usize> Dp << 2, count = je - jt;
  for (let j = 0; j < count; j++) {
    const src = w + <usize> (jt + j) * rs, icw = v128.load32_splat(invcw + (<usize> (jt + j) << 2));
    for (let k = 0; k < Dp; k += 8) {
      const dst = wp + ((<usize> k * <usize> count + (<usize> j << 3)) << 2);
      v128.store(dst, f32x4.mul(v128.load(src + (<usize> k << 2)), icw));
      v128.store(dst, f32x4.mul(v128.load(src + (<usize> k << 2), 16), icw), 16);
    }
  }
}

// The tile's rows of ∂loss/∂W: (Σ_i g_ij·x̂_i)/max(‖w_j‖, ε) + the norm factor·ŵ_j; returns
// non-finite lanes.
function gradWTile(P: usize, tb: usize, wp: usize, jt: i32, je: i32): v128 {
  const six = jt + sixRowsEnd(je - jt);
  let bad = splat(0), j = jt;
  for (; j < six; j += 6) bad = v128.or(bad, gradWRows<Six>(P, tb, wp, jt, je, j));
  for (; j < je; j += 4) bad = v128.or(bad, gradWRows<Four>(P, tb, wp, jt, je, j));
  return bad;
}

// gradWTile's R rows from j.
function gradWRows<R>(P: usize, tb: usize, wp: usize, jt: i32, je: i32, j: i32): v128 {
  const Np = slot(P, SLOT_NP), Dp = slot(P, SLOT_DP), angular = slot(P, SLOT_ANGULAR) != 0;
  const xk = ptr(P, SLOT_XPACKK), gw = ptr(P, SLOT_GW), gb = ptr(P, SLOT_GB);
  const invcw = ptr(P, SLOT_INVCW);
  const unit = <usize> Np << 2, rs = <usize> Dp << 2, count = <usize> (je - jt);
  const g = tb + <usize> (T_TILE + j - jt) * unit, o = <usize> j << 2;
  const scale = angular ? invcw + o : 0, fac = angular ? gb + o : 0;
  let bad = splat(0);
  for (let k = 0; k < Dp; k += 8) {
    const out = gw + <usize> j * rs + (<usize> k << 2), b = xk + <usize> k * unit;
    const v = wp + ((<usize> k * count + (<usize> (j - jt) << 3)) << 2);
    bad = v128.or(bad, microkernel<R>(g, unit, Np, b, out, rs, false, scale, fac, v, 32));
  }
  return bad;
}

// The tile's share of the thread's ∂/∂x̂: Σ_j g_ij·ŵ_j, into the float64 accumulator, from the
// gradient tile transposed (rows i, `count` classes each).
function gradXTile(P: usize, tb: usize, wp: usize, jt: i32, je: i32): void {
  const Np = slot(P, SLOT_NP), Dp = slot(P, SLOT_DP), tile = slot(P, SLOT_TILE);
  const unit = <usize> Np << 2, rs = <usize> Dp << 2, count = je - jt, cs = <usize> count << 2;
  const gt = tb + <usize> T_TILE * unit, gtt = gt + <usize> tile * unit, gx = gradXOf(P, tb);
  for (let j: usize = 0; j < <usize> count; j += 4) {
    for (let i: usize = 0; i < <usize> Np; i += 4) {
      transpose4(gt + j * unit + (i << 2), unit, gtt + i * cs + (j << 2), cs);
    }
  }
  const six = sixRowsEnd(Np);
  let i = 0;
  for (; i < six; i += 6) {
    gradXRows<Six>(gtt + <usize> i * cs, cs, count, wp, gx + (<usize> i * rs << 1), Dp);
  }
  for (; i < Np; i += 4) {
    gradXRows<Four>(gtt + <usize> i * cs, cs, count, wp, gx + (<usize> i * rs << 1), Dp);
  }
}

// gradXTile's R samples: `g` their gradient rows (`cs` bytes apart, `count` classes), `gx` their
// float64 rows of ∂/∂x̂.
function gradXRows<R>(g: usize, cs: usize, count: i32, wp: usize, gx: usize, Dp: i32): void {
  const rs = <usize> Dp << 3;
  for (let k = 0; k < Dp; k += 8) {
    microkernel<R>(g, cs, count, wp + <usize> k * cs, gx + (<usize> k << 3), rs, true, 0, 0, 0, 0);
  }
}

// The 4×4 block at `src` (rows `ss` bytes apart) transposed into `dst` (rows `ds` bytes apart).
function transpose4(src: usize, ss: usize, dst: usize, ds: usize): void {
  const r0 = v128.load(src), r1 = v128.load(src + ss);
  const r2 = v128.load(src + 2 * ss), r3 = v128.load(src + 3 * ss);
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(dst + ds, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
  v128.store(dst + 2 * ds, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * ds, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
}

// ── Sub-center heads (SLOT_SUBCENTERS = K > 0): the kernel head is scale s without margin and
// without clamp; rows c·K … c·K + K − 1 hold class c, whose cosine is the largest of them (the
// first of equal ones); every tile starts at a multiple of K, so a class never spans two tiles.
// The cosine, ∂/∂W and ∂/∂x̂ products run over the rows as for any head: the class's gradient sits
// at its arg-max row and 0 at the others.

// The class cosine of 4 samples: the largest of the K rows from `p` (rows `unit` bytes apart).
function groupMax(p: usize, unit: usize, K: i32): v128 {
  let c = v128.load(p);
  for (let k = 1; k < K; k++) c = f32x4.max(c, v128.load(p + <usize> k * unit));
  return c;
}

// tileStats over the classes of rows [jt, jr): z = a_i·max_k c, the target class left out.
function tileStatsSub(P: usize, tmax: usize, tsum: usize, jt: i32, jr: i32, K: i32): void {
  const Np = slot(P, SLOT_NP), unit = <usize> Np << 2;
  const cos = ptr(P, SLOT_COS), labels = ptr(P, SLOT_LABELS), av = ptr(P, SLOT_A);
  let big = splat(0);
  for (let i = 0; i < Np; i += 4) {
    const off = <usize> i << 2, a = v128.load(av + off), lab = v128.load(labels + off);
    let m = splat(MASKED);
    for (let j = jt; j < jr; j += K) {
      const z = f32x4.mul(a, groupMax(cos + <usize> j * unit + off, unit, K));
      big = f32x4.max(big, f32x4.abs(z));
      m = f32x4.max(m, v128.bitselect(splat(MASKED), z, i32x4.eq(lab, i32x4.splat(j / K))));
    }
    let s = splat(0);
    for (let j = jt; j < jr; j += K) {
      const z = f32x4.mul(a, groupMax(cos + <usize> j * unit + off, unit, K));
      const e = expv(f32x4.sub(z, m));
      s = f32x4.add(s, v128.andnot(e, i32x4.eq(lab, i32x4.splat(j / K))));
    }
    mergeStats(tmax + off, tsum + (<usize> i << 3), m, s);
  }
  if (v128.any_true(nonFinite(big))) store<i32>(P + (<usize> SLOT_BAD_Z << 2), 1);
}

// gradTile for rows [jt, je) of a sub-center head: per class and sample, gc = w·p·a at the row of
// its first largest sub-center, 0 at the other K − 1 (the target class all 0: the host's); per
// row, the factor of ŵ_r in ∂loss/∂w_r, −Σ_i gc_ir·c_ir / max(‖w_r‖, ε); per sample, the tile's
// Σ gc·c into the thread's float64 sums.
function gradTileSub(P: usize, tb: usize, jt: i32, je: i32, K: i32): void {
  const Np = slot(P, SLOT_NP), C = slot(P, SLOT_C), unit = <usize> Np << 2;
  const cos = ptr(P, SLOT_COS), labels = ptr(P, SLOT_LABELS), av = ptr(P, SLOT_A);
  const weight = ptr(P, SLOT_WEIGHT), logz = tb + <usize> T_LOGZ * unit;
  const tsumx = tb + <usize> T_TILE_SUMX * unit;
  memory.fill(tsumx, 0, unit);
  for (let j = jt; j < je; j += K) {
    if (j >= C) {
      padRows(P, tb, jt, j, je);
      break;
    }
    const crow = cos + <usize> j * unit, grow = tb + <usize> (T_TILE + j - jt) * unit;
    const cls = i32x4.splat(j / K);
    for (let i = 0; i < Np; i += 4) {
      const off = <usize> i << 2;
      let best = v128.load(crow + off), arg = i32x4.splat(0);
      for (let k = 1; k < K; k++) {
        const c = v128.load(crow + <usize> k * unit + off), above = f32x4.gt(c, best);
        best = v128.bitselect(c, best, above);
        arg = v128.bitselect(i32x4.splat(k), arg, above);
      }
      const a = v128.load(av + off);
      const p = expv(f32x4.sub(f32x4.mul(a, best), v128.load(logz + off)));
      const target = i32x4.eq(v128.load(labels + off), cls);
      const gc = v128.andnot(f32x4.mul(f32x4.mul(v128.load(weight + off), p), a), target);
      v128.store(tsumx + off, fma(gc, best, v128.load(tsumx + off)));
      for (let k = 0; k < K; k++) {
        v128.store(grow + <usize> k * unit + off, v128.and(gc, i32x4.eq(arg, i32x4.splat(k))));
      }
    }
    for (let k = 0; k < K; k++) {
      rowFactor(P, grow + <usize> k * unit, crow + <usize> k * unit, j + k);
    }
  }
  const sumx = tb + <usize> T_SUMX * unit;
  for (let i = 0; i < Np; i += 4) {
    addF64(sumx + (<usize> i << 3), v128.load(tsumx + (<usize> i << 2)));
  }
}

// Row r's factor of ŵ_r in ∂loss/∂w_r (a scale radius): −Σ_i g_i·c_i / max(‖w_r‖, ε) where
// ‖w_r‖ > ε, else 0.
function rowFactor(P: usize, g: usize, c: usize, r: i32): void {
  const Np = slot(P, SLOT_NP), o = <usize> r << 2;
  const nwr = load<f32>(ptr(P, SLOT_NW) + o), icw = load<f32>(ptr(P, SLOT_INVCW) + o);
  let col = splat(0);
  for (let i = 0; i < Np; i += 4) {
    const off = <usize> i << 2;
    col = fma(v128.load(g + off), v128.load(c + off), col);
  }
  store<f32>(ptr(P, SLOT_GB) + o, nwr > NORM_EPS ? -hsum(col) * icw : 0);
}

// The padding rows [j, je) of a tile starting at jt: no gradient.
function padRows(P: usize, tb: usize, jt: i32, j: i32, je: i32): void {
  const unit = <usize> slot(P, SLOT_NP) << 2;
  for (let r = j; r < je; r++) {
    memory.fill(tb + <usize> (T_TILE + r - jt) * unit, 0, unit);
    store<f32>(ptr(P, SLOT_GB) + (<usize> r << 2), 0);
  }
}

// deno-fmt-ignore-file
// (deno fmt drops AssemblyScript's @inline decorators on functions, which the kernels need.)
// The elementwise work of engine-native (AssemblyScript → WebAssembly SIMD), on the same memory that
// the BLAS products read and write: the host (../_tiles.ts) calls one function per class tile after
// or before the tile's cblas_sgemm, with byte offsets into the imported memory. Nothing here knows
// a loss: the host folds the head into per-class factors (colf = b_j/max(‖w_j‖, ε)) and per-row
// factors (F = weight·e^(m − lse)).
// Build: `deno task build:wasm` (engines/wasm/build.ts; deterministic output, committed).
import { EXP, expv } from "../../_assembly/exp";

const NORM_EPS: f32 = 1e-12;
// Stands in for a target's logit in the forward statistics: finite, so max − max is 0.
const MASKED: f32 = -3.4028234663852886e38;

// @ts-ignore: decorator
@inline function splat(v: f32): v128 {
  return f32x4.splat(v);
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) +
    f32x4.extract_lane(v, 3);
}

// @ts-ignore: decorator
@inline function hmin(v: v128): f32 {
  return min(
    min(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)),
    min(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)),
  );
}

// @ts-ignore: decorator
@inline function hmax(v: v128): f32 {
  return max(
    max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)),
    max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)),
  );
}

// A lane mask of the lanes that are NaN or ±∞ (x − x is NaN exactly there).
// @ts-ignore: decorator
@inline function nonFinite(v: v128): v128 {
  return f32x4.ne(f32x4.sub(v, v), splat(0));
}

// A target's logit in every lane, as a vector constant in memory (as EXP in ../../_assembly/exp.ts).
const MASKED4 = memory.data<f32>([MASKED, MASKED, MASKED, MASKED], 16);

// The lane indices 0…3 and 4 in every lane, for the target mask of forwardTile.
const LANES = memory.data<i32>([0, 1, 2, 3, 4, 4, 4, 4], 16);

// @ts-ignore: decorator
@inline function exps(x: f32): f32 {
  return f32x4.extract_lane(expv(splat(x)), 0);
}

/**
 * Row norms of a tile of W (`count` rows, `stride` floats apart, zero-padded to a multiple of 4):
 * nw[j] = ‖w_j‖ and colf[j] = b_j / max(‖w_j‖, ε), with b_j = ‖w_j‖ when `normProduct`, else 1.
 * Returns 1 when a norm is not finite (weights beyond the float32 range).
 */
export function tileNorms(
  w: usize,
  stride: i32,
  count: i32,
  nw: usize,
  colf: usize,
  normProduct: i32,
): i32 {
  const rs = <usize> stride << 2;
  let bad = false;
  for (let j = 0; j < count; j++) {
    const row = w + <usize> j * rs;
    let s0 = splat(0), s1 = splat(0);
    let k = 0;
    for (; k + 8 <= stride; k += 8) {
      const v0 = v128.load(row + (<usize> k << 2)), v1 = v128.load(row + (<usize> k << 2), 16);
      s0 = f32x4.add(f32x4.mul(v0, v0), s0);
      s1 = f32x4.add(f32x4.mul(v1, v1), s1);
    }
    if (k < stride) {
      const v0 = v128.load(row + (<usize> k << 2));
      s0 = f32x4.add(f32x4.mul(v0, v0), s0);
    }
    const n = Mathf.sqrt(hsum(f32x4.add(s0, s1)));
    if (!(n < Infinity)) bad = true;
    const inv: f32 = 1 / max(n, NORM_EPS);
    store<f32>(nw + (<usize> j << 2), n);
    store<f32>(colf + (<usize> j << 2), normProduct ? n * inv : inv);
  }
  return bad ? 1 : 0;
}

// Set by the row helpers of forwardTile when a logit is not finite.
let badLogit = false;

// Pass 1 over one row: z = s·colf (+ bias) clamped to [lo, hi] in place, the target column (y)
// replaced by MASKED; returns the row max. pmax/pmin are one instruction each (a NaN stays NaN,
// ±∞ bounds change nothing); a NaN or ±∞ logit shows in the row's max, min or sum, so no
// per-element test is needed.
// @ts-ignore: decorator
@inline function scaleRow(
  row: usize,
  width: i32,
  colf: usize,
  bias: usize,
  withBias: i32,
  y: i32,
  lo: f32,
  hi: f32,
  ratio: f32,
): f32 {
  const w4 = width & ~3, yv = i32x4.splat(y), lov = splat(lo), hiv = splat(hi), rv = splat(ratio);
  const lanes = v128.load(LANES), four = v128.load(LANES, 16), masked = v128.load(MASKED4);
  let m0 = masked, m1 = masked, n0 = splat(0), n1 = splat(0);
  let j = 0;
  for (; j + 8 <= w4; j += 8) {
    const o = row + (<usize> j << 2), c = colf + (<usize> j << 2);
    let z0 = f32x4.mul(f32x4.mul(v128.load(o), v128.load(c)), rv);
    let z1 = f32x4.mul(f32x4.mul(v128.load(o, 16), v128.load(c, 16)), rv);
    if (withBias) {
      z0 = f32x4.add(z0, v128.load(bias + (<usize> j << 2)));
      z1 = f32x4.add(z1, v128.load(bias + (<usize> j << 2), 16));
    }
    z0 = f32x4.pmin(f32x4.pmax(z0, lov), hiv);
    z1 = f32x4.pmin(f32x4.pmax(z1, lov), hiv);
    n0 = f32x4.pmin(n0, z0);
    n1 = f32x4.pmin(n1, z1);
    const jv = i32x4.add(lanes, i32x4.splat(j));
    z0 = v128.bitselect(masked, z0, i32x4.eq(jv, yv));
    z1 = v128.bitselect(masked, z1, i32x4.eq(i32x4.add(jv, four), yv));
    v128.store(o, z0);
    v128.store(o, z1, 16);
    m0 = f32x4.pmax(m0, z0);
    m1 = f32x4.pmax(m1, z1);
  }
  for (; j < w4; j += 4) {
    const o = row + (<usize> j << 2);
    let z = f32x4.mul(f32x4.mul(v128.load(o), v128.load(colf + (<usize> j << 2))), rv);
    if (withBias) z = f32x4.add(z, v128.load(bias + (<usize> j << 2)));
    z = f32x4.pmin(f32x4.pmax(z, lov), hiv);
    n0 = f32x4.pmin(n0, z);
    z = v128.bitselect(masked, z, i32x4.eq(i32x4.add(lanes, i32x4.splat(j)), yv));
    v128.store(o, z);
    m0 = f32x4.pmax(m0, z);
  }
  let mx = hmax(f32x4.pmax(m0, m1)), mn = hmin(f32x4.pmin(n0, n1));
  for (; j < width; j++) {
    const o = row + (<usize> j << 2);
    let z = load<f32>(o) * load<f32>(colf + (<usize> j << 2)) * ratio;
    if (withBias) z += load<f32>(bias + (<usize> j << 2));
    if (z < lo) z = lo;
    if (z > hi) z = hi;
    if (!(z - z == 0)) badLogit = true;
    mn = min(mn, z);
    if (j == y) z = MASKED;
    store<f32>(o, z);
    mx = max(mx, z);
  }
  if (!(mx < Infinity) || !(mn > -Infinity)) badLogit = true;
  return mx;
}

// Pass 2 over one row: e = exp(z − mx), and in place e where z lies inside (lo, hi), 0 where pass 1
// clamped it (its ∂/∂z for the backward: the clamp has slope 0); returns Σ e over the
// non-targets, the target's stored e set to 0. (The target's MASKED counts as clamped when lo is
// finite: its e, exp(−87) ≈ 1.6e-38 next to a sum ≥ 1, stays in the sum either way.)
// @ts-ignore: decorator
@inline function expRow(row: usize, width: i32, y: i32, mx: f32, lo: f32, hi: f32): f32 {
  const w4 = width & ~3, mv = splat(mx), lov = splat(lo), hiv = splat(hi);
  let s0 = splat(0), s1 = splat(0);
  let j = 0;
  for (; j + 8 <= w4; j += 8) {
    const o = row + (<usize> j << 2), z0 = v128.load(o), z1 = v128.load(o, 16);
    const e0 = expv(f32x4.sub(z0, mv));
    const e1 = expv(f32x4.sub(z1, mv));
    v128.store(o, v128.andnot(e0, v128.or(f32x4.le(z0, lov), f32x4.ge(z0, hiv))));
    v128.store(o, v128.andnot(e1, v128.or(f32x4.le(z1, lov), f32x4.ge(z1, hiv))), 16);
    s0 = f32x4.add(s0, e0);
    s1 = f32x4.add(s1, e1);
  }
  for (; j < w4; j += 4) {
    const o = row + (<usize> j << 2), z = v128.load(o);
    const e = expv(f32x4.sub(z, mv));
    v128.store(o, v128.andnot(e, v128.or(f32x4.le(z, lov), f32x4.ge(z, hiv))));
    s0 = f32x4.add(s0, e);
  }
  let total = hsum(f32x4.add(s0, s1));
  for (; j < width; j++) {
    const o = row + (<usize> j << 2), z = load<f32>(o);
    const e = exps(z - mx);
    store<f32>(o, z <= lo || z >= hi ? 0 : e);
    total += e;
  }
  if (y >= 0 && y < width) {
    const o = row + (<usize> y << 2);
    total -= load<f32>(o);
    store<f32>(o, 0);
  }
  if (mx == MASKED) total = 0; // the tile holds this row's target only
  if (!(total - total == 0)) badLogit = true; // a NaN logit
  return max(total, 0);
}

// CurricularFace's hard negatives of one row (`hard` ≠ 0 in forwardTile: t at hard, 1/s at
// hard + 4, the row's threshold at thr): a non-target with c = z/s > thr has logit z·(t + c) and
// slope t + 2c. Pass 1 stores the plain z = s·colf·S (target MASKED) and returns the max of the
// changed logits; pass 2 recomputes them from z, stores e·slope (the backward's ∂/∂z times
// ∂z/∂(s·c)) and returns Σ e over the non-targets.
// @ts-ignore: decorator
@inline function hardRow(
  row: usize,
  width: i32,
  colf: usize,
  y: i32,
  hard: usize,
  thr: f32,
  mx: f32,
  pass: i32,
): f32 {
  const t = load<f32>(hard), invs = load<f32>(hard, 4);
  const tv = splat(t), iv = splat(invs), thrv = splat(thr), one = v128.load(EXP, 192);
  const lanes = v128.load(LANES), yv = i32x4.splat(y), masked = v128.load(MASKED4);
  const w4 = width & ~3, mv = splat(mx);
  let acc = pass == 1 ? masked : splat(0), low = splat(0);
  let j = 0;
  for (; j < w4; j += 4) {
    const o = row + (<usize> j << 2);
    let z = v128.load(o);
    if (pass == 1) {
      z = f32x4.mul(z, v128.load(colf + (<usize> j << 2)));
      low = f32x4.pmin(low, z);
      z = v128.bitselect(masked, z, i32x4.eq(i32x4.add(lanes, i32x4.splat(j)), yv));
      v128.store(o, z);
    }
    const c = f32x4.mul(z, iv), isHard = f32x4.gt(c, thrv);
    const zh = v128.bitselect(f32x4.mul(z, f32x4.add(tv, c)), z, isHard);
    if (pass == 1) {
      acc = f32x4.pmax(acc, zh);
    } else {
      const e = expv(f32x4.sub(zh, mv));
      v128.store(o, f32x4.mul(e, v128.bitselect(f32x4.add(tv, f32x4.add(c, c)), one, isHard)));
      acc = f32x4.add(acc, e);
    }
  }
  let out = pass == 1 ? hmax(acc) : hsum(acc), mn = hmin(low);
  for (; j < width; j++) {
    const o = row + (<usize> j << 2);
    let z = load<f32>(o);
    if (pass == 1) {
      z *= load<f32>(colf + (<usize> j << 2));
      mn = min(mn, z);
      if (j == y) z = MASKED;
      store<f32>(o, z);
    }
    const c = z * invs, isHard = c > thr, zh = isHard ? z * (t + c) : z;
    if (pass == 1) {
      out = max(out, zh);
    } else {
      const e = exps(zh - mx);
      store<f32>(o, isHard ? e * (t + c + c) : e);
      out += e;
    }
  }
  if (pass == 1) {
    if (!(out < Infinity) || !(mn > -Infinity) || !(out - out == 0)) badLogit = true;
    return out;
  }
  if (y >= 0 && y < width) {
    const o = row + (<usize> y << 2);
    out -= load<f32>(o); // the target's stored e (slope 1: MASKED is never above thr)
    store<f32>(o, 0);
  }
  if (mx == MASKED) out = 0; // the tile holds this row's target only
  if (!(out - out == 0)) badLogit = true;
  return max(out, 0);
}

// One row's statistics without writing it (forwardTile's phase 4): pass 1's max of z = s·colf over the
// non-targets, pass 2's Σ exp(z − max), in the order and with the rounding of scaleRow and expRow
// for a row without bias or clamp, so the losses are a full run's bit for bit.
// @ts-ignore: decorator
@inline function statsRow(row: usize, width: i32, colf: usize, y: i32, mp: usize, sp: usize): void {
  const w4 = width & ~3, yv = i32x4.splat(y), lanes = v128.load(LANES), masked = v128.load(MASKED4);
  let m0 = masked, n0 = splat(0), j = 0;
  for (; j < w4; j += 4) {
    const z = f32x4.mul(v128.load(row + (<usize> j << 2)), v128.load(colf + (<usize> j << 2)));
    n0 = f32x4.pmin(n0, z);
    m0 = f32x4.pmax(m0, v128.bitselect(masked, z, i32x4.eq(i32x4.add(lanes, i32x4.splat(j)), yv)));
  }
  let mx = hmax(m0), mn = hmin(n0);
  for (let k = j; k < width; k++) {
    const z = load<f32>(row + (<usize> k << 2)) * load<f32>(colf + (<usize> k << 2));
    if (!(z - z == 0)) badLogit = true;
    mn = min(mn, z);
    mx = max(mx, k == y ? MASKED : z);
  }
  if (!(mx < Infinity) || !(mn > -Infinity)) badLogit = true;
  const mv = splat(mx);
  let s0 = splat(0), s1 = splat(0);
  j = 0;
  for (; j + 8 <= w4; j += 8) {
    const o = row + (<usize> j << 2), c = colf + (<usize> j << 2);
    const jv = i32x4.add(lanes, i32x4.splat(j));
    const z0 = v128.bitselect(masked, f32x4.mul(v128.load(o), v128.load(c)), i32x4.eq(jv, yv));
    const z1 = v128.bitselect(
      masked,
      f32x4.mul(v128.load(o, 16), v128.load(c, 16)),
      i32x4.eq(i32x4.add(jv, v128.load(LANES, 16)), yv),
    );
    s0 = f32x4.add(s0, expv(f32x4.sub(z0, mv)));
    s1 = f32x4.add(s1, expv(f32x4.sub(z1, mv)));
  }
  for (; j < w4; j += 4) {
    const z = v128.bitselect(
      masked,
      f32x4.mul(v128.load(row + (<usize> j << 2)), v128.load(colf + (<usize> j << 2))),
      i32x4.eq(i32x4.add(lanes, i32x4.splat(j)), yv),
    );
    s0 = f32x4.add(s0, expv(f32x4.sub(z, mv)));
  }
  let total = hsum(f32x4.add(s0, s1));
  for (; j < width; j++) {
    const z = j == y ? MASKED : load<f32>(row + (<usize> j << 2)) * load<f32>(colf + (<usize> j << 2));
    total += exps(z - mx);
  }
  if (y >= 0 && y < width) total -= exps(MASKED - mx);
  if (mx == MASKED) total = 0; // the tile holds this row's target only
  if (!(total - total == 0)) badLogit = true;
  store<f32>(mp, mx);
  store<f32>(sp, max(total, 0));
}

/**
 * The forward epilogue of one tile: `rows` rows of `width` products, `ld` floats apart, in place.
 * `phase` bit 1: z = s·colf_j·ratio (+ bias_j) clamped to [lo, hi] (`ratio`: 1, or the run's scale
 * over the scale the products were made at, for a run on a forward-only run's products; the host
 * passes a·[c_lo, c_hi] for
 * a cosine clamp, −∞ and +∞ for none), each row's target column (labels[i] − j0, when inside the
 * tile) replaced by MASKED, the row max into m[i]; bit 2: e = exp(z − m[i]), its row sum over the
 * non-targets into sum[i], and in place e, or 0 where the clamp bound (so the backward's H is 0
 * there), the target's set to 0; bit 4 alone: the max and the sum of a plain row (no bias, clamp or
 * hard negatives) without writing it (statsRow: a forward-only run that keeps its products for the
 * run after it). `hard` ≠ 0: CurricularFace's hard negatives instead of the clamp
 * (t, 1/s, then one threshold per row, f32; see hardRow). Returns 1 when a logit is not finite.
 */
export function forwardTile(
  s: usize,
  ld: i32,
  rows: i32,
  width: i32,
  colf: usize,
  bias: usize,
  withBias: i32,
  labels: usize,
  j0: i32,
  m: usize,
  sum: usize,
  phase: i32,
  lo: f32,
  hi: f32,
  hard: usize,
  ratio: f32,
): i32 {
  badLogit = false;
  for (let i = 0; i < rows; i++) {
    const row = s + ((<usize> i * <usize> ld) << 2);
    const y = load<i32>(labels + (<usize> i << 2)) - j0;
    const mp = m + (<usize> i << 2), sp = sum + (<usize> i << 2);
    if (phase & 4) {
      statsRow(row, width, colf, y, mp, sp);
      continue;
    }
    if (hard) {
      const thr = load<f32>(hard + 8 + (<usize> i << 2));
      if (phase & 1) store<f32>(mp, hardRow(row, width, colf, y, hard, thr, 0, 1));
      if (phase & 2) store<f32>(sp, hardRow(row, width, colf, y, hard, thr, load<f32>(mp), 2));
      continue;
    }
    if (phase & 1) store<f32>(mp, scaleRow(row, width, colf, bias, withBias, y, lo, hi, ratio));
    if (phase & 2) store<f32>(sp, expRow(row, width, y, load<f32>(mp), lo, hi));
  }
  return badLogit ? 1 : 0;
}

/**
 * The backward epilogue of one tile: H_ij = e_ij·F_i·colf_j into `h` (the gradient with respect
 * to the products, targets already 0; `h` may be `s`), and when `gb` is not 0, its column sums
 * into gb (the bias gradient of a linear head, where colf = 1).
 */
export function backwardTile(
  s: usize,
  h: usize,
  ld: i32,
  rows: i32,
  width: i32,
  colf: usize,
  f: usize,
  gb: usize,
): void {
  const w4 = width & ~3;
  if (gb) memory.fill(gb, 0, <usize> width << 2);
  for (let i = 0; i < rows; i++) {
    const off = (<usize> i * <usize> ld) << 2;
    const row = s + off, out = h + off;
    const fi = load<f32>(f + (<usize> i << 2));
    const fv = splat(fi);
    let j = 0;
    for (; j + 8 <= w4; j += 8) {
      const o = <usize> j << 2, c = colf + o;
      const h0 = f32x4.mul(f32x4.mul(v128.load(row + o), fv), v128.load(c));
      const h1 = f32x4.mul(f32x4.mul(v128.load(row + o, 16), fv), v128.load(c, 16));
      v128.store(out + o, h0);
      v128.store(out + o, h1, 16);
      if (gb) {
        const g = gb + o;
        v128.store(g, f32x4.add(v128.load(g), h0));
        v128.store(g, f32x4.add(v128.load(g, 16), h1), 16);
      }
    }
    for (; j < w4; j += 4) {
      const o = <usize> j << 2;
      const v = f32x4.mul(f32x4.mul(v128.load(row + o), fv), v128.load(colf + o));
      v128.store(out + o, v);
      if (gb) v128.store(gb + o, f32x4.add(v128.load(gb + o), v));
    }
    for (; j < width; j++) {
      const o = <usize> j << 2;
      const v = load<f32>(row + o) * fi * load<f32>(colf + o);
      store<f32>(out + o, v);
      if (gb) store<f32>(gb + o, load<f32>(gb + o) + v);
    }
  }
}

/**
 * The normalisation backward of a tile's weight gradient, in place: the product gives
 * GW_j = Σ_i H_ij·x̃_i; with σ_j = GW_j·w_j (= Σ_i ∂loss/∂c_ij·c_ij), GW_j += κ_j·w_j where
 * κ_j = −σ_j/‖w_j‖² (mode 1: the norm of ŵ_j = w_j/‖w_j‖), σ_j/‖w_j‖² only where 0 < ‖w_j‖ ≤ ε
 * (mode 2, ‖w_j‖ also the radius: the two terms cancel above ε), nothing (mode 0, a linear head).
 * Rows are `stride` floats apart, zero-padded to a multiple of 4. Returns 1 when a gradient is not
 * finite.
 */
export function fixupTile(
  gw: usize,
  w: usize,
  stride: i32,
  count: i32,
  nw: usize,
  mode: i32,
): i32 {
  const rs = <usize> stride << 2;
  let bad = splat(0);
  for (let j = 0; j < count; j++) {
    const g = gw + <usize> j * rs, r = w + <usize> j * rs;
    if (mode != 0) {
      const n = load<f32>(nw + (<usize> j << 2));
      let s0 = splat(0), s1 = splat(0);
      let k = 0;
      for (; k + 8 <= stride; k += 8) {
        const o = <usize> k << 2;
        s0 = f32x4.add(s0, f32x4.mul(v128.load(g + o), v128.load(r + o)));
        s1 = f32x4.add(s1, f32x4.mul(v128.load(g + o, 16), v128.load(r + o, 16)));
      }
      if (k < stride) {
        const o = <usize> k << 2;
        s0 = f32x4.add(s0, f32x4.mul(v128.load(g + o), v128.load(r + o)));
      }
      const sigma = hsum(f32x4.add(s0, s1));
      // κ_j·w_j as (σ_j/‖w_j‖)·(w_j/‖w_j‖): σ/‖w‖² itself falls into float32's subnormals, and
      // loses its digits, where ‖w_j‖ is large and the gradient small (‖w‖ = 6e11: 1e-3 off).
      let kappa: f32 = 0;
      if (mode == 1) {
        if (n > NORM_EPS) kappa = -sigma / n;
      } else if (n > 0 && n <= NORM_EPS) {
        kappa = sigma / n;
      }
      if (kappa != 0) {
        const kv = splat(kappa), iv = splat(1 / n);
        for (let k = 0; k < stride; k += 4) {
          const o = <usize> k << 2;
          const v = f32x4.add(
            v128.load(g + o),
            f32x4.mul(kv, f32x4.mul(v128.load(r + o), iv)),
          );
          v128.store(g + o, v);
          bad = v128.or(bad, nonFinite(v));
        }
        continue;
      }
    }
    for (let k = 0; k < stride; k += 4) {
      bad = v128.or(bad, nonFinite(v128.load(g + (<usize> k << 2))));
    }
  }
  return v128.any_true(bad) ? 1 : 0;
}

/**
 * forwardTile for sub-center ArcFace (no bias, no clamp): the tile's `width` rows of W form
 * width/K classes of K sub-centers (row g·K + k is sub-center k of the tile's class g, class
 * c0 + g overall). Bit 1: per class, z = max_k s·colf (the first of equal ones) at its arg-max
 * sub-center's column and MASKED at the other K − 1 (all K for the row's target class, labels[i]),
 * the row max into m[i]; bit 2: e = exp(z − m[i]) in place where z is not MASKED, 0 where it is,
 * their sum into sum[i]. The backward's H is then e·F·colf at the arg-max sub-centers only, as
 * backwardTile computes it. Returns 1 when a logit is not finite.
 */
export function forwardTileSub(
  s: usize,
  ld: i32,
  rows: i32,
  width: i32,
  colf: usize,
  labels: usize,
  c0: i32,
  K: i32,
  m: usize,
  sum: usize,
  phase: i32,
): i32 {
  badLogit = false;
  for (let i = 0; i < rows; i++) {
    const row = s + ((<usize> i * <usize> ld) << 2);
    const y = load<i32>(labels + (<usize> i << 2)) - c0;
    const mp = m + (<usize> i << 2);
    if (phase & 1) store<f32>(mp, groupRow(row, width, colf, K, y));
    if (phase & 2) store<f32>(sum + (<usize> i << 2), expGroupRow(row, width, load<f32>(mp)));
  }
  return badLogit ? 1 : 0;
}

// Pass 1 of forwardTileSub over one row; returns the row max over the non-target classes.
// @ts-ignore: decorator
@inline function groupRow(row: usize, width: i32, colf: usize, K: i32, y: i32): f32 {
  let mx = MASKED;
  for (let j = 0, g = 0; j < width; j += K, g++) {
    let best: f32 = 0, arg = j;
    for (let k = 0; k < K; k++) {
      const o = <usize> (j + k) << 2, z = load<f32>(row + o) * load<f32>(colf + o);
      if (!(z - z == 0)) badLogit = true;
      if (k == 0 || z > best) {
        best = z;
        arg = j + k;
      }
      store<f32>(row + o, MASKED);
    }
    if (g == y) continue;
    store<f32>(row + (<usize> arg << 2), best);
    mx = max(mx, best);
  }
  return mx;
}

// Pass 2 of forwardTileSub over one row: e = exp(z − mx) where z is not MASKED, else 0, in place;
// returns Σ e.
// @ts-ignore: decorator
@inline function expGroupRow(row: usize, width: i32, mx: f32): f32 {
  if (mx == MASKED) {
    memory.fill(row, 0, <usize> width << 2); // the tile holds this row's target class only
    return 0;
  }
  const w4 = width & ~3, mv = splat(mx), masked = v128.load(MASKED4);
  let s0 = splat(0);
  let j = 0;
  for (; j < w4; j += 4) {
    const o = row + (<usize> j << 2), z = v128.load(o);
    const e = v128.andnot(expv(f32x4.sub(z, mv)), f32x4.eq(z, masked));
    v128.store(o, e);
    s0 = f32x4.add(s0, e);
  }
  let total = hsum(s0);
  for (; j < width; j++) {
    const o = row + (<usize> j << 2), z = load<f32>(o);
    const e: f32 = z == MASKED ? 0 : exps(z - mx);
    store<f32>(o, e);
    total += e;
  }
  if (!(total - total == 0)) badLogit = true;
  return total;
}

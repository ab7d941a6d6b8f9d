// The fused margin-softmax kernels (AssemblyScript → WebAssembly SIMD). Every thread runs them on
// the class tiles it takes; the host (../_engine.ts, which describes the algorithm) prepares the
// inputs, synchronises the passes and finishes the per-sample work in float64.
// Build: `deno task build:wasm` (engines/wasm/build.ts).
import {
  SLOT_A,
  SLOT_ANGULAR,
  SLOT_BAD,
  SLOT_BIAS,
  SLOT_C,
  SLOT_COS,
  SLOT_CP,
  SLOT_DP,
  SLOT_GB,
  SLOT_GW,
  SLOT_INVCW,
  SLOT_LABELS,
  SLOT_NEXT_BACKWARD,
  SLOT_NEXT_FORWARD,
  SLOT_NP,
  SLOT_NW,
  SLOT_RADIUS,
  SLOT_STATS,
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
} from "./layout";

const NORM_EPS: f32 = 1e-12;
// Stands in for the logit of a target in the forward statistics: finite, so max − max is 0.
const MASKED: f32 = -3.4028234663852886e38;

// a·b + c: one fused instruction where relaxed SIMD is enabled, else a multiply and an add.
// @ts-ignore: decorator
function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// @ts-ignore: decorator
function splat(v: f32): v128 {
  return f32x4.splat(v);
}

// @ts-ignore: decorator
function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) +
    f32x4.extract_lane(v, 3);
}

// @ts-ignore: decorator
function slot(P: usize, k: i32): i32 {
  return load<i32>(P + (<usize> k << 2));
}

// @ts-ignore: decorator
function ptr(P: usize, k: i32): usize {
  return <usize> load<i32>(P + (<usize> k << 2));
}

// exp of four floats (Cephes expf: Cody–Waite reduction, degree-6 polynomial, ≈1 ulp). Inputs are
// clamped to [−87, 88] so 2^n stays a normal float; exp(−87) ≈ 1.6e-38 stands in for 0.
// @ts-ignore: decorator
function expv(x: v128): v128 {
  x = f32x4.min(f32x4.max(x, splat(-87.0)), splat(88.0));
  const n = f32x4.nearest(f32x4.mul(x, splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, splat(0.693359375)));
  r = f32x4.add(r, f32x4.mul(n, splat(2.12194440e-4)));
  let p = splat(1.9875691500e-4);
  p = fma(p, r, splat(1.3981999507e-3));
  p = fma(p, r, splat(8.3334519073e-3));
  p = fma(p, r, splat(4.1665795894e-2));
  p = fma(p, r, splat(1.6666665459e-1));
  p = fma(p, r, splat(5.0000001201e-1));
  p = fma(p, f32x4.mul(r, r), f32x4.add(r, splat(1)));
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, e);
}

// Cosine microkernel: out[r][0..8] = (Σ_k w[r][k]·x[k][0..8])·invcw[r] + bias[r] for 4 classes r
// and 8 samples, x packed k-major (8 floats per k). Dp is a multiple of 8.
function cosKernel(
  w: usize,
  Dp: i32,
  x: usize,
  out: usize,
  Np: i32,
  invcw: usize,
  bias: usize,
): void {
  const rs = <usize> Dp << 2;
  let p0 = w, p1 = w + rs, p2 = w + 2 * rs, p3 = w + 3 * rs;
  const end = w + rs;
  let a00 = splat(0), a01 = splat(0), a10 = splat(0), a11 = splat(0);
  let a20 = splat(0), a21 = splat(0), a30 = splat(0), a31 = splat(0);
  let px = x;
  while (p0 < end) {
    let x0 = v128.load(px), x1 = v128.load(px, 16);
    let s = v128.load32_splat(p0);
    a00 = fma(s, x0, a00);
    a01 = fma(s, x1, a01);
    s = v128.load32_splat(p1);
    a10 = fma(s, x0, a10);
    a11 = fma(s, x1, a11);
    s = v128.load32_splat(p2);
    a20 = fma(s, x0, a20);
    a21 = fma(s, x1, a21);
    s = v128.load32_splat(p3);
    a30 = fma(s, x0, a30);
    a31 = fma(s, x1, a31);
    x0 = v128.load(px, 32);
    x1 = v128.load(px, 48);
    s = v128.load32_splat(p0, 4);
    a00 = fma(s, x0, a00);
    a01 = fma(s, x1, a01);
    s = v128.load32_splat(p1, 4);
    a10 = fma(s, x0, a10);
    a11 = fma(s, x1, a11);
    s = v128.load32_splat(p2, 4);
    a20 = fma(s, x0, a20);
    a21 = fma(s, x1, a21);
    s = v128.load32_splat(p3, 4);
    a30 = fma(s, x0, a30);
    a31 = fma(s, x1, a31);
    p0 += 8;
    p1 += 8;
    p2 += 8;
    p3 += 8;
    px += 64;
  }
  const os = <usize> Np << 2;
  let sc = v128.load32_splat(invcw), b = v128.load32_splat(bias);
  v128.store(out, fma(a00, sc, b));
  v128.store(out, fma(a01, sc, b), 16);
  sc = v128.load32_splat(invcw, 4);
  b = v128.load32_splat(bias, 4);
  v128.store(out + os, fma(a10, sc, b));
  v128.store(out + os, fma(a11, sc, b), 16);
  sc = v128.load32_splat(invcw, 8);
  b = v128.load32_splat(bias, 8);
  v128.store(out + 2 * os, fma(a20, sc, b));
  v128.store(out + 2 * os, fma(a21, sc, b), 16);
  sc = v128.load32_splat(invcw, 12);
  b = v128.load32_splat(bias, 12);
  v128.store(out + 3 * os, fma(a30, sc, b));
  v128.store(out + 3 * os, fma(a31, sc, b), 16);
}

// Weight-gradient microkernel: for 4 classes r and 8 features, out[r] = Σ_i g[r][i]·x[i][0..8]
// (+ fac[r]·w[r] when withNorm), g rows Np apart, x packed (8 floats per i), w and out rows Dp
// apart. Returns a non-finite flag.
function gradWKernel(
  g: usize,
  Np: i32,
  x: usize,
  Dp: i32,
  out: usize,
  w: usize,
  fac: usize,
  withNorm: bool,
): v128 {
  const gs = <usize> Np << 2, xs = <usize> Dp << 2;
  let p0 = g, p1 = g + gs, p2 = g + 2 * gs, p3 = g + 3 * gs;
  const end = g + gs;
  let a00 = splat(0), a01 = splat(0), a10 = splat(0), a11 = splat(0);
  let a20 = splat(0), a21 = splat(0), a30 = splat(0), a31 = splat(0);
  let px = x;
  while (p0 < end) {
    let x0 = v128.load(px), x1 = v128.load(px, 16);
    let s = v128.load32_splat(p0);
    a00 = fma(s, x0, a00);
    a01 = fma(s, x1, a01);
    s = v128.load32_splat(p1);
    a10 = fma(s, x0, a10);
    a11 = fma(s, x1, a11);
    s = v128.load32_splat(p2);
    a20 = fma(s, x0, a20);
    a21 = fma(s, x1, a21);
    s = v128.load32_splat(p3);
    a30 = fma(s, x0, a30);
    a31 = fma(s, x1, a31);
    x0 = v128.load(px, 32);
    x1 = v128.load(px, 48);
    s = v128.load32_splat(p0, 4);
    a00 = fma(s, x0, a00);
    a01 = fma(s, x1, a01);
    s = v128.load32_splat(p1, 4);
    a10 = fma(s, x0, a10);
    a11 = fma(s, x1, a11);
    s = v128.load32_splat(p2, 4);
    a20 = fma(s, x0, a20);
    a21 = fma(s, x1, a21);
    s = v128.load32_splat(p3, 4);
    a30 = fma(s, x0, a30);
    a31 = fma(s, x1, a31);
    p0 += 8;
    p1 += 8;
    p2 += 8;
    p3 += 8;
    px += 64;
  }
  if (withNorm) {
    let f = v128.load32_splat(fac);
    a00 = fma(v128.load(w), f, a00);
    a01 = fma(v128.load(w, 16), f, a01);
    f = v128.load32_splat(fac, 4);
    a10 = fma(v128.load(w + xs), f, a10);
    a11 = fma(v128.load(w + xs, 16), f, a11);
    f = v128.load32_splat(fac, 8);
    a20 = fma(v128.load(w + 2 * xs), f, a20);
    a21 = fma(v128.load(w + 2 * xs, 16), f, a21);
    f = v128.load32_splat(fac, 12);
    a30 = fma(v128.load(w + 3 * xs), f, a30);
    a31 = fma(v128.load(w + 3 * xs, 16), f, a31);
  }
  v128.store(out, a00);
  v128.store(out, a01, 16);
  v128.store(out + xs, a10);
  v128.store(out + xs, a11, 16);
  v128.store(out + 2 * xs, a20);
  v128.store(out + 2 * xs, a21, 16);
  v128.store(out + 3 * xs, a30);
  v128.store(out + 3 * xs, a31, 16);
  // x − x is NaN exactly where x is NaN or ±∞.
  const zero = splat(0);
  let bad = v128.or(f32x4.ne(f32x4.sub(a00, a00), zero), f32x4.ne(f32x4.sub(a01, a01), zero));
  bad = v128.or(bad, f32x4.ne(f32x4.sub(a10, a10), zero));
  bad = v128.or(bad, f32x4.ne(f32x4.sub(a11, a11), zero));
  bad = v128.or(bad, f32x4.ne(f32x4.sub(a20, a20), zero));
  bad = v128.or(bad, f32x4.ne(f32x4.sub(a21, a21), zero));
  bad = v128.or(bad, f32x4.ne(f32x4.sub(a30, a30), zero));
  return v128.or(bad, f32x4.ne(f32x4.sub(a31, a31), zero));
}

// Feature-gradient microkernel: for 4 samples r and 8 features, out[r] += Σ_j g[j][r]·w[j][0..8]
// over `count` classes; g rows Np apart, w packed (8 floats per j), out rows Dp apart.
function gradXKernel(g: usize, Np: i32, w: usize, Dp: i32, count: i32, out: usize): void {
  const gs = <usize> Np << 2, ws = <usize> Dp << 2;
  let a00 = splat(0), a01 = splat(0), a10 = splat(0), a11 = splat(0);
  let a20 = splat(0), a21 = splat(0), a30 = splat(0), a31 = splat(0);
  // count is a multiple of 4: two classes per iteration.
  let pg = g, pg2 = g + gs, pw = w;
  const end = g + <usize> count * gs, gs2 = gs << 1;
  while (pg < end) {
    let w0 = v128.load(pw), w1 = v128.load(pw, 16);
    let s = v128.load32_splat(pg);
    a00 = fma(s, w0, a00);
    a01 = fma(s, w1, a01);
    s = v128.load32_splat(pg, 4);
    a10 = fma(s, w0, a10);
    a11 = fma(s, w1, a11);
    s = v128.load32_splat(pg, 8);
    a20 = fma(s, w0, a20);
    a21 = fma(s, w1, a21);
    s = v128.load32_splat(pg, 12);
    a30 = fma(s, w0, a30);
    a31 = fma(s, w1, a31);
    w0 = v128.load(pw, 32);
    w1 = v128.load(pw, 48);
    s = v128.load32_splat(pg2);
    a00 = fma(s, w0, a00);
    a01 = fma(s, w1, a01);
    s = v128.load32_splat(pg2, 4);
    a10 = fma(s, w0, a10);
    a11 = fma(s, w1, a11);
    s = v128.load32_splat(pg2, 8);
    a20 = fma(s, w0, a20);
    a21 = fma(s, w1, a21);
    s = v128.load32_splat(pg2, 12);
    a30 = fma(s, w0, a30);
    a31 = fma(s, w1, a31);
    pg += gs2;
    pg2 += gs2;
    pw += 64;
  }
  v128.store(out, f32x4.add(v128.load(out), a00));
  v128.store(out, f32x4.add(v128.load(out, 16), a01), 16);
  v128.store(out + ws, f32x4.add(v128.load(out + ws), a10));
  v128.store(out + ws, f32x4.add(v128.load(out + ws, 16), a11), 16);
  v128.store(out + 2 * ws, f32x4.add(v128.load(out + 2 * ws), a20));
  v128.store(out + 2 * ws, f32x4.add(v128.load(out + 2 * ws, 16), a21), 16);
  v128.store(out + 3 * ws, f32x4.add(v128.load(out + 3 * ws), a30));
  v128.store(out + 3 * ws, f32x4.add(v128.load(out + 3 * ws, 16), a31), 16);
}

function threadBase(P: usize, tid: i32): usize {
  return ptr(P, SLOT_THREAD_BASE) + <usize> tid * ptr(P, SLOT_THREAD_BYTES);
}

// f32x4 lanes 2, 3 moved to 0, 1, for promotion to f64x2.
// @ts-ignore: decorator
function high(v: v128): v128 {
  return v128.shuffle<f32>(v, v, 2, 3, 0, 1);
}

/**
 * Forward pass of thread `tid` over the class tiles it takes: row norms of W (angular), the cosine tiles into
 * the class-major buffer, the target values patched in, and each sample's running max and sum of
 * exp(z − max) over the thread's classes.
 */
export function forward(P: usize, tid: i32): void {
  const Np = slot(P, SLOT_NP), Dp = slot(P, SLOT_DP), C = slot(P, SLOT_C);
  const angular = slot(P, SLOT_ANGULAR) != 0, normProduct = angular && slot(P, SLOT_RADIUS) == 2;
  const tile = slot(P, SLOT_TILE);
  const Cp = slot(P, SLOT_CP), next = P + (<usize> SLOT_NEXT_FORWARD << 2);
  const xpack = ptr(P, SLOT_XPACK), w = ptr(P, SLOT_W), cos = ptr(P, SLOT_COS);
  const labels = ptr(P, SLOT_LABELS), av = ptr(P, SLOT_A);
  const bias = ptr(P, SLOT_BIAS), nw = ptr(P, SLOT_NW), invcw = ptr(P, SLOT_INVCW);
  const unit = <usize> Np << 2, tb = threadBase(P, tid);
  const tmax = tb + <usize> T_MAX * unit, tsum = tb + <usize> T_SUM * unit;
  const rs = <usize> Dp << 2;
  for (let i = 0; i < Np; i++) {
    store<f32>(tmax + (<usize> i << 2), -Infinity);
    store<f64>(tsum + (<usize> i << 3), 0);
  }
  // Threads take class tiles from a shared counter, so a busy core holds no one up.
  for (let jt = atomic.add<i32>(next, 1) * tile; jt < Cp; jt = atomic.add<i32>(next, 1) * tile) {
    const je = min(jt + tile, Cp);
    if (angular) {
      for (let j = jt; j < je; j++) {
        const row = w + <usize> j * rs;
        let s0 = splat(0), s1 = splat(0);
        for (let k = 0; k < Dp; k += 8) {
          const v0 = v128.load(row + (<usize> k << 2)), v1 = v128.load(row + (<usize> k << 2), 16);
          s0 = fma(v0, v0, s0);
          s1 = fma(v1, v1, s1);
        }
        const n = Mathf.sqrt(hsum(f32x4.add(s0, s1)));
        store<f32>(nw + (<usize> j << 2), n);
        store<f32>(invcw + (<usize> j << 2), 1 / max(n, NORM_EPS));
      }
    }
    for (let j = jt; j < je; j += 4) {
      const row = w + <usize> j * rs, out = cos + <usize> j * unit;
      for (let ib = 0; ib < Np; ib += 8) {
        cosKernel(
          row,
          Dp,
          xpack + <usize> ib * rs,
          out + (<usize> ib << 2),
          Np,
          invcw + (<usize> j << 2),
          bias + (<usize> j << 2),
        );
      }
    }
    const jr = min(je, C);
    if (jr <= jt) continue;
    // Targets are left out: the host adds them in float64.
    for (let i = 0; i < Np; i += 4) {
      const a = v128.load(av + (<usize> i << 2)), lab = v128.load(labels + (<usize> i << 2));
      let m = splat(MASKED);
      for (let j = jt; j < jr; j++) {
        const ab = normProduct ? f32x4.mul(a, v128.load32_splat(nw + (<usize> j << 2))) : a;
        const z = f32x4.mul(ab, v128.load(cos + <usize> j * unit + (<usize> i << 2)));
        m = f32x4.max(m, v128.bitselect(splat(MASKED), z, i32x4.eq(lab, i32x4.splat(j))));
      }
      let s = splat(0);
      for (let j = jt; j < jr; j++) {
        const ab = normProduct ? f32x4.mul(a, v128.load32_splat(nw + (<usize> j << 2))) : a;
        const z = f32x4.mul(ab, v128.load(cos + <usize> j * unit + (<usize> i << 2)));
        const e = expv(f32x4.sub(z, m));
        s = f32x4.add(s, v128.andnot(e, i32x4.eq(lab, i32x4.splat(j))));
      }
      // Merge (m, s) into the running (M, S): M' = max, S' = S·e^(M−M') + s·e^(m−M').
      const mOld = v128.load(tmax + (<usize> i << 2)), mNew = f32x4.max(mOld, m);
      const fOld = expv(f32x4.sub(mOld, mNew)), sNew = f32x4.mul(s, expv(f32x4.sub(m, mNew)));
      const sp = tsum + (<usize> i << 3);
      v128.store(
        sp,
        f64x2.add(
          f64x2.mul(v128.load(sp), f64x2.promote_low_f32x4(fOld)),
          f64x2.promote_low_f32x4(sNew),
        ),
      );
      v128.store(
        sp,
        f64x2.add(
          f64x2.mul(v128.load(sp, 16), f64x2.promote_low_f32x4(high(fOld))),
          f64x2.promote_low_f32x4(high(sNew)),
        ),
        16,
      );
      v128.store(tmax + (<usize> i << 2), mNew);
    }
  }
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
 * Backward pass of thread `tid` over the class tiles it takes: the gradient tile ∂loss/∂cos (targets left to
 * the host, which handles them in float64), the thread's rows of ∂loss/∂W with the normalisation
 * backward folded in, and its partial ∂loss/∂x̂ (N×D) plus per-sample sums.
 */
export function backward(P: usize, tid: i32): void {
  const Np = slot(P, SLOT_NP), Dp = slot(P, SLOT_DP), C = slot(P, SLOT_C);
  const angular = slot(P, SLOT_ANGULAR) != 0, radius = slot(P, SLOT_RADIUS);
  const normProduct = angular && radius == 2, aIsNorm = angular && radius >= 1;
  const tile = slot(P, SLOT_TILE);
  const Cp = slot(P, SLOT_CP), next = P + (<usize> SLOT_NEXT_BACKWARD << 2);
  const xk = ptr(P, SLOT_XPACKK), w = ptr(P, SLOT_W), gw = ptr(P, SLOT_GW), cos = ptr(P, SLOT_COS);
  const labels = ptr(P, SLOT_LABELS), av = ptr(P, SLOT_A), weight = ptr(P, SLOT_WEIGHT);
  const nw = ptr(P, SLOT_NW), invcw = ptr(P, SLOT_INVCW), gb = ptr(P, SLOT_GB);
  const unit = <usize> Np << 2, tb = threadBase(P, tid), rs = <usize> Dp << 2;
  const logz = tb + <usize> T_LOGZ * unit,
    sumx = tb + <usize> T_SUMX * unit,
    grada = tb + <usize> T_GRADA * unit;
  const gt = tb + <usize> T_TILE * unit, gx = gt + <usize> tile * unit, wp = gx + <usize> Np * rs;
  memory.fill(sumx, 0, 2 * unit);
  memory.fill(gx, 0, <usize> Np * rs);
  let bad = splat(0);
  for (let jt = atomic.add<i32>(next, 1) * tile; jt < Cp; jt = atomic.add<i32>(next, 1) * tile) {
    const je = min(jt + tile, Cp);
    for (let j = jt; j < je; j++) {
      const grow = gt + <usize> (j - jt) * unit;
      if (j >= C) {
        memory.fill(grow, 0, unit);
        store<f32>(gb + (<usize> j << 2), 0);
        continue;
      }
      const nwj = load<f32>(nw + (<usize> j << 2)), icw = load<f32>(invcw + (<usize> j << 2));
      const b = splat(normProduct ? nwj : 1), jv = i32x4.splat(j), crow = cos + <usize> j * unit;
      let colGc = splat(0), colGz = splat(0);
      for (let i = 0; i < Np; i += 4) {
        const off = <usize> i << 2;
        const v = v128.load(crow + off), a = v128.load(av + off), ab = f32x4.mul(a, b);
        const p = expv(f32x4.sub(f32x4.mul(ab, v), v128.load(logz + off)));
        const wt = v128.load(weight + off), target = i32x4.eq(v128.load(labels + off), jv);
        const gz = v128.andnot(f32x4.mul(wt, p), target); // targets: the host, in float64
        if (!angular) {
          v128.store(grow + off, gz);
          colGz = f32x4.add(colGz, gz);
          continue;
        }
        const gc = f32x4.mul(gz, ab), gcv = f32x4.mul(gc, v);
        v128.store(sumx + off, f32x4.add(v128.load(sumx + off), gcv));
        colGc = f32x4.add(colGc, gcv);
        if (aIsNorm) v128.store(grada + off, fma(f32x4.mul(gz, b), v, v128.load(grada + off)));
        if (normProduct) colGz = fma(f32x4.mul(gz, a), v, colGz);
        v128.store(grow + off, f32x4.mul(gc, splat(icw)));
      }
      if (!angular) {
        store<f32>(gb + (<usize> j << 2), hsum(colGz));
      } else {
        // ∂/∂w_j of the norm: (−Σ_i gc·c / max(‖w‖, ε) [if ‖w‖ > ε] + radius term) · w_j/‖w_j‖.
        const coef = (nwj > NORM_EPS ? -hsum(colGc) * icw : 0) + (normProduct ? hsum(colGz) : 0);
        store<f32>(gb + (<usize> j << 2), nwj > 0 ? coef / nwj : 0);
      }
    }
    for (let j = jt; j < je; j += 4) {
      for (let k = 0; k < Dp; k += 8) {
        const o = <usize> j * rs + (<usize> k << 2);
        bad = v128.or(
          bad,
          gradWKernel(
            gt + <usize> (j - jt) * unit,
            Np,
            xk + <usize> k * unit,
            Dp,
            gw + o,
            w + o,
            gb + (<usize> j << 2),
            angular,
          ),
        );
      }
    }
    // The tile's rows of W by blocks of 8 features, so the product below reads them in order.
    const count = je - jt;
    for (let j = 0; j < count; j++) {
      const src = w + <usize> (jt + j) * rs;
      for (let k = 0; k < Dp; k += 8) {
        const dst = wp + ((<usize> k * <usize> count + (<usize> j << 3)) << 2);
        v128.store(dst, v128.load(src + (<usize> k << 2)));
        v128.store(dst, v128.load(src + (<usize> k << 2), 16), 16);
      }
    }
    for (let i = 0; i < Np; i += 4) {
      for (let k = 0; k < Dp; k += 8) {
        gradXKernel(
          gt + (<usize> i << 2),
          Np,
          wp + ((<usize> k * <usize> count) << 2),
          Dp,
          je - jt,
          gx + <usize> i * rs + (<usize> k << 2),
        );
      }
    }
  }
  if (v128.any_true(bad)) store<i32>(P + (<usize> SLOT_BAD << 2), 1);
}

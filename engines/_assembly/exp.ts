// deno-fmt-ignore-file
// (deno fmt drops AssemblyScript's @inline decorators on functions, which the kernels need.)
// exp of four floats, shared by the WebAssembly kernels of engine-wasm (../wasm/assembly) and
// engine-native's epilogue (../native/assembly): imported, not built on its own.

// The constants of expv, four lanes each, in memory: V8 rebuilds a v128.const at every use inside
// a loop (several instructions each), while loads from here stay cheap (measured: exp 2× faster).
export const EXP = memory.data<f32>([
  -87,
  -87,
  -87,
  -87,
  88,
  88,
  88,
  88,
  1.44269504088896341,
  1.44269504088896341,
  1.44269504088896341,
  1.44269504088896341,
  12582912.0,
  12582912.0,
  12582912.0,
  12582912.0,
  0.693359375,
  0.693359375,
  0.693359375,
  0.693359375,
  2.12194440e-4,
  2.12194440e-4,
  2.12194440e-4,
  2.12194440e-4,
  1.9875691500e-4,
  1.9875691500e-4,
  1.9875691500e-4,
  1.9875691500e-4,
  1.3981999507e-3,
  1.3981999507e-3,
  1.3981999507e-3,
  1.3981999507e-3,
  8.3334519073e-3,
  8.3334519073e-3,
  8.3334519073e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  4.1665795894e-2,
  4.1665795894e-2,
  4.1665795894e-2,
  1.6666665459e-1,
  1.6666665459e-1,
  1.6666665459e-1,
  1.6666665459e-1,
  5.0000001201e-1,
  5.0000001201e-1,
  5.0000001201e-1,
  5.0000001201e-1,
  1,
  1,
  1,
  1,
], 16);

// exp of four floats: Cody–Waite reduction x = n·ln 2 + r, Cephes expf's degree-6 polynomial for
// e^r (≈ 1 ulp), 2^n from n's bits. n is rounded by adding 1.5·2^23 (the sum's low bits are n), so
// no float-to-int conversion; the clamps are pmin/pmax (one instruction each) and keep NaN when
// x is NaN. Inputs are clamped to [−87, 88] so 2^n stays a normal float; exp(−87) ≈ 1.6e-38
// stands in for 0.
// @ts-ignore: decorator
@inline export function expv(x: v128): v128 {
  const K = EXP;
  x = f32x4.pmin(f32x4.pmax(x, v128.load(K)), v128.load(K, 16));
  const big = v128.load(K, 48);
  const k = f32x4.add(f32x4.mul(x, v128.load(K, 32)), big);
  const n = f32x4.sub(k, big);
  let r = f32x4.sub(x, f32x4.mul(n, v128.load(K, 64)));
  r = f32x4.add(r, f32x4.mul(n, v128.load(K, 80)));
  let p = v128.load(K, 96);
  p = madd(p, r, v128.load(K, 112));
  p = madd(p, r, v128.load(K, 128));
  p = madd(p, r, v128.load(K, 144));
  p = madd(p, r, v128.load(K, 160));
  p = madd(p, r, v128.load(K, 176));
  const one = v128.load(K, 192);
  p = madd(p, f32x4.mul(r, r), f32x4.add(r, one));
  // bits(k) = bits(1.5·2^23) + n: shifted by 23, the constant's bits leave the word; the bits of
  // 1.0f are 127 << 23.
  return f32x4.mul(p, i32x4.add(i32x4.shl(k, 23), one));
}


// a·b + c as a multiply and an add (relaxed SIMD's fused form measured no faster in engine-native's
// epilogue, and the plain one rounds the same on every machine and in every build).
// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, c: v128): v128 {
  return f32x4.add(f32x4.mul(a, b), c);
}

// A small seeded generator of the loss pages (ElasticFace's margins): the same numbers on every
// platform for the same seed, written out so that another language can reproduce them.
//
// State: four 32-bit words from the seed by SplitMix32 (s ← s + 0x9E3779B9, then MurmurHash3's
// fmix32 of s), then xoshiro128** (Blackman & Vigna). A uniform in [0, 1) takes two outputs a, b:
// ((a >>> 5)·2²⁶ + (b >>> 6)) / 2⁵³. Normals are Box–Muller pairs from two uniforms u, v:
// r = √(−2·ln(1 − u)), then r·cos(2πv) and r·sin(2πv), in that order.

/** An unsigned 32-bit seed: an integer in [0, 2³²). */
export function isSeed(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 &&
    value <= 0xffffffff;
}

function splitMix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/** xoshiro128** seeded through SplitMix32: unsigned 32-bit outputs. */
export function xoshiro128(seed: number): () => number {
  const mix = splitMix32(seed);
  let s0 = mix(), s1 = mix(), s2 = mix(), s3 = mix();
  return () => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 = (s2 ^ s0) >>> 0;
    s3 = (s3 ^ s1) >>> 0;
    s1 = (s1 ^ s2) >>> 0;
    s0 = (s0 ^ s3) >>> 0;
    s2 = (s2 ^ t) >>> 0;
    s3 = rotl(s3, 11);
    return result;
  };
}

/** `count` standard normals (mean 0, std 1) from the seed, Box–Muller pairs in order. */
export function seededNormals(seed: number, count: number): Float64Array {
  const next = xoshiro128(seed);
  const uniform = () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
  const out = new Float64Array(count);
  for (let k = 0; k < count; k += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - uniform())), angle = 2 * Math.PI * uniform();
    out[k] = r * Math.cos(angle);
    if (k + 1 < count) out[k + 1] = r * Math.sin(angle);
  }
  return out;
}

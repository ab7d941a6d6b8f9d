/**
 * The 128-bit FMA peak of this machine as WebAssembly reaches it (issue 10's ceiling for
 * engine-wasm): a loop of 12 independent relaxed-SIMD multiply-adds of four floats, on every core
 * at once (one worker each), timed in the same process as the engines it is the ceiling of. The
 * loop is compiled here from its source (AssemblyScript), so nothing is committed for it.
 *
 * @module
 */
import asc from "assemblyscript/asc";

// Twelve independent accumulators, as engine-wasm's six-by-eight microkernel keeps (V8 gives
// WebAssembly 16 vector registers); a loop of 12 AVX multiply-adds in C reached the same figure on
// this machine (55 GFLOP/s a core, 2026-12-06).
const SOURCE = `
export function peak(n: i32, p: usize): f32 {
  const x0 = v128.load(p), x1 = v128.load(p, 16);
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  let a40 = f32x4.splat(0), a41 = f32x4.splat(0), a50 = f32x4.splat(0), a51 = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const q = p + (<usize> (i & 63) << 2);
    let s = v128.load32_splat(q);
    a00 = f32x4.relaxed_madd(s, x0, a00); a01 = f32x4.relaxed_madd(s, x1, a01);
    s = v128.load32_splat(q, 4);
    a10 = f32x4.relaxed_madd(s, x0, a10); a11 = f32x4.relaxed_madd(s, x1, a11);
    s = v128.load32_splat(q, 8);
    a20 = f32x4.relaxed_madd(s, x0, a20); a21 = f32x4.relaxed_madd(s, x1, a21);
    s = v128.load32_splat(q, 12);
    a30 = f32x4.relaxed_madd(s, x0, a30); a31 = f32x4.relaxed_madd(s, x1, a31);
    s = v128.load32_splat(q, 16);
    a40 = f32x4.relaxed_madd(s, x0, a40); a41 = f32x4.relaxed_madd(s, x1, a41);
    s = v128.load32_splat(q, 20);
    a50 = f32x4.relaxed_madd(s, x0, a50); a51 = f32x4.relaxed_madd(s, x1, a51);
  }
  const t = f32x4.add(f32x4.add(f32x4.add(a00, a01), f32x4.add(a10, a11)),
    f32x4.add(f32x4.add(f32x4.add(a20, a21), f32x4.add(a30, a31)),
      f32x4.add(f32x4.add(a40, a41), f32x4.add(a50, a51))));
  return f32x4.extract_lane(t, 0);
}
`;

/** Flops of one iteration of the loop: 12 multiply-adds of four floats. */
export const FLOPS_PER_ITERATION = 12 * 4 * 2;

let compiled: Promise<Uint8Array> | undefined;

/** The loop's module, compiled once per process (the bench measures before and after its rounds). */
export function fmaPeakModule(): Promise<Uint8Array> {
  return compiled ??= compile();
}

async function compile(): Promise<Uint8Array> {
  const { binary, error, stderr } = await asc.compileString(SOURCE, {
    optimizeLevel: 3,
    runtime: "stub",
    initialMemory: 1,
    enable: ["simd", "relaxed-simd"],
  });
  if (error || !binary) throw new Error(`fma peak: ${error?.message ?? stderr.toString()}`);
  return binary;
}

/**
 * GFLOP/s of the loop on `cores` workers at once: the best of `rounds` rounds, each of about
 * `ms` milliseconds (flops of every worker over the slowest one's time).
 */
export async function fmaPeak128(cores: number, rounds = 5, ms = 300): Promise<number> {
  const binary = await fmaPeakModule();
  const workers = Array.from(
    { length: cores },
    () => new Worker(new URL("./_fma_peak_worker.ts", import.meta.url).href, { type: "module" }),
  );
  const ask = (w: Worker, n: number) =>
    new Promise<number>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data as number);
      w.onerror = (e) => reject(new Error(`fma peak worker: ${e.message}`));
      w.postMessage({ binary, n });
    });
  try {
    await Promise.all(workers.map((w) => ask(w, 1e5))); // compiled and warm
    const probe = await ask(workers[0], 1e7);
    const n = Math.max(1e6, Math.round(1e7 * ms / probe));
    let best = 0;
    for (let r = 0; r < rounds; r++) {
      const times = await Promise.all(workers.map((w) => ask(w, n)));
      best = Math.max(best, cores * n * FLOPS_PER_ITERATION / Math.max(...times) / 1e6);
    }
    return best;
  } finally {
    for (const w of workers) w.terminate();
  }
}

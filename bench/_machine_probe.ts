// The machine probe: a fixed matrix product in plain TypeScript (float64), timed in the same
// process as the benches, on one thread, and on every core at once (one worker per core, each doing
// the whole product; a round ends when the last one does). It is the anchor of bench/_results.ts:
// rows of single-threaded backends are measured against the first, rows of threaded ones against
// the second, which slows down as they do when another process takes a core.

/** The probe's product: C (M×N) = A (M×K) · Bᵀ (N×K), 2·M·N·K flops. */
export const PROBE_SHAPE = { M: 64, N: 256, K: 256 } as const;

/** The probe's name in results and anchors. */
export const MACHINE_PROBE = "machine-probe";
/** The probe on every core at once. */
export const PARALLEL_PROBE = "machine-probe-parallel";

const { M, N, K } = PROBE_SHAPE;
const a = Float64Array.from({ length: M * K }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
const b = Float64Array.from({ length: N * K }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
const c = new Float64Array(M * N);

/** One product; returns an element, so that the work cannot be skipped. */
export function product(): number {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let sum = 0;
      for (let k = 0; k < K; k++) sum += a[i * K + k] * b[j * K + k];
      c[i * N + j] = sum;
    }
  }
  return c[0];
}

/** Times `count` products after `warmup` untimed ones; milliseconds per product. */
export function machineProbe(count = 20, warmup = 10): number[] {
  let sink = 0;
  for (let r = 0; r < warmup; r++) sink += product();
  const samples: number[] = [];
  for (let r = 0; r < count; r++) {
    const t0 = performance.now();
    sink += product();
    samples.push(performance.now() - t0);
  }
  if (!Number.isFinite(sink)) throw new Error("machine probe: non-finite product");
  return samples;
}

// The runtime's Web Worker, taken at load: TensorFlow.js's wasm build, believing itself in Node.js,
// later sets globalThis.Worker to node:worker_threads' Worker (as engines/platform.ts notes).
const WebWorker = globalThis.Worker;

/** One round: every worker computes the product; resolves when the last one has. */
function round(workers: Worker[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = workers.length;
    for (const worker of workers) {
      worker.onmessage = () => --left === 0 && resolve();
      worker.onerror = (e) => reject(new Error(`machine probe worker: ${e.message}`));
      worker.postMessage(0);
    }
  });
}

/**
 * Times `count` rounds on every core at once (one worker per core, started for this call and
 * ended after it) after `warmup` untimed ones; ms per round.
 */
export async function parallelMachineProbe(count = 20, warmup = 10): Promise<number[]> {
  const workers = Array.from(
    { length: navigator.hardwareConcurrency },
    () => new WebWorker(new URL("_machine_probe_worker.ts", import.meta.url), { type: "module" }),
  );
  try {
    for (let r = 0; r < warmup; r++) await round(workers);
    const samples: number[] = [];
    for (let r = 0; r < count; r++) {
      const t0 = performance.now();
      await round(workers);
      samples.push(performance.now() - t0);
    }
    return samples;
  } finally {
    for (const worker of workers) worker.terminate();
  }
}

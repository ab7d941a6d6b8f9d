// What engine-wasm shares across heads: the compiled kernels and one pool of worker threads per
// process. A prepared head attaches its own memory to the first `threads` workers of the pool (each
// worker instantiates the kernels once per attached memory), so heads share threads instead of each
// starting its own: the pool never holds more than MAX_THREADS workers, and shrinks when heads are
// disposed (to none when the last goes). Every run is posted to all of a head's workers in one
// synchronous step, so all workers see runs in the same order and no barrier waits on a run that
// is queued behind another.
import { MAX_THREADS } from "./assembly/layout.ts";

// The runtime's own Worker, taken before anything can replace it: tfjs-backend-wasm's threaded
// build, believing itself in Node.js, sets globalThis.Worker to node:worker_threads' Worker,
// whose workers have no `self`.
const WebWorker = globalThis.Worker;

/** The two builds of the kernels: with relaxed SIMD's fused multiply-add, and plain SIMD. */
export type KernelBuild = "relaxed" | "simd";

const modules = new Map<KernelBuild, Promise<WebAssembly.Module | undefined>>();

function compileBuild(build: KernelBuild): Promise<WebAssembly.Module | undefined> {
  let module = modules.get(build);
  if (!module) {
    module = (async () => {
      const file = build === "relaxed" ? "kernels_relaxed" : "kernels";
      const url = new URL(`./build/${file}.wasm`, import.meta.url);
      const bytes = url.protocol === "file:"
        ? await Deno.readFile(url)
        : new Uint8Array(await (await fetch(url)).arrayBuffer());
      return WebAssembly.validate(bytes) ? await WebAssembly.compile(bytes) : undefined;
    })();
    modules.set(build, module);
  }
  return module;
}

/** The compiled kernels: the relaxed-SIMD build where this runtime validates it, else plain SIMD. */
export async function kernelsModule(
  where: string,
  build?: KernelBuild,
): Promise<WebAssembly.Module> {
  for (const name of build ? [build] : ["relaxed", "simd"] as const) {
    const module = await compileBuild(name);
    if (module) return module;
  }
  throw new Error(
    `${where}: this runtime validates no kernel build${build ? ` "${build}"` : ""}` +
      " (no WebAssembly SIMD?)",
  );
}

/** One thread per logical core, at most {@linkcode MAX_THREADS}. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(navigator.hardwareConcurrency ?? 1, MAX_THREADS));
}

/** A head's threads in the pool. */
export interface HeadThreads {
  /** How many workers run the head. */
  readonly threads: number;
  /** Runs the kernels' passes on every thread; rejects if a thread fails. */
  run(params: number): Promise<void>;
  /** Leaves the pool (idempotent); the pool ends workers no head uses any more. */
  detach(): void;
}

type Reply = { resolve: () => void; reject: (error: Error) => void };

interface PoolWorker {
  worker: Worker;
  /** The outstanding request of each head on this worker, by head id. */
  pending: Map<number, Reply>;
}

const pool: PoolWorker[] = [];
/** Attached heads: id → thread count. */
const heads = new Map<number, number>();
let nextId = 1;

/** Workers the pool holds now (all heads together). */
export function poolThreads(): number {
  return pool.length;
}

function spawn(where: string): PoolWorker {
  const worker = new WebWorker(new URL("./_worker.ts", import.meta.url), { type: "module" });
  const entry: PoolWorker = { worker, pending: new Map() };
  worker.onmessage = (event: MessageEvent) => {
    const { id, type, message } = event.data;
    const reply = entry.pending.get(id);
    entry.pending.delete(id);
    if (type === "error") {
      // A kernel that failed may leave the other threads at a barrier: nothing is reusable.
      reply?.reject(new Error(`${where}: a worker failed: ${message}`));
      resetPool(`${where}: another head's worker failed: ${message}`);
    } else reply?.resolve();
  };
  worker.onerror = (event) => {
    event.preventDefault();
    resetPool(`${where}: a worker failed: ${event.message}`);
  };
  return entry;
}

/** Ends every worker and rejects every outstanding request; attached heads become unusable. */
function resetPool(reason: string): void {
  const all = pool.splice(0);
  for (const entry of all) {
    entry.worker.terminate();
    for (const reply of entry.pending.values()) reply.reject(new Error(reason));
  }
  heads.clear();
}

function request(entry: PoolWorker, id: number, message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    entry.pending.set(id, { resolve, reject });
    entry.worker.postMessage({ ...message, id });
  });
}

/** Ends the workers that no attached head uses (the pool keeps the first max(threads) workers). */
function shrink(): void {
  const keep = Math.max(0, ...heads.values());
  for (const entry of pool.splice(keep)) entry.worker.terminate();
}

/**
 * Attaches `memory` to the first `threads` workers of the process's pool, starting those that do not
 * run yet, and instantiates `module` on it in each.
 */
export async function attachHead(
  where: string,
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  control: number,
  threads: number,
): Promise<HeadThreads> {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new RangeError(
      `${where}: threads must be an integer in [1, ${MAX_THREADS}], got ${threads}`,
    );
  }
  const id = nextId++;
  heads.set(id, threads);
  while (pool.length < threads) pool.push(spawn(where));
  const mine = pool.slice(0, threads);
  let detached = false;
  const detach = () => {
    if (detached) return;
    detached = true;
    if (!heads.delete(id)) return; // the pool was reset: those workers are gone
    for (const entry of mine) entry.worker.postMessage({ type: "detach", id });
    shrink();
  };
  try {
    await Promise.all(
      mine.map((entry, tid) =>
        request(entry, id, { type: "attach", module, memory, control, tid, threads })
      ),
    );
  } catch (error) {
    detach();
    throw error;
  }
  return {
    threads,
    run(params: number) {
      if (detached) return Promise.reject(new Error(`${where}: the head's threads were released`));
      if (!heads.has(id)) {
        return Promise.reject(
          new Error(`${where}: the worker pool was reset; prepare the head again`),
        );
      }
      return Promise.all(mine.map((entry) => request(entry, id, { type: "run", params })))
        .then(() => {});
    },
    detach,
  };
}

// What engine-wasm shares across heads: the compiled kernels and one pool of worker threads per
// process. A prepared head attaches its own memory to the first `threads` workers of the pool (each
// worker instantiates the kernels once per attached memory), so heads share threads instead of each
// starting its own: the pool never holds more than MAX_THREADS workers, and shrinks when heads are
// disposed (to none when the last goes). Every run is posted to all of a head's workers in one
// synchronous step, so all workers see runs in the same order and no barrier waits on a run that
// is queued behind another. Workers are Web Workers or node:worker_threads (../platform.ts); where
// the runtime has neither, a head runs on the calling thread alone.
import { MAX_THREADS } from "./assembly/layout.ts";
import {
  logicalCores,
  readAsset,
  sharedMemory,
  siblingScript,
  startThread,
  type Thread,
  threadKind,
} from "../platform.ts";
import { attachThread, runThread } from "./_thread.ts";

/** The two builds of the kernels: with relaxed SIMD's fused multiply-add, and plain SIMD. */
export type KernelBuild = "relaxed" | "simd";

const modules = new Map<KernelBuild, Promise<WebAssembly.Module | undefined>>();

function compileBuild(build: KernelBuild): Promise<WebAssembly.Module | undefined> {
  let module = modules.get(build);
  if (!module) {
    module = (async () => {
      const file = build === "relaxed" ? "kernels_relaxed" : "kernels";
      const url = new URL(`./build/${file}.wasm`, import.meta.url);
      const bytes = await readAsset(url);
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

/**
 * Why engine-wasm cannot run here, or undefined: its kernels need a shared WebAssembly memory (in
 * a browser page that is not cross-origin isolated, one exists but no worker can share it: heads
 * then run on the calling thread).
 */
export function runtimeProblem(): string | undefined {
  if (sharedMemory()) return undefined;
  return "needs a shared WebAssembly.Memory (WebAssembly threads), which this runtime refuses";
}

/**
 * One thread per logical core, at most {@linkcode MAX_THREADS}; 1 where the runtime has no worker
 * threads.
 */
export function defaultThreads(): number {
  return threadKind() ? Math.max(1, Math.min(logicalCores(), MAX_THREADS)) : 1;
}

/** One line on how heads run here, e.g. "2 worker threads by default (node:worker_threads)". */
export function threadingLine(): string {
  const kind = threadKind();
  if (!kind && sharedMemory() === "unshareable") {
    return "one thread, the calling one: this page is not cross-origin isolated, so no worker " +
      "can share the memory (serve it with COOP: same-origin and COEP: require-corp for threads)";
  }
  if (!kind) return "one thread, the calling one: this runtime has no worker threads";
  const threads = defaultThreads();
  return `${threads} worker thread${threads === 1 ? "" : "s"} by default (${kind})`;
}

/** A head's threads in the pool. */
export interface HeadThreads {
  /** How many workers run the head. */
  readonly threads: number;
  /** Runs the kernels' passes on every thread; rejects if a thread fails. */
  run(params: number): Promise<void>;
  /**
   * Starts a run on every thread and returns at once, without a reply to wait for: each thread
   * counts itself done in the head's third control word (_blocking.ts waits on it).
   */
  post(params: number): void;
  /** Leaves the pool (idempotent); the pool ends workers no head uses any more. */
  detach(): void;
}

type Reply = { resolve: () => void; reject: (error: Error) => void };

interface PoolWorker {
  worker: Thread;
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
  const script = siblingScript(new URL("./_worker.ts", import.meta.url), import.meta.url);
  const entry = { pending: new Map() } as PoolWorker;
  entry.worker = startThread(where, script, {
    message(data) {
      const { id, type, message } = data as { id: number; type: string; message?: string };
      const reply = entry.pending.get(id);
      entry.pending.delete(id);
      entry.worker.hold(entry.pending.size > 0);
      if (type === "error") {
        // A kernel that failed may leave the other threads at a barrier: nothing is reusable.
        reply?.reject(new Error(`${where}: a worker failed: ${message}`));
        resetPool(`${where}: another head's worker failed: ${message}`);
      } else reply?.resolve();
    },
    error: (message) => resetPool(`${where}: a worker failed: ${message}`),
  });
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
    entry.worker.hold(true);
    entry.worker.post({ ...message, id });
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
  const { head, attached } = attachHeadSync(where, module, memory, control, threads);
  try {
    await attached;
  } catch (error) {
    head.detach();
    throw error;
  }
  return head;
}

/**
 * {@linkcode attachHead}'s synchronous half: starts the workers and posts the attach messages, and
 * returns the head's threads at once, with `attached`, which settles when every worker has
 * instantiated the kernels. Runs posted before then queue behind the attach in each worker, so a
 * caller that may block (_blocking.ts) can run the head at once.
 */
export function attachHeadSync(
  where: string,
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  control: number,
  threads: number,
): { head: HeadThreads; attached: Promise<void> } {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new RangeError(
      `${where}: threads must be an integer in [1, ${MAX_THREADS}], got ${threads}`,
    );
  }
  if (!threadKind()) {
    return {
      head: callingThread(where, module, memory, control, threads),
      attached: Promise.resolve(),
    };
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
    for (const entry of mine) entry.worker.post({ type: "detach", id });
    shrink();
  };
  const attached = Promise.all(
    mine.map((entry, tid) =>
      request(entry, id, { type: "attach", module, memory, control, tid, threads })
    ),
  ).then(() => {});
  attached.catch(() => {}); // the caller's to handle (attachHead rethrows it)
  const head: HeadThreads = {
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
    post(params: number) {
      if (detached || !heads.has(id)) {
        throw new Error(`${where}: the head's threads were released or the pool was reset`);
      }
      for (const entry of mine) entry.worker.post({ type: "run", id, params });
    },
    detach,
  };
  return { head, attached };
}

/** A head run by the calling thread alone, where the runtime has no worker threads. */
function callingThread(
  where: string,
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  control: number,
  threads: number,
): HeadThreads {
  if (threads !== 1) {
    throw new RangeError(
      `${where}: this runtime has no worker threads, so threads must be 1, got ${threads}`,
    );
  }
  let head: ReturnType<typeof attachThread> | undefined = attachThread({
    module,
    memory,
    control,
    tid: 0,
    threads: 1,
  });
  return {
    threads: 1,
    run(params: number) {
      if (!head) return Promise.reject(new Error(`${where}: the head's threads were released`));
      try {
        runThread(head, params);
        return Promise.resolve();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return Promise.reject(new Error(`${where}: the kernels failed: ${message}`));
      }
    },
    post(params: number) {
      if (!head) throw new Error(`${where}: the head's threads were released`);
      runThread(head, params);
    },
    detach: () => void (head = undefined),
  };
}

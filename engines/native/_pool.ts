// engine-native's threads: the calling thread (thread 0) and `threads − 1` workers (_worker.ts) on
// one shared memory. A phase is announced on the control block; every thread takes tiles until
// none is left; the calling thread then waits (Atomics.wait: blocking, which Deno allows on the
// main thread) until every worker has reported.
import type { BlasLibrary } from "./blas.ts";
import {
  DONE,
  ERROR,
  GEN,
  type NativeLayout,
  NEXT,
  PHASE,
  QUIT,
  readError,
  TileRunner,
} from "./_tiles.ts";

const WHERE = "engine-native";
/** A helper thread that does not report within this time is taken for lost. */
const BARRIER_TIMEOUT_MS = 10 * 60 * 1000;
// The runtime's own Worker, taken before anything can replace it (tfjs-backend-wasm's threaded
// build, believing itself in Node.js, sets globalThis.Worker to node:worker_threads' Worker).
const WebWorker = globalThis.Worker;

/** The threads of one prepared head. */
export interface Pool {
  /** The calling thread's runner (its partial ∂/∂x̃ is read by the host). */
  main: TileRunner;
  /** Runs one phase on every thread and returns when all are done; throws a thread's error. */
  phase(which: number): void;
  /** Ends the workers. */
  dispose(): void;
}

function startWorker(
  t: number,
  init: { module: WebAssembly.Module; memory: WebAssembly.Memory; layout: NativeLayout },
  library: string,
): { worker: Worker; ready: Promise<void> } {
  const worker = new WebWorker(new URL("./_worker.ts", import.meta.url), { type: "module" });
  const ready = new Promise<void>((resolve, reject) => {
    worker.onmessage = (e) =>
      e.data.type === "ready"
        ? resolve()
        : reject(new Error(`${WHERE}: thread ${t}: ${e.data.message}`));
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`${WHERE}: thread ${t} failed to start: ${e.message}`));
    };
  });
  worker.postMessage({ ...init, tid: t, library });
  return { worker, ready };
}

/** Starts the workers of a head and returns its pool once every thread is ready. */
export async function startPool(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  layout: NativeLayout,
  blas: { lib: BlasLibrary; library: string },
): Promise<Pool> {
  const main = new TileRunner(module, memory, layout, 0, blas.lib);
  const workers: Worker[] = [];
  try {
    const ready: Promise<void>[] = [];
    for (let t = 1; t < layout.threads; t++) {
      const started = startWorker(t, { module, memory, layout }, blas.library);
      workers.push(started.worker);
      ready.push(started.ready);
    }
    await Promise.all(ready);
  } catch (error) {
    for (const w of workers) w.terminate();
    throw error;
  }
  for (const w of workers) {
    w.onmessage = null;
    w.onerror = (e) => e.preventDefault();
  }
  return poolOf(main, workers, memory, layout);
}

/** The pool of one thread, the calling one, made at once (no worker to wait for). */
export function callingThreadPool(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  layout: NativeLayout,
  lib: BlasLibrary,
): Pool {
  if (layout.threads !== 1) throw new Error(`${WHERE}: a calling-thread pool has one thread`);
  return poolOf(new TileRunner(module, memory, layout, 0, lib), [], memory, layout);
}

/** The pool of started threads: `main` and the ready `workers`. */
function poolOf(
  main: TileRunner,
  workers: Worker[],
  memory: WebAssembly.Memory,
  layout: NativeLayout,
): Pool {
  const ctl = new Int32Array(memory.buffer, layout.control, 16);
  const helpers = layout.threads - 1;

  function phase(which: number): void {
    Atomics.store(ctl, NEXT, 0);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, PHASE, which);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    let failure: unknown;
    try {
      main.runPhase(which);
    } catch (error) {
      failure = error;
    }
    const deadline = performance.now() + BARRIER_TIMEOUT_MS;
    for (let done = Atomics.load(ctl, DONE); done < helpers; done = Atomics.load(ctl, DONE)) {
      if (Atomics.wait(ctl, DONE, done, 1000) === "timed-out" && performance.now() > deadline) {
        throw new Error(`${WHERE}: a helper thread did not finish (lost?)`);
      }
    }
    if (failure) throw failure;
    if (Atomics.load(ctl, ERROR)) {
      throw new Error(`${WHERE}: ${readError(memory.buffer, layout)}`);
    }
  }

  function dispose(): void {
    Atomics.store(ctl, PHASE, QUIT);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    for (const worker of workers) worker.terminate();
  }

  return { main, phase, dispose };
}

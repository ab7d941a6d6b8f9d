// What one thread of engine-wasm does with a head: instantiate the kernels on the head's memory and
// run the forward, combine and backward passes of a run, meeting the head's other threads at a
// barrier. A pool worker (_worker.ts) runs it for each head attached to it; where the runtime has
// no worker threads, the calling thread runs it itself, as the head's only thread.

interface Kernels {
  forward(params: number, tid: number): void;
  combine(params: number, tid: number): void;
  backward(params: number, tid: number): void;
}

/** A head's kernels on one thread. */
export interface ThreadHead {
  kernels: Kernels;
  /**
   * Three words of the head's memory: arrivals and a generation that the last arrival bumps (the
   * barrier), then the count of thread runs finished, for a caller that waits on it (_blocking.ts).
   */
  control: Int32Array;
  tid: number;
  threads: number;
}

/** What the owner sends to attach a head to a thread. */
export interface AttachMessage {
  module: WebAssembly.Module | BufferSource;
  memory: WebAssembly.Memory;
  control: number;
  tid: number;
  threads: number;
}

/** A reusable barrier on the head's two control words. */
function barrier({ control, threads }: ThreadHead) {
  const generation = Atomics.load(control, 1);
  if (Atomics.add(control, 0, 1) === threads - 1) {
    Atomics.store(control, 0, 0);
    Atomics.add(control, 1, 1);
    Atomics.notify(control, 1);
    return;
  }
  for (let spin = 0; spin < 2000; spin++) {
    if (Atomics.load(control, 1) !== generation) return;
  }
  while (Atomics.load(control, 1) === generation) Atomics.wait(control, 1, generation);
}

/** Instantiates the kernels on the head's memory, for thread `tid` of `threads`. */
export function attachThread(message: AttachMessage): ThreadHead {
  const module = message.module instanceof WebAssembly.Module
    ? message.module
    : new WebAssembly.Module(message.module);
  const memory = message.memory;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return {
    kernels: instance.exports as unknown as Kernels,
    control: new Int32Array(memory.buffer, message.control, 3),
    tid: message.tid,
    threads: message.threads,
  };
}

/** This thread's share of one run (params: the offset of the run's parameter slots). */
export function runThread(head: ThreadHead, params: number) {
  head.kernels.forward(params, head.tid);
  if (head.threads > 1) barrier(head);
  head.kernels.combine(params, head.tid);
  head.kernels.backward(params, head.tid);
  // A caller blocked in Atomics.wait (_blocking.ts) counts the threads that are done.
  Atomics.add(head.control, 2, 1);
  Atomics.notify(head.control, 2);
}

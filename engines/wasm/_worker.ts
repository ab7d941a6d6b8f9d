// One thread of the WebAssembly engine: instantiates the kernels on the shared memory and runs the
// forward, combine and backward passes of each run, meeting the other threads at a barrier.
/// <reference lib="deno.worker" />

interface Kernels {
  forward(params: number, tid: number): void;
  combine(params: number, tid: number): void;
  backward(params: number, tid: number): void;
}

let kernels: Kernels | undefined;
let control: Int32Array;
let tid = 0, threads = 1;

/** A reusable barrier on two words: arrivals and a generation that the last arrival bumps. */
function barrier() {
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

self.onmessage = (event: MessageEvent) => {
  const message = event.data;
  try {
    if (message.type === "init") {
      const module = message.module instanceof WebAssembly.Module
        ? message.module
        : new WebAssembly.Module(message.module);
      const instance = new WebAssembly.Instance(module, { env: { memory: message.memory } });
      kernels = instance.exports as unknown as Kernels;
      control = new Int32Array(message.memory.buffer, message.control, 2);
      tid = message.tid;
      threads = message.threads;
      self.postMessage({ type: "ready" });
    } else if (message.type === "run") {
      const params = message.params as number;
      kernels!.forward(params, tid);
      if (threads > 1) barrier();
      kernels!.combine(params, tid);
      kernels!.backward(params, tid);
      self.postMessage({ type: "done" });
    }
  } catch (error) {
    self.postMessage({
      type: "error",
      message: error instanceof Error ? error.message : String(error),
    });
  }
};

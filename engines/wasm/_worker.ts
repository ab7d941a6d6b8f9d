// One thread of engine-wasm's pool: instantiates the kernels on the memory of each head attached to
// it and runs the forward, combine and backward passes of that head's runs, meeting the head's other
// threads at a barrier. Replies carry the head's id.
/// <reference lib="deno.worker" />

interface Kernels {
  forward(params: number, tid: number): void;
  combine(params: number, tid: number): void;
  backward(params: number, tid: number): void;
}

interface Attached {
  kernels: Kernels;
  /** Two words of the head's memory: arrivals and a generation that the last arrival bumps. */
  control: Int32Array;
  tid: number;
  threads: number;
}

const attached = new Map<number, Attached>();

/** A reusable barrier on the head's two control words. */
function barrier({ control, threads }: Attached) {
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

function attach(message: Record<string, unknown>): Attached {
  const module = message.module instanceof WebAssembly.Module
    ? message.module
    : new WebAssembly.Module(message.module as BufferSource);
  const memory = message.memory as WebAssembly.Memory;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return {
    kernels: instance.exports as unknown as Kernels,
    control: new Int32Array(memory.buffer, message.control as number, 2),
    tid: message.tid as number,
    threads: message.threads as number,
  };
}

function run(head: Attached, params: number) {
  head.kernels.forward(params, head.tid);
  if (head.threads > 1) barrier(head);
  head.kernels.combine(params, head.tid);
  head.kernels.backward(params, head.tid);
}

self.onmessage = (event: MessageEvent) => {
  const message = event.data;
  const id = message.id as number;
  try {
    if (message.type === "attach") attached.set(id, attach(message));
    else if (message.type === "detach") return void attached.delete(id);
    else if (message.type === "run") {
      const head = attached.get(id);
      if (!head) throw new Error(`head ${id} is not attached to this worker`);
      run(head, message.params);
    }
    self.postMessage({ type: "done", id });
  } catch (error) {
    self.postMessage({
      type: "error",
      id,
      message: error instanceof Error ? error.message : String(error),
    });
  }
};

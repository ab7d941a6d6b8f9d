// A helper thread of engine-native: opens the same CBLAS, instantiates the epilogue on the shared
// memory, then waits on the control block for phases (blocking: it has nothing else to do) and
// takes class tiles like the calling thread. Errors are written into the control block.
/// <reference lib="deno.worker" />
import { openBlas } from "./blas.ts";
import { DONE, GEN, type NativeLayout, PHASE, QUIT, recordError, TileRunner } from "./_tiles.ts";

interface Init {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  layout: NativeLayout;
  tid: number;
  library: string;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

self.onmessage = (event: MessageEvent<Init>) => {
  const { module, memory, layout, tid, library } = event.data;
  let runner: TileRunner;
  try {
    runner = new TileRunner(module, memory, layout, tid, openBlas(library).lib);
  } catch (error) {
    self.postMessage({ type: "error", message: errorText(error) });
    return;
  }
  const ctl = new Int32Array(memory.buffer, layout.control, 16);
  // Read the generation before saying ready, so a phase started right after is not missed.
  let generation = Atomics.load(ctl, GEN);
  self.postMessage({ type: "ready" });
  setTimeout(() => {
    for (;;) {
      Atomics.wait(ctl, GEN, generation);
      generation = Atomics.load(ctl, GEN);
      const phase = Atomics.load(ctl, PHASE);
      if (phase === QUIT) break;
      try {
        runner.runPhase(phase);
      } catch (error) {
        recordError(memory.buffer, layout, `thread ${tid}: ${errorText(error)}`);
      }
      Atomics.add(ctl, DONE, 1);
      Atomics.notify(ctl, DONE);
    }
    self.close();
  }, 0);
};

// engine "wasm" inside tf.customGrad (train/_sync_step.ts): a prepared synchronous head of
// engine-wasm (engines/wasm: the worker threads compute while this thread waits in Atomics.wait;
// one thread, this one, where it may not block). The head of each call is handed to the run (its
// margins and state are read per run, nothing is prepared again). Sub-center ArcFace runs on its
// C·K rows of W (the gradient for W is C·K×D too); AdaCos as two runs of its scale-only head, the
// first at the old scale (engines/adacos.ts through runSync).
import {
  createSyncWasmHead,
  prepareSyncWasmHead,
  type SyncMode,
  type SyncWasmHead,
} from "../engines/wasm/engine.ts";
import { shapeKey } from "./_steps.ts";
import { SyncPath } from "./_sync_step.ts";

export { IDLE_RELEASE_MS } from "./_sync_step.ts";

/** How engine-wasm runs for tfjsHeadLoss. */
export interface WasmSettings {
  threads?: number;
  mode?: SyncMode;
}

/** engine-wasm's prepared heads of one loss, by shape (a head lays out again within its memory). */
export class WasmPath extends SyncPath<SyncWasmHead> {
  constructor(readonly settings: WasmSettings) {
    const { threads, mode } = settings;
    const options = { ...(threads === undefined ? {} : { threads }), ...(mode ? { mode } : {}) };
    super({
      key: (_spec, shape) => shapeKey({ N: shape.samples, D: shape.dims, C: shape.classes }),
      create: (spec, shape) => createSyncWasmHead(spec, shape, options),
      prepare: (spec, shape) => prepareSyncWasmHead(spec, shape, options),
    });
  }
}

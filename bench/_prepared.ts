// The path users take, as the bench times it: a head prepared once, run on new features AND weights
// every time (training changes both each step): two input sets of one size, alternated.
import type { HeadSpec } from "../mod.ts";
import type { Engine, EngineResult } from "../engines/engine.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import type { BenchSize } from "./_config.ts";
import { benchInput } from "./_inputs.ts";

/** A prepared head whose every `run()` gets the other of two input sets. */
export interface BenchHead {
  run(): Promise<EngineResult>;
  dispose(): Promise<void>;
}

let inputs: { size: BenchSize; sets: ReturnType<typeof benchInput>[] } | undefined;

/** One size's inputs at a time: the largest weights take 200 MB a set. */
function inputsOf(size: BenchSize) {
  if (inputs?.size !== size) {
    inputs = undefined; // let the old sets go before making the new ones
    inputs = { size, sets: [benchInput(size, 1), benchInput(size, 2)] };
  }
  return inputs.sets;
}

/** Prepares `head` at `size` on `engine`; each run alternates between two input sets. */
export async function prepareBenchHead(
  engine: Engine,
  head: HeadSpec,
  size: BenchSize,
): Promise<BenchHead> {
  const sets = inputsOf(size);
  const prepared = await prepareOn(engine, head, {
    samples: size.N,
    dims: size.D,
    classes: size.C,
  }, {});
  let calls = 0;
  return {
    run: () => prepared.run(sets[calls++ % 2], { reduction: "mean" }),
    dispose: () => prepared.dispose(),
  };
}

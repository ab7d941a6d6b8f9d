// The path users take, as the bench times it: a head prepared once, run on new features AND weights
// every time (training changes both each step): two input sets of one size, alternated. Our engines
// write each run's gradients into the previous run's arrays (`run(input, { into })`, as a training
// loop does; PyTorch's allocator reuses memory the same way); a peer returns new arrays.
import type { HeadSpec, SuccessorHeadSpec } from "../mod.ts";
import type { Engine, EngineResult } from "../engines/engine.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import type { BenchSize } from "./_config.ts";
import { benchInput } from "./_inputs.ts";

/** A prepared head whose every `run()` gets the other of two input sets. */
export interface BenchHead {
  run(): Promise<EngineResult>;
  dispose(): Promise<void>;
}

let inputs:
  | { size: BenchSize; rowsPerClass: number; sets: ReturnType<typeof benchInput>[] }
  | undefined;

/** One size's inputs at a time: the largest weights take 200 MB a set. */
function inputsOf(size: BenchSize, rowsPerClass: number) {
  if (inputs?.size !== size || inputs.rowsPerClass !== rowsPerClass) {
    inputs = undefined; // let the old sets go before making the new ones
    inputs = {
      size,
      rowsPerClass,
      sets: [benchInput(size, 1, rowsPerClass), benchInput(size, 2, rowsPerClass)],
    };
  }
  return inputs.sets;
}

/** Weight rows per class of a head: sub-center ArcFace's K, else 1. */
function rowsPerClassOf(head: HeadSpec | SuccessorHeadSpec): number {
  return "successor" in head && head.successor.kind === "subCenter" ? head.successor.subCenters : 1;
}

/**
 * Prepares `head` (a head loss or a successor head) at `size` on `engine`; each run alternates
 * between two input sets.
 */
export async function prepareBenchHead(
  engine: Engine,
  head: HeadSpec | SuccessorHeadSpec,
  size: BenchSize,
): Promise<BenchHead> {
  const rowsPerClass = rowsPerClassOf(head);
  const sets = inputsOf(size, rowsPerClass);
  const prepared = await prepareOn(engine, head, {
    samples: size.N,
    dims: size.D,
    classes: size.C * rowsPerClass,
  }, {});
  let calls = 0, last: EngineResult | undefined;
  return {
    run: async () => {
      const into = engine.writesInto ? last : undefined;
      return last = await prepared.run(sets[calls++ % 2], { reduction: "mean", into });
    },
    dispose: () => prepared.dispose(),
  };
}

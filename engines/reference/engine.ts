import type { HeadInput } from "../../losses/types.ts";
import { marginSoftmaxLoss } from "../../losses/margin_softmax.ts";
import type { Engine, EngineResult } from "../engine.ts";

/**
 * The float64 reference behind the engine contract: {@linkcode marginSoftmaxLoss}, exact to
 * rounding, on the calling thread. The baseline every other engine is compared with.
 */
export const referenceEngine: Engine<Float64Array> = {
  name: "reference",
  kind: "CPU",
  precision: "float64",
  threaded: false,
  checksValues: true,
  availability: () => Promise.resolve({ available: true }),
  supports: () => true,
  prepare(head) {
    return Promise.resolve({
      run(view, { reduction, logits }) {
        const input: HeadInput = {
          features: { rows: view.N, cols: view.D, data: view.x },
          weights: { rows: view.C, cols: view.D, data: view.w },
          labels: view.labels,
        };
        if (view.bias) input.bias = view.bias;
        const { logits: z, ...rest } = marginSoftmaxLoss(input, head, { reduction });
        const result: EngineResult<Float64Array> = rest;
        if (logits) result.logits = z;
        return Promise.resolve(result);
      },
      dispose() {},
    });
  },
};

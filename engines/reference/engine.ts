import type { HeadInput } from "../../losses/types.ts";
import { marginSoftmaxLoss } from "../../losses/margin_softmax.ts";
import { successorHeadLoss } from "../../losses/successor_head.ts";
import type { Engine, EngineResult, RunInput } from "../engine.ts";

function headInput(view: RunInput): HeadInput {
  const input: HeadInput = {
    features: { rows: view.N, cols: view.D, data: view.x },
    weights: { rows: view.C, cols: view.D, data: view.w },
    labels: view.labels,
  };
  if (view.bias) input.bias = view.bias;
  return input;
}

/**
 * The float64 reference behind the engine contract: {@linkcode marginSoftmaxLoss}, exact to
 * rounding, on the calling thread, and the successor losses' own machine for the successor heads
 * it supports (ElasticFace, MagFace, AdaFace). The baseline every other engine is compared with.
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
        const { logits: z, ...rest } = marginSoftmaxLoss(headInput(view), head, { reduction });
        const result: EngineResult<Float64Array> = rest;
        if (logits) result.logits = z;
        return Promise.resolve(result);
      },
      dispose() {},
    });
  },
  supportsSuccessor: () => true,
  prepareSuccessor(head) {
    return Promise.resolve({
      run(view, { reduction, logits, head: own }) {
        const input = headInput(view);
        const out = successorHeadLoss(input, own ?? head, { reduction });
        const { logits: z, state, margins, ...rest } = out;
        const result: EngineResult<Float64Array> = rest;
        if (Object.keys(state).length > 0) result.state = state;
        if (margins) result.margins = margins;
        if (logits) result.logits = z;
        return Promise.resolve(result);
      },
      dispose() {},
    });
  },
};

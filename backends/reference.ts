import { marginSoftmaxLoss } from "../mod.ts";
import type { Backend } from "./backend.ts";

/** The pure-TypeScript float64 reference, as a backend: the baseline of every comparison. */
export const referenceBackend: Backend = {
  name: "reference",
  kind: "CPU",
  precision: "float64",
  availability: () => Promise.resolve({ available: true }),
  prepare(head, input, reduction) {
    return Promise.resolve({
      run() {
        const r = marginSoftmaxLoss(input, head, { reduction });
        return Promise.resolve({
          loss: r.loss,
          losses: r.losses,
          gradFeatures: r.gradFeatures.data,
          gradWeights: r.gradWeights.data,
          gradBias: r.gradBias,
        });
      },
      dispose() {},
    });
  },
};

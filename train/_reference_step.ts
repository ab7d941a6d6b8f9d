// engine "reference": the float64 reference on the calling thread, on tensors read back
// synchronously (dataSync). The exact path tfjsHeadLoss has always had.
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { centerLoss } from "../losses/center.ts";
import { updateCenters } from "../losses/update_centers.ts";
import { matrix } from "../losses/matrix.ts";
import { tf } from "./tfjs_setup.ts";
import { type Call, type Step, weightGradients, weightValues } from "./_steps.ts";

/** One forward and backward in float64, the gradients handed to the backward pass. */
export function referenceStep(call: Call): Step {
  const { features, labels, N, D, C, spec, reduction, center } = call;
  const input = {
    features: matrix(N, D, Float64Array.from(features.dataSync())),
    weights: matrix(C, D, Float64Array.from(weightValues(call))),
    labels: Array.from(labels.dataSync()),
  };
  const result = marginSoftmaxLoss(input, spec, { reduction });
  let loss = result.loss;
  const gradFeatures = Float32Array.from(result.gradFeatures.data);
  let moveCenters = () => {};
  if (center) {
    const c = centerLoss({
      features: input.features,
      centers: center.centers,
      labels: input.labels,
    }, {
      reduction,
    });
    loss += center.weight * c.loss;
    for (let k = 0; k < gradFeatures.length; k++) {
      gradFeatures[k] += center.weight * c.gradFeatures.data[k];
    }
    // The paper's rule moves the centers once per mini-batch, outside the optimiser: only in a
    // backward pass, so that evaluating the loss leaves them alone.
    const next = updateCenters(center.centers, c.centerDelta, { alpha: center.alpha });
    moveCenters = () => center.centers.data.set(next.data);
  }
  const gradWeights = Float32Array.from(result.gradWeights.data);
  return {
    value: tf.scalar(loss),
    gradFunc: (dy: tf.Scalar) => {
      moveCenters();
      const scale = dy.dataSync()[0];
      return [
        tf.mul(tf.tensor2d(gradFeatures, [N, D]), scale),
        tf.zerosLike(labels),
        ...weightGradients(call, gradWeights, 1).map((g) => tf.mul(g, scale)),
      ];
    },
  };
}

// engine "reference": the float64 reference on the calling thread, on tensors read back
// synchronously (dataSync). The exact path tfjsHeadLoss has always had, and the only one that
// computes the successor heads (issue 13) so far.
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { successorHeadLoss } from "../losses/successor_head.ts";
import type { SuccessorHeadSpec } from "../losses/head_spec.ts";
import type { HeadInput } from "../losses/types.ts";
import { centerLoss } from "../losses/center.ts";
import { updateCenters } from "../losses/update_centers.ts";
import { matrix } from "../losses/matrix.ts";
import { tf } from "./tfjs_setup.ts";
import { type Call, type Step, tensorFrom, weightGradients, weightValues } from "./_steps.ts";

/** The call's tensors read back as a float64 head input. */
function inputOf(call: Call<unknown>): HeadInput {
  const { features, labels, N, D, C } = call;
  return {
    features: matrix(N, D, Float64Array.from(features.dataSync())),
    weights: matrix(C, D, Float64Array.from(weightValues(call))),
    labels: Array.from(labels.dataSync()),
  };
}

/**
 * The loss and gradients of one forward pass, and what a backward pass runs first (moving the
 * centers, handing over a successor head's state), as tf.customGrad's step.
 */
function step(
  call: Call<unknown>,
  input: HeadInput,
  result: {
    loss: number;
    gradFeatures: { data: Float64Array };
    gradWeights: { data: Float64Array };
  },
  onBackward: () => void,
): Step {
  const { labels, N, D, reduction, center } = call;
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
      onBackward();
      const scale = dy.dataSync()[0];
      return [
        tf.mul(tensorFrom(call.where, gradFeatures, [N, D]), scale),
        tf.zerosLike(labels),
        ...weightGradients(call, gradWeights, 1).map((g) => tf.mul(g, scale)),
      ];
    },
  };
}

/** One forward and backward in float64, the gradients handed to the backward pass. */
export function referenceStep(call: Call): Step {
  const input = inputOf(call);
  const result = marginSoftmaxLoss(input, call.spec, { reduction: call.reduction });
  return step(call, input, result, () => {});
}

/**
 * A successor head's forward and backward in float64; its state after this batch goes to `onState`
 * in the backward pass (once per gradient taken; an evaluation hands nothing over).
 */
export function successorStep(
  call: Call<SuccessorHeadSpec>,
  onState: ((state: Record<string, number>) => void) | undefined,
): Step {
  const input = inputOf(call);
  const result = successorHeadLoss(input, call.spec, { reduction: call.reduction });
  return step(call, input, result, () => onState?.({ ...result.state }));
}

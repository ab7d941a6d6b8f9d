// tfjsHeadLoss's successor heads on tfjs-webgpu, nothing read back: the target terms as tfjs ops
// (train/_webgpu_targets.ts), which tfjs differentiates, and the rest of the head on engine-webgpu
// (its scale-s head without margin, reading those targets from their tensor's GPU buffer and
// giving back ∂loss/∂f for them: train/_webgpu_step.ts). MagFace's regulariser is added to the
// loss as tfjs ops, reduced as the head's losses are.
import type { SuccessorHeadSpec } from "../losses/head_spec.ts";
import type { Reduction } from "../losses/types.ts";
import { kernelHead, kernelSubCenters } from "../engines/host/samples.ts";
import { tf } from "./tfjs_setup.ts";
import type { Call, CheckedCenter } from "./_steps.ts";
import type { WebgpuPath } from "./_webgpu_step.ts";
import { gpuTargets } from "./_webgpu_targets.ts";

type CustomGradient = Parameters<typeof tf.customGrad>[0];

/** A successor head's loss on tfjs-webgpu for one call: its head and tensors, checked. */
export type GpuSuccessorLoss = (
  spec: SuccessorHeadSpec,
  features: tf.Tensor2D,
  weights: tf.Tensor2D[],
  labels: tf.Tensor1D,
) => tf.Scalar;

/**
 * The loss of a successor head on `webgpu`'s path (see the module doc); `onState` receives the
 * head's state after the batch, empty for these stateless kinds, once per backward pass, as on the
 * other engines.
 */
export function gpuSuccessorLoss(
  where: string,
  webgpu: WebgpuPath,
  options: {
    reduction: Reduction;
    center?: CheckedCenter;
    onState?: (state: Record<string, number>) => void;
  },
): GpuSuccessorLoss {
  let now: SuccessorHeadSpec | undefined; // the head of the call being run
  const op = tf.customGrad(
    ((features: tf.Tensor2D, labels: tf.Tensor1D, f: tf.Tensor1D, ...rest: unknown[]) => {
      const save = rest.pop() as tf.GradSaveFunc, weights = rest as tf.Tensor2D[];
      const spec = now!, [N, D] = features.shape;
      const C = weights.reduce((sum, w) => sum + w.shape[0], 0);
      const call: Call = {
        where,
        spec: kernelHead(spec),
        features,
        weights,
        labels,
        N,
        D,
        C,
        reduction: options.reduction,
        center: options.center,
      };
      const step = webgpu.step(call, save, {
        f,
        scale: spec.successor.scale as number,
        subCenters: kernelSubCenters(spec),
      });
      return {
        value: step.value,
        gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => {
          const grads = step.gradFunc(dy, saved);
          options.onState?.({});
          return grads;
        },
      };
    }) as CustomGradient,
  ) as (...t: tf.Tensor[]) => tf.Scalar;
  return (spec, features, weights, labels) => {
    const ints = labels.dtype === "int32" ? labels : tf.cast(labels, "int32") as tf.Tensor1D;
    const { f, extra } = gpuTargets(where, spec, features, weights, ints);
    now = spec;
    const value = op(features, labels, f, ...weights);
    if (!extra) return value;
    return tf.add(value, options.reduction === "mean" ? tf.mean(extra) : tf.sum(extra));
  };
}

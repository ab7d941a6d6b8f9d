// The shape of a one-shot call's input (headLoss, partialFcLoss), checked before anything starts.
import type { HeadInput } from "../losses/types.ts";
import { viewHeadInput } from "../losses/checks.ts";
import type { HeadShape } from "./engine.ts";

/** The input's samples, dims and classes; a malformed input throws, naming what is wrong. */
export function inputShape(where: string, input: HeadInput): HeadShape {
  const shape = {
    samples: input?.features?.rows,
    dims: input?.features?.cols,
    classes: input?.weights?.rows,
  };
  if (!Object.values(shape).every((v) => Number.isInteger(v) && v > 0)) {
    viewHeadInput(where, input, { classes: "weights", allowBias: true }); // throws, naming the input
  }
  return shape;
}

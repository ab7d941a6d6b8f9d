/**
 * The checks every loss runs, for the folders that build on losses/ (engines, adapters, the
 * training adapter): one message style, "<where>: <argument> must …, got …". The `_` files they
 * come from are private to losses/; this module is their public face.
 *
 * @module
 */
export { checkHeadSpec, MAX_PSI_MARGIN } from "./_head_spec_check.ts";
export {
  assertFiniteOutput,
  booleanOption,
  type CheckedHead,
  type CheckedHeadView,
  checkHeadInput,
  checkLabels,
  checkMatrix,
  describe,
  marginGradientOption,
  numberOption,
  optionsObject,
  type Range,
  reductionOption,
  viewHeadInput,
  viewMatrix,
} from "./_validate.ts";
export { NORM_EPS } from "./_constants.ts";

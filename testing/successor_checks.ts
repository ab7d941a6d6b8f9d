// Checks of the successor losses (issue 13): their PyTorch fixtures (fixtures/manifest.json's
// successorCases, sequences of steps with the state carried), finite differences, no NaN.
import { type HeadInput, type HeadResult, matrix } from "../mod.ts";
import { assertClose } from "./assert_close.ts";
import { type ArrayRef, fixtureArray, type FixtureCase } from "./fixtures.ts";
import { checkFiniteDifferences, FIXTURE_RTOL, recordError, reportWorst } from "./loss_checks.ts";

/** One step of a successor case: its inputs and the expected outputs and state. */
export type SuccessorStep = Record<string, ArrayRef>;

/** A successor case: options (with the initial state, if any) and one or more steps. */
export interface SuccessorCase {
  name: string;
  loss: string;
  options: Record<string, unknown>;
  N: number;
  D: number;
  C: number;
  tags: string[];
  stateFields: string[];
  steps: SuccessorStep[];
}

/** A successor loss under test: a head result, with `state` for the stateful ones. */
// deno-lint-ignore no-explicit-any
export type SuccessorLoss = (input: HeadInput, options?: any) => HeadResult & {
  state?: object;
  margins?: Float64Array;
};

let manifest: SuccessorCase[] | undefined;

/** Every successor case of one loss; throws when there are none. */
export function successorCasesOf(loss: string): SuccessorCase[] {
  manifest ??= JSON.parse(
    Deno.readTextFileSync(new URL("../fixtures/manifest.json", import.meta.url)),
  ).successorCases;
  const cases = manifest!.filter((c) => c.loss === loss);
  if (cases.length === 0) throw new Error(`no successor fixture cases for loss "${loss}"`);
  return cases;
}

function arrayOf(c: SuccessorCase, step: SuccessorStep, name: string): Float64Array {
  return fixtureArray({ name: c.name, arrays: step } as unknown as FixtureCase, name);
}

/** The input of one step of a case. */
export function successorInput(c: SuccessorCase, step: SuccessorStep): HeadInput {
  const features = arrayOf(c, step, "features"), weights = arrayOf(c, step, "weights");
  const labels = arrayOf(c, step, "labels");
  return {
    features: matrix(labels.length, c.D, Float64Array.from(features)),
    weights: matrix(weights.length / c.D, c.D, Float64Array.from(weights)),
    labels: Array.from(labels),
  };
}

const OUTPUTS = ["losses", "logits", "gradFeatures", "gradWeights"] as const;

/**
 * Runs every successor case of `loss` step by step, passing each step's `result.state` to the next
 * as `options.state`, and compares every output and the state after every step at 1e-10 relative.
 */
export async function checkSuccessorFixtures(
  t: Deno.TestContext,
  loss: string,
  fn: SuccessorLoss,
) {
  const cases = successorCasesOf(loss);
  for (const c of cases) {
    await t.step(c.name, () => {
      const options = structuredClone(c.options);
      for (const [k, step] of c.steps.entries()) {
        const input = successorInput(c, step);
        const snapshot = JSON.stringify([input, Array.from(input.features.data)]);
        const optionsBefore = JSON.stringify(options);
        const result = fn(input, options);
        if (JSON.stringify(options) !== optionsBefore) {
          throw new Error(`${c.name}: the loss changed its options`);
        }
        const where = `${c.name} step ${k + 1}/${c.steps.length}`;
        const compare = (name: string, actual: ArrayLike<number>) => {
          const { relError } = assertClose(actual, arrayOf(c, step, name), {
            rtol: FIXTURE_RTOL,
            name: `${where} ${name}`,
          });
          recordError(loss, relError, `${where} ${name}`);
        };
        compare("loss", [result.loss]);
        for (const name of OUTPUTS) {
          const value = result[name];
          compare(name, value instanceof Float64Array ? value : value.data);
        }
        if (c.stateFields.length > 0) {
          if (!result.state) throw new Error(`${where}: the result has no state`);
          const state = result.state as Record<string, number>;
          compare("state", c.stateFields.map((f) => state[f]));
          options.state = result.state;
        }
        if (step.margins) compare("margins", result.margins!);
        if (JSON.stringify([input, Array.from(input.features.data)]) !== snapshot) {
          throw new Error(`${where}: the loss changed its input`);
        }
      }
    });
  }
  reportWorst(loss, cases.length);
}

/**
 * Finite differences of a successor loss for `variants` × every reduction on the given inputs,
 * with the batch statistics frozen by the variant's options (a state update is not differentiated
 * by the references, so the check runs where the state does not move).
 */
export function checkSuccessorFiniteDifferences(
  loss: string,
  fn: SuccessorLoss,
  inputs: HeadInput[],
  variants: Record<string, unknown>[],
) {
  for (const [v, variant] of variants.entries()) {
    for (const reduction of ["mean", "sum", "none"]) {
      for (const [s, input] of inputs.entries()) {
        checkFiniteDifferences(
          fn,
          input,
          { ...variant, reduction },
          `${loss} ${JSON.stringify(variant)} ${reduction} input ${s} (${v})`,
        );
      }
    }
  }
}

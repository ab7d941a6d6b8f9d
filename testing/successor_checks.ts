// Checks of the successor losses (issue 13): their PyTorch fixtures (fixtures/manifest.json's
// successorCases, sequences of steps with the state carried), finite differences, no NaN.
import assert from "node:assert";
import {
  ENGINE_NAMES,
  type HeadInput,
  headLoss,
  type HeadResult,
  matrix,
  prepareHead,
  type SuccessorHeadSpec,
} from "../mod.ts";
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

/** Every successor case of the manifest (`successorCases`), in its order. */
export function successorCases(): SuccessorCase[] {
  manifest ??= JSON.parse(
    Deno.readTextFileSync(new URL("../fixtures/manifest.json", import.meta.url)),
  ).successorCases;
  return manifest!;
}

/** Every successor case of one loss; throws when there are none. */
export function successorCasesOf(loss: string): SuccessorCase[] {
  const cases = successorCases().filter((c) => c.loss === loss);
  if (cases.length === 0) throw new Error(`no successor fixture cases for loss "${loss}"`);
  return cases;
}

/** One array of one step of a case, as float64. */
export function successorArray(c: SuccessorCase, step: SuccessorStep, name: string): Float64Array {
  return fixtureArray({ name: c.name, arrays: step } as unknown as FixtureCase, name);
}

/** The input of one step of a case. */
export function successorInput(c: SuccessorCase, step: SuccessorStep): HeadInput {
  const features = successorArray(c, step, "features"),
    weights = successorArray(c, step, "weights");
  const labels = successorArray(c, step, "labels");
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
          const { relError } = assertClose(actual, successorArray(c, step, name), {
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

/**
 * Finite differences for a loss whose reference detaches the feature norms (AdaFace): each feature
 * is moved along its sphere (x_i + h·e_k rescaled to ‖x_i‖), so that the norms and the batch
 * statistics stay put, and the analytic gradient must be tangent (g_i·x̂_i ≈ 0) with its projection
 * matching the numeric one; the weights are checked as usual.
 */
export function checkTangentFiniteDifferences(
  fn: SuccessorLoss,
  input: HeadInput,
  options: object,
  name: string,
) {
  const result = fn(input, options);
  const { rows: N, cols: D } = input.features;
  const x = Float64Array.from(input.features.data), g = result.gradFeatures.data;
  let scale = 0;
  for (const v of g) scale = Math.max(scale, Math.abs(v));
  const numeric = new Float64Array(N * D), analytic = new Float64Array(N * D);
  for (let i = 0; i < N; i++) {
    const row = x.subarray(i * D, (i + 1) * D);
    const norm = Math.hypot(...row);
    let radial = 0;
    for (let d = 0; d < D; d++) radial += g[i * D + d] * row[d] / norm;
    assertClose([radial], [0], { rtol: 0, atol: 1e-12 * scale + 1e-14, name: `${name} radial` });
    for (let d = 0; d < D; d++) {
      analytic[i * D + d] = g[i * D + d] - radial * row[d] / norm;
      const at = (h: number) => {
        const copy = Float64Array.from(x);
        copy[i * D + d] += h;
        const n = Math.hypot(...copy.subarray(i * D, (i + 1) * D));
        for (let k = 0; k < D; k++) copy[i * D + k] *= norm / n;
        return fn({ ...input, features: { ...input.features, data: copy } }, options).loss;
      };
      const h = 1e-6 * norm;
      numeric[i * D + d] = (at(h) - at(-h)) / (2 * h);
    }
  }
  assertClose(analytic, numeric, {
    rtol: 0,
    atol: 1e-6 * scale + 1e-8,
    name: `${name} gradFeatures`,
  });
  checkWeightsOnly(fn, input, options, name);
}

function checkWeightsOnly(fn: SuccessorLoss, input: HeadInput, options: object, name: string) {
  const analytic = fn(input, options).gradWeights.data;
  const w = input.weights.data;
  const numeric = new Float64Array(w.length);
  for (let k = 0; k < w.length; k++) {
    const h = 1e-6 * Math.max(1, Math.abs(w[k]));
    const at = (v: number) => {
      const copy = Float64Array.from(w);
      copy[k] = v;
      return fn({ ...input, weights: { ...input.weights, data: copy } }, options).loss;
    };
    numeric[k] = (at(w[k] + h) - at(w[k] - h)) / (2 * h);
  }
  let scale = 0;
  for (const v of analytic) scale = Math.max(scale, Math.abs(v));
  assertClose(analytic, numeric, {
    rtol: 0,
    atol: 1e-6 * scale + 1e-8,
    name: `${name} gradWeights`,
  });
}

/**
 * The engines on a successor head that only the reference computes, but for `alsoComputedBy` (the
 * engines that compute it too, checked against the reference in engines/successor_test.ts, and
 * skipped here): the reference engine (through `prepareHead`) returns exactly the loss page's
 * result and state; every other engine refuses, naming the hook.
 */
export async function checkReferenceOnlySuccessor(
  head: SuccessorHeadSpec,
  expected: HeadResult & { state?: object },
  input: HeadInput,
  alsoComputedBy: readonly string[] = [],
): Promise<void> {
  const kind = JSON.stringify(head.successor.kind).replace(/"/g, '\\"');
  const shape = {
    samples: input.features.rows,
    dims: input.features.cols,
    classes: input.weights.rows,
  };
  for (const engine of ENGINE_NAMES) {
    if (engine === "reference") {
      const got = await headLoss(input, head, { engine });
      assert.equal(got.loss, expected.loss);
      assert.deepEqual(Array.from(got.gradFeatures.data), Array.from(expected.gradFeatures.data));
      assert.deepEqual(got.state, expected.state);
      continue;
    }
    if (alsoComputedBy.includes(engine)) continue;
    await assert.rejects(
      () => prepareHead(head, shape, { engine }),
      new RegExp(
        `head\\.successor \\(${kind}\\) is a successor hook that engine-${engine} does not compute`,
      ),
    );
  }
}

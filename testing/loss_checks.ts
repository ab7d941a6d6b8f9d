// Checks every loss test runs: parity with the PyTorch fixtures, finite differences, no NaN.
import { type HeadInput, type HeadResult, matrix } from "../mod.ts";
import { assertClose } from "./assert_close.ts";
import { fixtureArray, type FixtureCase, fixtureCases, fixtureInput } from "./fixtures.ts";
import { gaussian, seededRandom } from "./random.ts";

/** A loss under test. */
// deno-lint-ignore no-explicit-any
export type HeadLoss = (input: HeadInput, options?: any) => HeadResult;

/** The fixture tolerance of the reference: relative to the largest expected magnitude. */
export const FIXTURE_RTOL = 1e-10;

/** The outputs compared for a head loss. */
const HEAD_OUTPUTS = ["losses", "logits", "gradFeatures", "gradWeights", "gradBias"] as const;

/** Builds a case's input from the fixture arrays. */
export function fixtureHeadInput(c: FixtureCase): HeadInput {
  const input: HeadInput = {
    features: matrix(c.N, c.D, fixtureInput(c, "features")),
    weights: matrix(c.C, c.D, fixtureInput(c, "weights")),
    labels: Array.from(fixtureArray(c, "labels")),
  };
  if (c.arrays.bias) input.bias = fixtureInput(c, "bias");
  return input;
}

/** Every fixture case of one loss; throws when there are none, so the test cannot pass empty. */
export function casesOf(loss: string): FixtureCase[] {
  const cases = fixtureCases().filter((c) => c.loss === loss);
  if (cases.length === 0) throw new Error(`no fixture cases for loss "${loss}"`);
  return cases;
}

/** The worst relative error seen so far per loss, printed by {@linkcode reportWorst}. */
const worst = new Map<string, { rel: number; where: string; cases: number }>();

/** Records one comparison's relative error. */
export function recordError(loss: string, rel: number, where: string) {
  const w = worst.get(loss) ?? { rel: 0, where: "", cases: 0 };
  if (rel >= w.rel) Object.assign(w, { rel, where });
  worst.set(loss, w);
}

/** Prints the worst relative error measured for a loss over its fixture cases. */
export function reportWorst(loss: string, cases: number) {
  const w = worst.get(loss);
  if (!w) return;
  console.log(
    `${loss}: worst relative error ${
      w.rel.toExponential(2)
    } over ${cases} fixture cases (${w.where})`,
  );
}

function snapshot(input: HeadInput): number[][] {
  return [input.features.data, input.weights.data, input.labels, input.bias ?? []].map((a) =>
    Array.from(a)
  );
}

/** Runs every fixture case of `loss` through `fn` as one step each. */
export async function checkFixtures(t: Deno.TestContext, loss: string, fn: HeadLoss) {
  const cases = casesOf(loss);
  for (const c of cases) {
    await t.step(c.name, () => {
      const input = fixtureHeadInput(c);
      const before = snapshot(input);
      const result = fn(input, c.options);
      assertClose([result.loss], fixtureArray(c, "loss"), {
        rtol: FIXTURE_RTOL,
        name: `${c.name} loss`,
      });
      for (const name of HEAD_OUTPUTS) {
        if (!c.arrays[name]) continue;
        const value = result[name];
        if (value === undefined) throw new Error(`${c.name}: result has no ${name}`);
        const actual = value instanceof Float64Array ? value : value.data;
        const { relError } = assertClose(actual, fixtureArray(c, name), {
          rtol: FIXTURE_RTOL,
          name: `${c.name} ${name}`,
        });
        recordError(loss, relError, `${c.name} ${name}`);
      }
      if (JSON.stringify(snapshot(input)) !== JSON.stringify(before)) {
        throw new Error(`${c.name}: the loss changed its input`);
      }
    });
  }
  reportWorst(loss, cases.length);
}

/** Random features, weights and labels with varied norms. */
export function randomHeadInput(
  size: { N: number; D: number; C: number; bias?: boolean },
  seed: number,
): HeadInput {
  const normal = gaussian(seededRandom(seed));
  const rows = (n: number) =>
    Array.from({ length: n }, () => {
      const norm = 0.5 + 2 * Math.abs(normal());
      return Array.from({ length: size.D }, () => normal() * norm);
    }).flat();
  const labels = Array.from({ length: size.N }, (_, i) => (i * 7 + seed) % size.C);
  const input: HeadInput = {
    features: matrix(size.N, size.D, rows(size.N)),
    weights: matrix(size.C, size.D, rows(size.C)),
    labels,
  };
  if (size.bias) input.bias = Array.from({ length: size.C }, () => normal());
  return input;
}

/**
 * Compares every analytic gradient with central finite differences of the loss, element by element:
 * |analytic − numeric| ≤ 1e-6·max|analytic| + 1e-8.
 */
export function checkFiniteDifferences(
  fn: HeadLoss,
  input: HeadInput,
  options: object,
  name: string,
) {
  const result = fn(input, options);
  const targets: [string, Float64Array | Float32Array, Float64Array][] = [
    ["gradFeatures", input.features.data, result.gradFeatures.data as Float64Array],
    ["gradWeights", input.weights.data, result.gradWeights.data as Float64Array],
  ];
  if (input.bias) targets.push(["gradBias", input.bias as Float64Array, result.gradBias!]);
  for (const [gradName, data, analytic] of targets) {
    const numeric = new Float64Array(data.length);
    for (let k = 0; k < data.length; k++) {
      const copy = Float64Array.from(data);
      const h = 1e-6 * Math.max(1, Math.abs(copy[k]));
      const at = (v: number) => {
        copy[k] = v;
        const shifted: HeadInput = { ...input };
        if (gradName === "gradFeatures") shifted.features = { ...input.features, data: copy };
        if (gradName === "gradWeights") shifted.weights = { ...input.weights, data: copy };
        if (gradName === "gradBias") shifted.bias = copy;
        return fn(shifted, options).loss;
      };
      const v = data[k];
      numeric[k] = (at(v + h) - at(v - h)) / (2 * h);
    }
    let scale = 0;
    for (const a of analytic) scale = Math.max(scale, Math.abs(a));
    assertClose(analytic, numeric, {
      rtol: 0,
      atol: 1e-6 * scale + 1e-8,
      name: `${name} ${gradName}`,
    });
  }
}

/** Asserts that every number in a result is finite. */
export function assertAllFinite(result: HeadResult, name: string) {
  const arrays = [
    [result.loss],
    result.losses,
    result.logits.data,
    result.gradFeatures.data,
    result.gradWeights.data,
  ];
  for (const a of arrays) {
    for (const v of a) if (!Number.isFinite(v)) throw new Error(`${name}: non-finite output ${v}`);
  }
}

/**
 * Registers the tests every head loss must pass: parity with each of its PyTorch fixture cases, and
 * finite differences for each option set of `variants`, every reduction, a 3×4×5 and a 1×3×2 head.
 */
export function testHeadLoss(
  loss: string,
  fn: HeadLoss,
  variants: Record<string, unknown>[],
  options: { bias?: boolean } = {},
) {
  Deno.test(`${loss}: matches the PyTorch fixtures`, (t) => checkFixtures(t, loss, fn));
  Deno.test(`${loss}: gradients agree with finite differences`, () => {
    for (const [v, variant] of variants.entries()) {
      for (const reduction of ["mean", "sum", "none"]) {
        for (const [s, size] of [{ N: 3, D: 4, C: 5 }, { N: 1, D: 3, C: 2 }].entries()) {
          const input = randomHeadInput(
            { ...size, ...options },
            100 * v + 10 * s + reduction.length,
          );
          const name = `${loss} ${JSON.stringify(variant)} ${reduction} N=${size.N}`;
          checkFiniteDifferences(fn, input, { ...variant, reduction }, name);
        }
      }
    }
  });
}

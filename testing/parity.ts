// Runs one engine on one fixture case and measures every output against the float64 PyTorch
// values. Shared by adapters/parity_test.ts, the engines' tests and bench/parity.ts, so all judge
// the same way.
import { HEAD_CATALOG, type HeadSpec, type Reduction } from "../mod.ts";
import type { Engine, EngineResult } from "../engines/engine.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import { closeness } from "./assert_close.ts";
import { fixtureArray, type FixtureCase } from "./fixtures.ts";
import { fixtureHeadInput } from "./loss_checks.ts";
import type { Tolerance } from "./tolerances.ts";

/** The outputs a backend returns and the fixtures hold, compared one by one. */
export const PARITY_OUTPUTS = [
  "loss",
  "losses",
  "gradFeatures",
  "gradWeights",
  "gradBias",
] as const;

/** One compared output. */
export type ParityOutput = typeof PARITY_OUTPUTS[number];

/** What one engine did on one fixture case. */
export interface CaseParity {
  /** Why the case did not run on this backend (not a head loss, or the backend declines the head). */
  skipped?: string;
  /** Relative error of each output the case has: max |actual − expected| / max |expected|. */
  errors: Partial<Record<ParityOutput, number>>;
  /** What went wrong: an output beyond tolerance or missing, a changed input, an exception. */
  failures: string[];
}

/** The head a case describes, or why it has none (a loss that is not in HEAD_CATALOG). */
export function caseHead(c: FixtureCase): HeadSpec | string {
  const entry = HEAD_CATALOG.find((e) => e.name === c.loss);
  return entry ? entry.head(c.options) : `"${c.loss}" is not a head loss of HEAD_CATALOG`;
}

function outputOf(result: EngineResult, name: ParityOutput): ArrayLike<number> | undefined {
  if (name === "loss") return [result.loss];
  if (name === "losses" || name === "gradBias") return result[name];
  return result[name].data;
}

/** Runs `engine` on case `c` in the engine's own precision and compares with the fixtures. */
export async function checkCase(
  engine: Engine,
  c: FixtureCase,
  tolerance: Tolerance,
): Promise<CaseParity> {
  const head = caseHead(c);
  if (typeof head === "string") return { skipped: head, errors: {}, failures: [] };
  const supported = engine.supports(head);
  if (supported !== true) return { skipped: supported, errors: {}, failures: [] };
  const input = fixtureHeadInput(c);
  const inputs = [input.features.data, input.weights.data, input.bias ?? []];
  const before = inputs.map((a) => Float64Array.from(a));
  const reduction = (c.options.reduction ?? "mean") as Reduction;
  const parity: CaseParity = { errors: {}, failures: [] };
  let result: EngineResult;
  try {
    const shape = {
      samples: input.features.rows,
      dims: input.features.cols,
      classes: input.weights.rows,
    };
    await using prepared = await prepareOn(engine, head, shape, {});
    result = await prepared.run(input, { reduction });
  } catch (error) {
    parity.failures.push(`threw ${error instanceof Error ? error.message : String(error)}`);
    return parity;
  }
  for (const name of PARITY_OUTPUTS) {
    if (!c.arrays[name]) continue;
    const actual = outputOf(result, name);
    if (!actual) {
      parity.failures.push(`${name}: missing from the result`);
      continue;
    }
    const expected = fixtureArray(c, name);
    if (actual.length !== expected.length) {
      parity.failures.push(`${name}: length ${actual.length}, expected ${expected.length}`);
      continue;
    }
    const { relError, worstIndex } = closeness(actual, expected);
    parity.errors[name] = relError;
    if (!(relError <= tolerance.rtol)) {
      parity.failures.push(
        `${name}: relative error ${relError.toExponential(2)} > rtol ${tolerance.rtol} ` +
          `(element ${worstIndex}: ${actual[worstIndex]} vs ${expected[worstIndex]})`,
      );
    }
  }
  inputs.forEach((a, k) => {
    if (a.length !== before[k].length || before[k].some((v, j) => !Object.is(v, a[j]))) {
      parity.failures.push("the engine changed its input arrays");
    }
  });
  return parity;
}

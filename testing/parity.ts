// Runs one engine on one fixture case and measures every output against the float64 PyTorch
// values. Shared by adapters/parity_test.ts, the engines' tests and bench/parity.ts, so all judge
// the same way. The cases are the head-loss cases of the manifest and its successor cases (issue 13:
// sequences of steps, the state carried from step to step), see {@linkcode parityCases}.
import {
  adaCosHead,
  adaFaceHead,
  curricularFaceHead,
  elasticFaceHead,
  HEAD_CATALOG,
  type HeadInput,
  type HeadSpec,
  magFaceHead,
  type Reduction,
  subCenterArcFaceHead,
  type SuccessorHeadSpec,
} from "../mod.ts";
import type { Engine, EngineResult, RunOptions } from "../engines/engine.ts";
import { type PreparedHead, prepareOn } from "../engines/prepare_head.ts";
import { closeness } from "./assert_close.ts";
import { fixtureArray, type FixtureCase, fixtureCases } from "./fixtures.ts";
import { fixtureHeadInput } from "./loss_checks.ts";
import {
  successorArray,
  type SuccessorCase,
  successorCases,
  successorInput,
} from "./successor_checks.ts";
import type { Tolerance } from "./tolerances.ts";

/**
 * The outputs a backend returns and the fixtures hold, compared one by one: a successor case also
 * has the state after each step and ElasticFace's margins as applied.
 */
export const PARITY_OUTPUTS = [
  "loss",
  "losses",
  "gradFeatures",
  "gradWeights",
  "gradBias",
  "state",
  "margins",
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
  if (name === "losses" || name === "gradBias" || name === "margins") return result[name];
  if (name === "state") return undefined; // a successor case's, read by its stateFields
  return result[name].data;
}

/** Compares one output with its expected values, recording the worst error and any failure. */
function compare(
  parity: CaseParity,
  name: ParityOutput,
  actual: ArrayLike<number> | undefined,
  expected: Float64Array,
  tolerance: Tolerance,
  where = "",
): void {
  if (!actual) {
    parity.failures.push(`${where}${name}: missing from the result`);
    return;
  }
  if (actual.length !== expected.length) {
    parity.failures.push(`${where}${name}: length ${actual.length}, expected ${expected.length}`);
    return;
  }
  const { relError, worstIndex } = closeness(actual, expected);
  parity.errors[name] = Math.max(parity.errors[name] ?? 0, relError);
  if (!(relError <= tolerance.rtol)) {
    parity.failures.push(
      `${where}${name}: relative error ${relError.toExponential(2)} > rtol ${tolerance.rtol} ` +
        `(element ${worstIndex}: ${actual[worstIndex]} vs ${expected[worstIndex]})`,
    );
  }
}

/** One prepared run of `head` on `engine`, disposed after; a thrown error comes back as its message. */
async function runOnce(
  engine: Engine,
  head: HeadSpec | SuccessorHeadSpec,
  input: HeadInput,
  reduction: Reduction,
): Promise<EngineResult | string> {
  const shape = {
    samples: input.features.rows,
    dims: input.features.cols,
    classes: input.weights.rows,
  };
  try {
    await using prepared = await prepareOn(engine, head, shape, {});
    return await prepared.run(input, { reduction });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Runs a successor case's steps as a training loop does: `head` prepared once per input shape,
 * each step's state passed to its run (`RunOptions.state`); an error is its message.
 */
function stepRunner(engine: Engine, head: SuccessorHeadSpec) {
  let prepared: Promise<PreparedHead> | undefined, key = "";
  const release = async () => await (await prepared?.catch(() => undefined))?.dispose();
  return {
    async run(input: HeadInput, options: RunOptions): Promise<EngineResult | string> {
      const shape = {
        samples: input.features.rows,
        dims: input.features.cols,
        classes: input.weights.rows,
      };
      try {
        if (key !== JSON.stringify(shape)) {
          await release();
          key = JSON.stringify(shape);
          prepared = prepareOn(engine, head, shape, {});
        }
        return await (await prepared!).run(input, options);
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    },
    [Symbol.asyncDispose]: release,
  };
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
  const result = await runOnce(engine, head, input, reduction);
  if (typeof result === "string") {
    parity.failures.push(`threw ${result}`);
    return parity;
  }
  for (const name of PARITY_OUTPUTS) {
    if (!c.arrays[name]) continue;
    compare(parity, name, outputOf(result, name), fixtureArray(c, name), tolerance);
  }
  inputs.forEach((a, k) => {
    if (a.length !== before[k].length || before[k].some((v, j) => !Object.is(v, a[j]))) {
      parity.failures.push("the engine changed its input arrays");
    }
  });
  return parity;
}

/** The head of a successor case: its loss's `…Head` builder on the case's options. */
export function successorCaseHead(
  loss: string,
  options: Record<string, unknown>,
): SuccessorHeadSpec | undefined {
  return SUCCESSOR_HEADS[loss]?.(options);
}

/** The head builder of each successor loss of the manifest's `successorCases`, by loss name. */
const SUCCESSOR_HEADS: Record<string, (options: Record<string, unknown>) => SuccessorHeadSpec> = {
  subCenterArcFace: subCenterArcFaceHead,
  curricularFace: curricularFaceHead,
  adaFace: adaFaceHead,
  magFace: magFaceHead,
  adaCos: adaCosHead,
  elasticFace: elasticFaceHead,
};

/**
 * Whether `engine` computes a successor head, or why not, as prepareHead decides it: the engine's
 * own answer (`supportsSuccessor`, with a `prepareSuccessor` to run it).
 */
export function successorSupport(engine: Engine, head: SuccessorHeadSpec): true | string {
  const answer = engine.supportsSuccessor?.(head);
  if (typeof answer === "string") return answer;
  return answer === true && engine.prepareSuccessor
    ? true
    : `${engine.name} computes no successor head (no supportsSuccessor / prepareSuccessor)`;
}

/**
 * Runs `engine` on a successor case step by step, on one head prepared from the case's options
 * (its initial state) and each step given the state the engine returned for the step before
 * (`RunOptions.state`, as a training loop passes it), and compares the loss, the per-sample losses, both gradients, the
 * state after every step and ElasticFace's margins with the fixtures. Errors are the worst over the
 * steps.
 */
export async function checkSuccessorCase(
  engine: Engine,
  c: SuccessorCase,
  tolerance: Tolerance,
): Promise<CaseParity> {
  const build = SUCCESSOR_HEADS[c.loss];
  if (!build) {
    return { skipped: `"${c.loss}" has no successor head builder`, errors: {}, failures: [] };
  }
  const supported = successorSupport(engine, build(c.options));
  if (supported !== true) return { skipped: supported, errors: {}, failures: [] };
  const reduction = (c.options.reduction ?? "mean") as Reduction;
  const parity: CaseParity = { errors: {}, failures: [] };
  let state = c.options.state as Record<string, number> | undefined;
  await using steps = stepRunner(engine, build(c.options));
  for (const [k, step] of c.steps.entries()) {
    const where = c.steps.length > 1 ? `step ${k + 1}/${c.steps.length} ` : "";
    const input = successorInput(c, step);
    const before = [input.features.data, input.weights.data].map((a) => Float64Array.from(a));
    const result = await steps.run(input, { reduction, ...(state ? { state } : {}) });
    if (typeof result === "string") {
      parity.failures.push(`${where}threw ${result}`);
      return parity;
    }
    const expected = (name: string) => successorArray(c, step, name);
    compare(parity, "loss", [result.loss], expected("loss"), tolerance, where);
    compare(parity, "losses", result.losses, expected("losses"), tolerance, where);
    compare(
      parity,
      "gradFeatures",
      result.gradFeatures.data,
      expected("gradFeatures"),
      tolerance,
      where,
    );
    compare(
      parity,
      "gradWeights",
      result.gradWeights.data,
      expected("gradWeights"),
      tolerance,
      where,
    );
    if (c.stateFields.length > 0) {
      const next = result.state;
      compare(
        parity,
        "state",
        next && c.stateFields.map((f) => next[f]),
        expected("state"),
        tolerance,
        where,
      );
      state = next;
    }
    if (step.margins) {
      compare(parity, "margins", result.margins, expected("margins"), tolerance, where);
    }
    if (
      [input.features.data, input.weights.data].some((a, j) =>
        a.some((v, i) => !Object.is(v, before[j][i]))
      )
    ) {
      parity.failures.push(`${where}the engine changed its input arrays`);
    }
  }
  return parity;
}

/** One case of the parity matrix: a head-loss fixture case or a successor case, and its check. */
export interface ParityCase {
  /** The case's name in the manifest. */
  name: string;
  /** Its loss (a row of the matrix). */
  loss: string;
  /** Whether it is a successor case (a sequence of steps with the state carried). */
  successor: boolean;
  /** Runs an engine on it and compares with the fixtures. */
  check(engine: Engine, tolerance: Tolerance): Promise<CaseParity>;
}

/**
 * Every case of the parity matrix: the manifest's head-loss `cases`, then its `successorCases`
 * (sub-center ArcFace, CurricularFace, AdaFace, MagFace, AdaCos, ElasticFace).
 */
export function parityCases(): ParityCase[] {
  return [
    ...fixtureCases().map((c) => ({
      name: c.name,
      loss: c.loss,
      successor: false,
      check: (engine: Engine, tolerance: Tolerance) => checkCase(engine, c, tolerance),
    })),
    ...successorCases().map((c) => ({
      name: c.name,
      loss: c.loss,
      successor: true,
      check: (engine: Engine, tolerance: Tolerance) => checkSuccessorCase(engine, c, tolerance),
    })),
  ];
}

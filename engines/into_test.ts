// `run(input, { into })` on every engine: the gradients land in the given result's arrays (stale
// values there never leak into the answer), equal to a run without `into`; an `into` of the wrong
// size or precision, or sharing memory with the input or with a run in flight, is a named error.
import assert from "node:assert";
import { adaCosHead, arcFaceHead, softmaxHead, subCenterArcFaceHead } from "../mod.ts";
import { assertClose } from "../testing/assert_close.ts";
import { shapeOf } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import type { HeadInput } from "../losses/types.ts";
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import { prepareOn } from "./prepare_head.ts";
import { ENGINES } from "./registry.ts";
import type { Engine, EngineResult } from "./engine.ts";

const SIZE = { N: 6, D: 9, C: 12 };
/** Past one class tile of every engine: every tile of ∂W written over the stale values. */
const MANY = { N: 5, D: 20, C: 2600 };

/** The input with labels in [0, classes) (sub-center ArcFace: C/K classes). */
function classesOf(input: HeadInput, classes: number): HeadInput {
  return { ...input, labels: Array.from(input.labels, (y) => y % classes) };
}

/** The heads, each with its input (softmax with a bias; sub-center's W has C·K = 12 rows). */
const CASES: [HeadSpec | SuccessorHeadSpec, HeadInput][] = [
  [arcFaceHead(), randomHeadInput(SIZE, 1)],
  [arcFaceHead(), randomHeadInput(MANY, 5)],
  [softmaxHead(), randomHeadInput({ ...SIZE, bias: true }, 2)],
  [subCenterArcFaceHead({ subCenters: 3 }), classesOf(randomHeadInput(SIZE, 3), 4)],
  [adaCosHead(), randomHeadInput(SIZE, 4)],
];

/** A result of the engine's precision whose every array holds stale values (NaN). */
function staleResult(engine: Engine, like: EngineResult): EngineResult {
  const Type = engine.precision === "float32" ? Float32Array : Float64Array;
  const stale = (m: { rows: number; cols: number; data: ArrayLike<number> }) => ({
    rows: m.rows,
    cols: m.cols,
    data: new Type(m.data.length).fill(NaN),
  });
  const out: EngineResult = {
    ...like,
    gradFeatures: stale(like.gradFeatures),
    gradWeights: stale(like.gradWeights),
  };
  if (like.gradBias) out.gradBias = new Type(like.gradBias.length).fill(NaN);
  if (like.logits) out.logits = stale(like.logits);
  return out;
}

function computes(engine: Engine, head: HeadSpec | SuccessorHeadSpec): boolean {
  if (!("successor" in head)) return engine.supports(head) === true;
  return !!engine.prepareSuccessor && (engine.supportsSuccessor?.(head) ?? true) === true;
}

function assertSame(actual: EngineResult, expected: EngineResult, name: string): void {
  const rtol = 1e-6; // the same engine on the same input: equal, up to a thread's summation order
  assertClose([actual.loss], [expected.loss], { rtol, name: `${name} loss` });
  for (const key of ["gradFeatures", "gradWeights", "logits"] as const) {
    if (!expected[key]) continue;
    assertClose(actual[key]!.data, expected[key]!.data, { rtol, name: `${name} ${key}` });
  }
  if (expected.gradBias) {
    assertClose(actual.gradBias!, expected.gradBias, { rtol, name: `${name} gradBias` });
  }
}

for (const engine of Object.values(ENGINES) as Engine[]) {
  const availability = await engine.availability();
  if (!availability.available) console.log(`SKIPPED ${engine.name}: ${availability.reason}`);
  Deno.test({
    name: `${engine.name}: run(input, { into }) writes the given result's arrays`,
    ignore: !availability.available,
    async fn(t) {
      for (const [head, input] of CASES) {
        const label = `${engine.name} ${"successor" in head ? head.successor.kind : head.name}`;
        if (!computes(engine, head)) continue;
        const shape = shapeOf(input);
        await t.step(`${label} ${shape.samples}×${shape.dims}×${shape.classes}`, async () => {
          await using prepared = await prepareOn(engine, head, shape, {});
          const fresh = await prepared.run(input, { logits: true });
          await using again = await prepareOn(engine, head, shape, {}); // the same state (AdaCos)
          const into = staleResult(engine, fresh);
          const reused = await again.run(input, { logits: true, into });
          assert.strictEqual(reused.gradWeights.data, into.gradWeights.data, `${label} ∂W`);
          assert.strictEqual(reused.gradFeatures.data, into.gradFeatures.data, `${label} ∂x`);
          assert.strictEqual(reused.logits!.data, into.logits!.data, `${label} logits`);
          if (fresh.gradBias) assert.strictEqual(reused.gradBias, into.gradBias, `${label} ∂b`);
          assertSame(reused, fresh, label);
          // A second step into the first one's arrays, on another input.
          const size = { N: shape.samples, D: shape.dims, C: shape.classes, bias: !!input.bias };
          const next = { ...randomHeadInput(size, 9), labels: input.labels };
          const expected = await prepared.run(next);
          const chained = await again.run(next, { into: reused });
          assert.strictEqual(chained.gradWeights.data, into.gradWeights.data);
          assertSame(chained, expected, `${label}, second step`);
        });
      }

      await t.step(`${engine.name}: a bad into is a named error`, () => badInto(engine));
    },
  });
}

/** Each kind of bad `into` on `engine`: its named error. */
async function badInto(engine: Engine): Promise<void> {
  const [head, input] = CASES[0];
  await using prepared = await prepareOn(engine, head, shapeOf(input), {});
  const result = await prepared.run(input);
  const Other = engine.precision === "float32" ? Float64Array : Float32Array;
  const wrongType = {
    ...result,
    gradWeights: { ...result.gradWeights, data: new Other(SIZE.C * SIZE.D) },
  };
  await assert.rejects(
    () => prepared.run(input, { into: wrongType as EngineResult }),
    /options\.into\.gradWeights must be a 12×9 matrix of Float/,
  );
  const wrongSize = {
    ...result,
    gradFeatures: { rows: 1, cols: 9, data: result.gradFeatures.data.subarray(0, 9) },
  };
  await assert.rejects(
    () => prepared.run(input, { into: wrongSize as EngineResult }),
    /options\.into\.gradFeatures must be a 6×9 matrix/,
  );
  await assert.rejects(() => prepared.run(input, { into: 3 as never }), /options\.into/);
  // ∂W's array is the input's weights: the run would read what it writes.
  const Type = engine.precision === "float32" ? Float32Array : Float64Array;
  const w = Type.from(input.weights.data);
  const aliased = { ...result, gradWeights: { ...result.gradWeights, data: w } };
  await assert.rejects(
    () => prepared.run({ ...input, weights: { ...input.weights, data: w } }, { into: aliased }),
    /options\.into\.gradWeights shares memory with input\.weights/,
  );
  // ∂x and ∂W in one buffer, overlapping.
  const both = new Type(SIZE.C * SIZE.D + 4);
  const overlapping = {
    ...result,
    gradWeights: { ...result.gradWeights, data: both.subarray(0, SIZE.C * SIZE.D) },
    gradFeatures: { ...result.gradFeatures, data: both.subarray(4, 4 + SIZE.N * SIZE.D) },
  };
  await assert.rejects(
    () => prepared.run(input, { into: overlapping }),
    /options\.into\.gradFeatures shares memory with options\.into\.gradWeights/,
  );
  // The arrays of a run still in flight.
  const first = prepared.run(input, { into: result });
  await assert.rejects(
    () => prepared.run(input, { into: result }),
    /has not finished \(await it first\)/,
  );
  await first;
  // Once it finished, the same arrays can be given again.
  assert.strictEqual(
    (await prepared.run(input, { into: result })).gradWeights.data,
    result.gradWeights.data,
  );
}

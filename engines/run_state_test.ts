// A prepared successor head takes each run's state (`RunOptions.state`) and ElasticFace's margins
// (`RunOptions.margins`), as a training loop passes them: on every engine, a run with new state or
// margins equals the reference loss of the head built with them, and bad ones are errors naming
// the option.
import assert from "node:assert";
import {
  adaCosHead,
  adaFaceHead,
  arcFaceHead,
  curricularFaceHead,
  elasticFaceHead,
  elasticFaceMargins,
  magFaceHead,
  type SuccessorHeadSpec,
} from "../mod.ts";
import { successorHeadLoss } from "../losses/successor_head.ts";
import { assertMatchesReference } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { toleranceOf } from "../testing/tolerances.ts";
import { prepareOn } from "./prepare_head.ts";
import { ENGINES } from "./registry.ts";
import type { Engine } from "./engine.ts";

const SIZE = { N: 6, D: 5, C: 40 };
const SHAPE = { samples: SIZE.N, dims: SIZE.D, classes: SIZE.C };

/** A head prepared with one state or margins, then runs given others (and the head built so). */
const CASES: {
  name: string;
  prepared: SuccessorHeadSpec;
  runs: { options: { state?: Record<string, number>; margins?: ArrayLike<number> } }[];
  built: (k: number) => SuccessorHeadSpec;
}[] = [
  {
    name: "CurricularFace t",
    prepared: curricularFaceHead({ scale: 16 }),
    runs: [{ options: { state: { t: 0.4 } } }, { options: { state: { t: -0.2 } } }],
    built: (k) => curricularFaceHead({ scale: 16, state: { t: [0.4, -0.2][k] } }),
  },
  {
    name: "AdaFace mean, std",
    prepared: adaFaceHead({ scale: 16 }),
    runs: [{ options: { state: { mean: 1.5, std: 0.7 } } }],
    built: () => adaFaceHead({ scale: 16, state: { mean: 1.5, std: 0.7 } }),
  },
  {
    name: "AdaCos scale",
    prepared: adaCosHead(),
    runs: [{ options: { state: { scale: 9 } } }, { options: { state: { scale: 3.5 } } }],
    built: (k) => adaCosHead({ state: { scale: [9, 3.5][k] } }),
  },
  {
    name: "ElasticFace margins",
    prepared: elasticFaceHead({ scale: 16, margins: elasticFaceMargins(SIZE.N, { seed: 1 }) }),
    runs: [{ options: { margins: elasticFaceMargins(SIZE.N, { seed: 2 }) } }],
    built: () => elasticFaceHead({ scale: 16, margins: elasticFaceMargins(SIZE.N, { seed: 2 }) }),
  },
];

for (const engine of Object.values(ENGINES) as Engine[]) {
  const availability = await engine.availability();
  Deno.test({
    name: `${engine.name}: a prepared successor head takes each run's state and margins`,
    ignore: !availability.available,
    async fn() {
      const rtol = engine.precision === "float64" ? 1e-12 : toleranceOf(engine).rtol;
      for (const c of CASES) {
        if (engine.supportsSuccessor?.(c.prepared) !== true) continue;
        await using head = await prepareOn(engine, c.prepared, SHAPE, {});
        for (const [k, run] of c.runs.entries()) {
          const input = randomHeadInput(SIZE, 30 + k);
          const actual = await head.run(input, run.options);
          const expected = successorHeadLoss(input, c.built(k));
          const name = `${engine.name} ${c.name} run ${k}`;
          assertMatchesReference(actual, expected, { name, rtol });
          for (const [field, value] of Object.entries(expected.state)) {
            const got = actual.state?.[field];
            assert.ok(
              got !== undefined && Math.abs(got - value) <= rtol * Math.max(1, Math.abs(value)),
              `${name}: state.${field} ${got} vs ${value}`,
            );
          }
        }
        // A run without them is the prepared head's again.
        const input = randomHeadInput(SIZE, 40);
        const expected = successorHeadLoss(input, c.prepared);
        assertMatchesReference(await head.run(input), expected, { name: c.name, rtol });
      }
    },
  });
}

Deno.test("prepared runs: bad state or margins are errors naming the option", async () => {
  const input = randomHeadInput(SIZE, 3);
  const check = async (head: Parameters<typeof prepareOn>[1], options: object, error: RegExp) => {
    await using prepared = await prepareOn(ENGINES.reference, head, SHAPE, {});
    await assert.rejects(() => prepared.run(input, options), error);
  };
  await check(
    arcFaceHead(),
    { state: { t: 0 } },
    /options\.state and options\.margins are for a successor head, not "arcFace"/,
  );
  await check(magFaceHead(), { state: {} }, /options\.state: magFace keeps no state/);
  await check(
    curricularFaceHead(),
    { state: { t: 0, s: 1 } },
    /options\.state has an unknown field "s"/,
  );
  await check(curricularFaceHead(), { state: { t: "0" } }, /options\.state\.t must be a number/);
  await check(
    curricularFaceHead(),
    { state: 0.5 },
    /options\.state must be curricularFace's state \{ t \}/,
  );
  await check(
    curricularFaceHead(),
    { state: { t: 2 } },
    /state\.t must be a finite number in \[−1, 1\]/,
  );
  await check(adaFaceHead(), { state: { mean: 1, std: -1 } }, /state\.std/);
  await check(adaCosHead(), { state: { scale: 0 } }, /state\.scale must be a finite number > 0/);
  await check(
    curricularFaceHead(),
    { margins: [0.5] },
    /options\.margins: curricularFace takes no per-sample margins/,
  );
  const elastic = elasticFaceHead({ margins: elasticFaceMargins(SIZE.N, { seed: 1 }) });
  await check(
    elastic,
    { margins: [0.5, 0.5] },
    /options\.margins must hold one margin per sample \(6\), got 2/,
  );
  await check(elastic, { margins: 0.5 }, /options\.margins must be an array of numbers/);
  await check(elastic, { margins: [NaN, 0, 0, 0, 0, 0] }, /margins/);
});

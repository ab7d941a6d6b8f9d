// The forward-only run of engine-wasm, engine-native and engine-webgpu (EngineHead.forward), which
// AdaCos's first run uses (engines/adacos.ts): its loss and losses are the full run's bit for bit
// (one wasm thread: with more, threads take tiles in any order), a full run after it still computes
// its gradients, a run marked sameInput reuses the forward pass's cosines only on its arrays,
// AdaCos's results are the same with it as without it, and prepareOn never exposes it. AdaCos
// against the reference and the fixtures: engines/successor_test.ts.
import assert from "node:assert";
import {
  adaCosHead,
  arcFaceHead,
  type HeadInput,
  type HeadSpec,
  normFaceHead,
  type Reduction,
  softmaxHead,
} from "../mod.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { shapeOf } from "../testing/engine_checks.ts";
import { assertClose } from "../testing/assert_close.ts";
import { prepareAdaCos } from "./adacos.ts";
import { prepareOn } from "./prepare_head.ts";
import { ENGINES } from "./registry.ts";
import type { Engine, EngineHead, EngineResult, RunInput, RunSettings } from "./engine.ts";

const REDUCTIONS: Reduction[] = ["mean", "sum", "none"];
const SIZE_B = { N: 9, D: 16, C: 200 };

/**
 * The engines with a forward-only run, in several tiles; on one thread a run is deterministic (with
 * more, threads take tiles in any order: engine-wasm's losses and both engines' gradients then
 * vary in their last bits), engine-native's losses on any number (its tiles' statistics are
 * combined in order on the host).
 */
const ENGINES_FORWARD = [
  { engine: ENGINES.wasm as Engine, options: { threads: 1, tile: 64 }, deterministic: true },
  { engine: ENGINES.native as Engine, options: { threads: 1, tile: 64 }, deterministic: true },
  { engine: ENGINES.native as Engine, options: { tile: 64 }, deterministic: false },
  { engine: ENGINES.webgpu as Engine, options: { chunkClasses: 64 }, deterministic: true },
];

/**
 * Whether a run on a forward-only run's cosines is a fresh run's bit for bit: engine-native keeps
 * the products of the old scale and rescales them (one more float32 rounding of each logit).
 */
const reusesExactly = (engine: Engine) => engine !== ENGINES.native;

/** A validated run's input, as engines receive it. */
function runInput(input: HeadInput): RunInput {
  const { rows: N, cols: D } = input.features;
  return {
    N,
    D,
    C: input.weights.rows,
    x: Float64Array.from(input.features.data),
    w: Float64Array.from(input.weights.data),
    labels: Int32Array.from(input.labels),
    bias: input.bias ? Float64Array.from(input.bias) : undefined,
  };
}

function assertSameGradients(actual: EngineResult, expected: EngineResult, name: string) {
  assert.deepEqual(actual.gradFeatures.data, expected.gradFeatures.data, `${name}: gradFeatures`);
  assert.deepEqual(actual.gradWeights.data, expected.gradWeights.data, `${name}: gradWeights`);
  assert.deepEqual(actual.gradBias, expected.gradBias, `${name}: gradBias`);
}

for (const { engine, options, deterministic } of ENGINES_FORWARD) {
  const availability = await engine.availability();
  if (!availability.available) console.log(`SKIPPED ${engine.name}: ${availability.reason}`);

  Deno.test({
    name: `${engine.name} ${JSON.stringify(options)}: a forward-only run's losses are the full ` +
      "run's, bit for bit",
    ignore: !availability.available,
    async fn() {
      const cases: [string, HeadSpec, HeadInput, number?][] = [
        ["normFace", normFaceHead(), randomHeadInput({ N: 9, D: 13, C: 300 }, 1)],
        [
          "normFace at a run's scale",
          normFaceHead(),
          randomHeadInput({ N: 8, D: 16, C: 200 }, 2),
          7,
        ],
        ["arcFace", arcFaceHead(), randomHeadInput({ N: 7, D: 9, C: 150 }, 3)],
        [
          "softmax with a bias",
          softmaxHead(),
          randomHeadInput({ N: 5, D: 8, C: 130, bias: true }, 4),
        ],
      ];
      for (const [what, head, input, scale] of cases) {
        const prepared = await engine.prepare(head, shapeOf(input), options);
        assert.ok(prepared.forward, `${engine.name} has a forward-only run`);
        try {
          for (const reduction of REDUCTIONS) {
            const settings: RunSettings = { reduction, logits: false, scale };
            const name = `${engine.name} ${what} ${reduction}`;
            const full = await prepared.run(runInput(input), settings);
            const forward = await prepared.forward(runInput(input), settings);
            assert.deepEqual(Object.keys(forward).sort(), ["loss", "losses"], name);
            assert.deepEqual(forward.losses, full.losses, `${name}: losses`);
            assert.equal(forward.loss, full.loss, `${name}: loss`);
            // The backward is skipped for that run only.
            const again = await prepared.run(runInput(input), settings);
            if (deterministic) assertSameGradients(again, full, name);
            else assertClose(again.gradFeatures.data, full.gradFeatures.data, { rtol: 1e-4, name });
          }
        } finally {
          await prepared.dispose();
        }
      }
    },
  });

  Deno.test({
    name: `${engine.name} ${JSON.stringify(options)}: a run marked sameInput reuses the forward ` +
      "pass's cosines only for that pass's arrays",
    ignore: !availability.available,
    async fn() {
      const head = normFaceHead();
      const a = randomHeadInput({ N: 9, D: 16, C: 200 }, 6), b = randomHeadInput({ ...SIZE_B }, 7);
      const settings: RunSettings = { reduction: "mean", logits: false, scale: 9 };
      const fresh = await engine.prepare(head, shapeOf(a), options);
      const reusing = await engine.prepare(head, shapeOf(a), options);
      try {
        for (const input of [a, b]) {
          const expected = await fresh.run(runInput(input), settings);
          const view = runInput(a); // the forward pass's arrays
          await reusing.forward!(view, { ...settings, scale: 4 });
          // Its own arrays: the cosines are reused (only the scale changed); other arrays holding
          // another input: computed again.
          const next = input === a ? view : runInput(input);
          const actual = await reusing.run(next, { ...settings, sameInput: true });
          const name = `${engine.name} ${input === a ? "same arrays" : "other arrays"}`;
          if (deterministic && (input !== a || reusesExactly(engine))) {
            assertSameGradients(actual, expected, name);
            assert.deepEqual(actual.losses, expected.losses, name);
          } else {
            for (const key of ["gradWeights", "gradFeatures"] as const) {
              assertClose(actual[key].data, expected[key].data, {
                rtol: 1e-5,
                name: `${name} ${key}`,
              });
            }
            assertClose(actual.losses, expected.losses, { rtol: 1e-5, name: `${name} losses` });
          }
        }
      } finally {
        await fresh.dispose();
        await reusing.dispose();
      }
    },
  });

  Deno.test({
    name: `${engine.name} ${JSON.stringify(options)}: AdaCos's first run is the forward-only one`,
    ignore: !availability.available,
    async fn() {
      const input = randomHeadInput({ N: 12, D: 16, C: 140 }, 5), shape = shapeOf(input);
      const calls = { run: 0, forward: 0 };
      const counted = (inner: EngineHead, forward: boolean): EngineHead => ({
        run: (view, settings) => (calls.run++, inner.run(view, settings)),
        forward: forward && inner.forward
          ? (view, settings) => (calls.forward++, inner.forward!(view, settings))
          : undefined,
        dispose: () => inner.dispose(),
      });
      const results: EngineResult[] = [];
      for (const forward of [true, false]) {
        const head = await prepareAdaCos(
          "test",
          adaCosHead(),
          shape,
          async (base) => counted(await engine.prepare(base, shape, options), forward),
        );
        try {
          results.push(await head.run(runInput(input), { reduction: "mean", logits: false }));
        } finally {
          await head.dispose();
        }
      }
      assert.deepEqual(calls, { run: 3, forward: 1 }); // with it: one of each; without: two runs
      const name = `${engine.name} AdaCos`;
      if (engine === ENGINES.native) {
        // Its first run's losses are deterministic on any number of threads, hence the scale; its
        // second starts from the first one's products, rescaled (within float32 rounding).
        assert.equal(results[0].state?.scale, results[1].state?.scale);
        assertClose(results[0].losses, results[1].losses, { rtol: 1e-5, name: `${name} losses` });
        assertClose(results[0].gradWeights.data, results[1].gradWeights.data, { rtol: 1e-5, name });
      } else if (deterministic) assertSameGradients(results[0], results[1], name);
    },
  });

  Deno.test({
    name: `${engine.name} ${JSON.stringify(options)}: prepareOn's heads have no forward-only run`,
    ignore: !availability.available,
    async fn() {
      const input = randomHeadInput({ N: 4, D: 5, C: 6 }, 6);
      for (const head of [normFaceHead(), adaCosHead()]) {
        await using prepared = await prepareOn(engine, head, shapeOf(input), options);
        assert.equal("forward" in prepared, false);
      }
    },
  });
}

// The contract every engine of the registry keeps, whatever its precision: a non-finite value in
// the features or the weights is a clear error naming the argument (the engines that check values
// themselves skip prepareOn's pass); a finite one past float32 gives the right answer or such an
// error, never a NaN or a silently wrong result.
import assert from "node:assert";
import { arcFaceHead, magFaceHead, marginSoftmaxLoss, softmaxHead } from "../mod.ts";
import { isSuccessorHead } from "../losses/successor_head.ts";
import { assertMatchesReference } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { prepareOn } from "./prepare_head.ts";
import { ENGINES } from "./registry.ts";
import type { Engine } from "./engine.ts";

const BAD = [NaN, Infinity, -Infinity, 1e39];
const SIZE = { N: 5, D: 7, C: 9 };
const SHAPE = { samples: SIZE.N, dims: SIZE.D, classes: SIZE.C };

/** A copy of a result with its typed arrays as plain arrays (structuredClone shares shared memory). */
function snapshot(result: object): unknown {
  return JSON.parse(
    JSON.stringify(result, (_, v) => ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v),
  );
}

for (const engine of Object.values(ENGINES) as Engine[]) {
  const availability = await engine.availability();
  if (!availability.available) console.log(`SKIPPED ${engine.name}: ${availability.reason}`);
  Deno.test({
    name: `${engine.name}: non-finite or out-of-range features and weights are named errors`,
    ignore: !availability.available,
    async fn() {
      for (const head of [arcFaceHead(), softmaxHead()]) {
        await using prepared = await prepareOn(engine, head, SHAPE, {});
        for (const name of ["features", "weights"] as const) {
          for (const [k, value] of BAD.entries()) {
            // Float64 data: 1e39 is finite there but past float32 for the float32 engines.
            if (value === 1e39 && engine.precision === "float64") continue;
            const input = randomHeadInput(SIZE, 3 + k);
            const data = Float64Array.from(input[name].data);
            data[(7 * k + 3) % data.length] = value;
            input[name] = { ...input[name], data };
            const what = `${engine.name} ${head.name}: ${name} holding ${value}`;
            if (Number.isFinite(value)) {
              // Past float32 but finite: right within the engine's error (a float64 pass can
              // normalise it), or refused naming the argument.
              const result = await prepared.run(input).catch((error) => {
                assert.match(String(error), new RegExp(name), what);
                return undefined;
              });
              if (result) {
                const expected = marginSoftmaxLoss(input, head);
                assertMatchesReference(result, expected, { name: what, rtol: 1e-4 });
              }
              continue;
            }
            await assert.rejects(() => prepared.run(input), new RegExp(name), what);
          }
        }
      }
    },
  });
}

for (const engine of Object.values(ENGINES) as Engine[]) {
  const availability = await engine.availability();
  Deno.test({
    name: `${engine.name}: a run's results stay as they were when the head runs again`,
    ignore: !availability.available,
    async fn() {
      // Engines keep buffers from run to run (engine-wasm and engine-webgpu their float64 copies
      // of x and the target rows, which successor heads read); without `into`, nothing a run
      // returned may change with the next run.
      const heads = [arcFaceHead(), magFaceHead()].filter((head) =>
        !isSuccessorHead(head) || engine.supportsSuccessor?.(head) === true
      );
      for (const head of heads) {
        await using prepared = await prepareOn(engine, head, SHAPE, {});
        const first = await prepared.run(randomHeadInput(SIZE, 11), { reduction: "none" });
        const kept = snapshot(first);
        const second = await prepared.run(randomHeadInput(SIZE, 12), { reduction: "none" });
        assert.deepStrictEqual(snapshot(first), kept, `${engine.name} ${head.name}`);
        // Queued without a wait between them, the runs give what they gave one after another.
        const queued = await Promise.all(
          [11, 12].map((seed) => prepared.run(randomHeadInput(SIZE, seed), { reduction: "none" })),
        );
        assert.deepStrictEqual(
          queued.map(snapshot),
          [kept, snapshot(second)],
          `${engine.name} ${head.name}, queued`,
        );
      }
    },
  });
}

// engine-wasm behind the engine contract: prepared heads run many times on new inputs, read the
// caller's arrays only before returning, return arrays of their own, share one bounded pool of
// worker threads, and release it when disposed.
import assert from "node:assert";
import { arcFaceHead, cosFaceHead, type HeadInput, marginSoftmaxLoss, matrix } from "../../mod.ts";
import { viewHeadInput } from "../../losses/checks.ts";
import { prepareHead, prepareOn } from "../prepare_head.ts";
import type { EngineResult } from "../engine.ts";
import { assertMatchesReference } from "../../testing/engine_checks.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { MAX_THREADS } from "./assembly/layout.ts";
import { poolThreads } from "./_runtime.ts";
import { wasmEngine } from "./engine.ts";

const RTOL = 1e-4;

/** Every array of a result, by name. */
function arraysOf(r: EngineResult): [string, ArrayBufferView][] {
  const out: [string, ArrayBufferView][] = [
    ["losses", r.losses],
    ["gradFeatures", r.gradFeatures.data],
    ["gradWeights", r.gradWeights.data],
  ];
  if (r.gradBias) out.push(["gradBias", r.gradBias]);
  if (r.logits) out.push(["logits", r.logits.data]);
  return out;
}

Deno.test("engine-wasm: the engine's description", async () => {
  assert.equal(wasmEngine.name, "engine-wasm");
  assert.equal(wasmEngine.kind, "WASM");
  assert.equal(wasmEngine.precision, "float32");
  assert.equal(wasmEngine.threaded, true);
  const availability = await wasmEngine.availability();
  assert.ok(availability.available);
  assert.match(availability.detail ?? "", /^\d+ worker threads? by default \(Web Workers\)$/);
  assert.equal(wasmEngine.supports(arcFaceHead()), true);
});

Deno.test("engine-wasm: 100 runs of one prepared head on changing inputs", async () => {
  const size = { N: 9, D: 21, C: 150, bias: true };
  const head = { name: "softmax", logits: "linear" } as const;
  await using prepared = await prepareHead(head, { samples: 9, dims: 21, classes: 150 }, {
    engine: "wasm",
    threads: 2,
  });
  const results: EngineResult[] = [];
  for (let k = 0; k < 100; k++) {
    const input = randomHeadInput(size, 100 + k);
    // Every run gets new features, weights, bias and labels; a run with logits now and then.
    const r = await prepared.run(input, {
      logits: k % 10 === 0,
      reduction: k % 2 ? "sum" : "mean",
    });
    for (const [name, data] of arraysOf(r)) {
      assert.ok(!(data.buffer instanceof SharedArrayBuffer), `run ${k}: ${name} is the engine's`);
    }
    if (k % 25 === 0 || k === 99) {
      const expected = marginSoftmaxLoss(input, head, { reduction: k % 2 ? "sum" : "mean" });
      assertMatchesReference(r, expected, { name: `run ${k}`, rtol: RTOL });
    }
    results.push(r);
  }
  // Kept results are not overwritten by later runs.
  const first = marginSoftmaxLoss(randomHeadInput(size, 100), head);
  assertMatchesReference(results[0], first, { name: "run 0, kept", rtol: RTOL });
});

/** The same input with its own arrays, to compare against after the caller's are overwritten. */
function copyOf(input: HeadInput): HeadInput {
  return {
    features: matrix(input.features.rows, input.features.cols, input.features.data.slice()),
    weights: matrix(input.weights.rows, input.weights.cols, input.weights.data.slice()),
    labels: Array.from(input.labels),
  };
}

/** Overwrites every array of `input` with other values. */
function scribble(input: HeadInput): void {
  input.features.data.fill(0.25);
  input.weights.data.fill(-3);
  (input.labels as number[]).fill(0);
}

Deno.test("engine-wasm: the caller may reuse its arrays as soon as run returns", async (t) => {
  const head = cosFaceHead();
  const size = { N: 12, D: 24, C: 200 };
  const shape = { samples: 12, dims: 24, classes: 200 };
  await t.step("the engine's own run", async () => {
    const input = randomHeadInput(size, 1), kept = copyOf(input);
    const prepared = await wasmEngine.prepare(head, shape, { threads: 2 });
    try {
      const view = viewHeadInput("test", input, { classes: "weights", allowBias: false });
      const pending = prepared.run(view, { reduction: "mean", logits: true });
      scribble(input);
      assertMatchesReference(await pending, marginSoftmaxLoss(kept, head), {
        name: "engine run",
        rtol: RTOL,
      });
    } finally {
      await prepared.dispose();
    }
  });
  await t.step("queued runs of a prepared head", async () => {
    await using prepared = await prepareHead(head, shape, { engine: "wasm", threads: 2 });
    const inputs = [1, 2, 3].map((seed) => randomHeadInput(size, seed));
    const kept = inputs.map(copyOf);
    const pending = inputs.map((input) => {
      const run = prepared.run(input, { logits: true });
      scribble(input);
      return run;
    });
    const results = await Promise.all(pending);
    results.forEach((r, k) =>
      assertMatchesReference(r, marginSoftmaxLoss(kept[k], head), { name: `run ${k}`, rtol: RTOL })
    );
  });
});

Deno.test("engine-wasm: dispose releases the threads; a later run is an error", async () => {
  assert.equal(poolThreads(), 0, "no head is prepared");
  const input = randomHeadInput({ N: 4, D: 8, C: 300 }, 3);
  const shape = { samples: 4, dims: 8, classes: 300 };
  const prepared = await prepareHead(arcFaceHead(), shape, { engine: "wasm", threads: 3 });
  assert.equal(prepared.threads, 3);
  assert.equal(poolThreads(), 3);
  await prepared.run(input);
  await prepared.dispose();
  assert.equal(poolThreads(), 0);
  await assert.rejects(() => prepared.run(input), /wasm run: the head was disposed/);
  await prepared.dispose(); // idempotent
  // The engine's own head refuses too.
  const inner = await wasmEngine.prepare(arcFaceHead(), shape, { threads: 1 });
  await inner.dispose();
  const view = viewHeadInput("test", input, { classes: "weights", allowBias: false });
  await assert.rejects(
    () => inner.run(view, { reduction: "mean", logits: false }),
    /wasm run: the head was disposed/,
  );
  {
    using scoped = await prepareHead(arcFaceHead(), shape, { engine: "wasm", threads: 2 });
    assert.ok(Number.isFinite((await scoped.run(input)).loss));
    assert.equal(poolThreads(), 2);
  }
  assert.equal(poolThreads(), 0, "`using` disposed of the head");
});

Deno.test("engine-wasm: dispose during a run lets the run finish", async () => {
  const input = randomHeadInput({ N: 16, D: 64, C: 2000 }, 4);
  const prepared = await prepareHead(arcFaceHead(), { samples: 16, dims: 64, classes: 2000 }, {
    engine: "wasm",
    threads: 2,
  });
  const run = prepared.run(input);
  const disposed = prepared.dispose();
  assertMatchesReference(await run, marginSoftmaxLoss(input, arcFaceHead()), {
    name: "run",
    rtol: RTOL,
  });
  await disposed;
  assert.equal(poolThreads(), 0);
});

Deno.test("engine-wasm: prepared heads share one bounded pool of threads", async () => {
  // 8192 classes: 64 tiles of 128, so each head can use all the threads it asks for.
  const shape = { samples: 4, dims: 8, classes: 8192 };
  const input = randomHeadInput({ N: 4, D: 8, C: 8192 }, 5);
  const expected = marginSoftmaxLoss(input, arcFaceHead());
  // 16 heads asking for 8 threads each run on 8 workers, all at once.
  const heads = await Promise.all(
    Array.from(
      { length: 16 },
      () => prepareHead(arcFaceHead(), shape, { engine: "wasm", threads: 8 }),
    ),
  );
  assert.equal(poolThreads(), 8);
  const results = await Promise.all(heads.map((h) => h.run(input)));
  results.forEach((r, k) => assertMatchesReference(r, expected, { name: `head ${k}`, rtol: RTOL }));
  // The head with the most threads leaves: the pool shrinks to what the others use.
  const wide = await prepareHead(arcFaceHead(), shape, { engine: "wasm", threads: 12 });
  assert.equal(poolThreads(), 12);
  await wide.dispose();
  assert.equal(poolThreads(), 8);
  for (const h of heads) await h.dispose();
  assert.equal(poolThreads(), 0);
  // 16 heads × 64 threads: never more than MAX_THREADS workers in the process.
  const many = await Promise.all(
    Array.from({ length: 16 }, () => prepareOn(wasmEngine, arcFaceHead(), shape, { threads: 64 })),
  );
  assert.equal(poolThreads(), MAX_THREADS);
  const r = await many[3].run(input);
  assertMatchesReference(r, expected, { name: "64 threads", rtol: RTOL });
  for (const h of many) await h.dispose();
  assert.equal(poolThreads(), 0);
  await assert.rejects(
    () => prepareHead(arcFaceHead(), shape, { engine: "wasm", threads: MAX_THREADS + 1 }),
    /options.threads must be an integer in \[1, 64\]/,
  );
});

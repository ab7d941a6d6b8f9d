// Partial FC on every engine: the view equals the reference loss on the gathered sub-head (float64,
// 1e-12) and every available float32 engine agrees within its parity tolerance; rate 1 is the full
// head; the PyTorch fixtures (partial_fc_v2.py on a given class set, float64 autograd) at 1e-10.
import assert from "node:assert";
import {
  adaCosHead,
  adaCosInitialState,
  adaFaceHead,
  curricularFaceHead,
  elasticFaceHead,
  elasticFaceMargins,
  type EngineName,
  ENGINES,
  HEAD_CATALOG,
  type HeadInput,
  type HeadSpec,
  magFaceHead,
  marginSoftmaxLoss,
  partialFc,
  partialFcClasses,
  partialFcInput,
  partialFcLoss,
  type PartialFcResult,
  partialFcSize,
  preparePartialFc,
  type Reduction,
  subCenterArcFaceHead,
  type SuccessorHeadSpec,
} from "../mod.ts";
import type { Engine, EngineResult } from "./engine.ts";
import { assertMatchesReference } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { toleranceOf } from "../testing/tolerances.ts";
import { type ArrayRef, fixtureArray, type FixtureCase } from "../testing/fixtures.ts";
import { closeness } from "../testing/assert_close.ts";
import { successorHeadLoss } from "../losses/successor_head.ts";
import { successorCaseHead, successorSupport } from "../testing/parity.ts";

const engines: (Engine & { key: EngineName })[] = [];
for (const [key, engine] of Object.entries(ENGINES) as [EngineName, Engine][]) {
  const availability = await engine.availability();
  if (availability.available) engines.push(Object.assign(Object.create(engine), { key }));
  else console.log(`SKIPPED ${engine.name}: ${availability.reason}`);
}
const options = (engine: Engine & { key: EngineName }) => ({
  engine: engine.key,
  ...(engine.threaded ? { threads: 2 } : {}),
});
const SIZE = { N: 12, D: 9, C: 150 };
const SHAPE = { samples: SIZE.N, dims: SIZE.D, classes: SIZE.C };

function snapshot(input: HeadInput): string {
  return JSON.stringify([
    Array.from(input.features.data),
    Array.from(input.weights.data),
    Array.from(input.labels),
    Array.from(input.bias ?? []),
  ]);
}

Deno.test("partialFc: on the reference, the head's loss on the gathered sub-head exactly", async () => {
  for (const entry of HEAD_CATALOG) {
    const head = entry.head();
    for (const reduction of ["mean", "sum", "none"] as Reduction[]) {
      const input = randomHeadInput({ ...SIZE, bias: head.logits === "linear" }, 11);
      const before = snapshot(input);
      const view = partialFc(head, { rate: 0.1, seed: 5 });
      const r = await partialFcLoss(input, view, { step: 2, reduction, logits: true });
      assert.equal(
        r.classes.length,
        partialFcSize(SIZE.C, 0.1, new Set(Array.from(input.labels)).size),
      );
      const expected = marginSoftmaxLoss(partialFcInput(input, r.classes), head, { reduction });
      const rel = assertMatchesReference(r, expected, { name: entry.name, rtol: 1e-12 });
      assert.ok(rel <= 1e-12);
      assert.equal(r.gradWeights.rows, r.classes.length);
      for (let i = 0; i < SIZE.N; i++) assert.equal(r.classes[r.labels[i]], input.labels[i]);
      assert.equal(snapshot(input), before, `${entry.name}: the input changed`);
    }
  }
});

/** Successor heads through Partial FC: the head, rows per class, the head the sub-head computes. */
function successorViews(N: number, C: number) {
  const margins = elasticFaceMargins(N, { seed: 4 });
  return [
    { head: curricularFaceHead({ scale: 16, state: { t: 0.2 } }), K: 1 },
    { head: adaFaceHead({ scale: 16 }), K: 1 },
    { head: magFaceHead({ scale: 16 }), K: 1 },
    { head: elasticFaceHead({ scale: 16, margins, plus: true }), K: 1 },
    { head: subCenterArcFaceHead({ scale: 16, subCenters: 3 }), K: 3 },
    // Its initial scale counts the full C classes, not a sub-head's.
    { head: adaCosHead(), K: 1, sub: adaCosHead({ state: adaCosInitialState(C) }) },
  ].map((v) => ({ ...v, sub: v.sub ?? v.head }));
}

/** A random input whose weights hold K rows per class. */
function subCenterInput(K: number, seed: number): HeadInput {
  const input = randomHeadInput({ ...SIZE, C: SIZE.C * K }, seed);
  input.labels = Array.from(input.labels, (y) => y % SIZE.C);
  return input;
}

Deno.test("partialFc of the successor heads: on the reference, the loss on the gathered sub-head exactly", async () => {
  for (const { head, K, sub } of successorViews(SIZE.N, SIZE.C)) {
    for (const reduction of ["mean", "sum", "none"] as Reduction[]) {
      const input = subCenterInput(K, 14);
      const before = snapshot(input);
      const view = partialFc(head, { rate: 0.1, seed: 5 });
      const r = await partialFcLoss(input, view, { step: 3, reduction, logits: true });
      assert.equal(
        r.classes.length,
        partialFcSize(SIZE.C, 0.1, new Set(Array.from(input.labels)).size),
      );
      assert.equal(r.gradWeights.rows, r.classes.length * K);
      const gathered = partialFcInput(input, r.classes, { subCenters: K });
      const expected = successorHeadLoss(gathered, sub, { reduction });
      assertMatchesReference(r, expected, { name: head.name, rtol: 1e-12 });
      assert.deepEqual(r.state ?? {}, expected.state, `${head.name}: state`);
      assert.equal(snapshot(input), before, `${head.name}: the input changed`);
    }
  }
});

for (const engine of engines) {
  const rtol = engine.precision === "float64" ? 1e-12 : toleranceOf(engine).rtol;
  Deno.test(`partialFc of the successor heads on ${engine.name}: steps with the state passed along`, async () => {
    const worst: string[] = [];
    for (const { head, K, sub } of successorViews(SIZE.N, SIZE.C)) {
      if (successorSupport(engine, head) !== true) continue;
      const view = partialFc(head, { rate: 0.1, seed: 17 });
      const shape = { ...SHAPE, classes: SIZE.C * K };
      await using pfc = await preparePartialFc(view, shape, options(engine));
      let rel = 0, last: PartialFcResult | undefined, state = sub.successor as object;
      for (const step of [0, 1, 2]) {
        const input = subCenterInput(K, 20 + step);
        const r = await pfc.run(input, { step, into: last, state: last?.state });
        const expected = successorHeadLoss(
          partialFcInput(input, r.classes, { subCenters: K }),
          { ...sub, successor: { ...sub.successor, ...state } } as SuccessorHeadSpec,
        );
        rel = Math.max(rel, assertMatchesReference(r, expected, { name: head.name, rtol }));
        for (const [field, value] of Object.entries(expected.state)) {
          const got = r.state?.[field] ?? NaN;
          assert.ok(Math.abs(got - value) <= rtol * Math.max(1, Math.abs(value)), head.name);
        }
        state = r.state ?? {};
        last = r;
      }
      worst.push(`${head.name} ${rel.toExponential(1)}`);
    }
    console.log(`${engine.name}: worst relative error per successor head: ${worst.join(", ")}`);
  });
}

Deno.test("partialFc: rate 1 is the full head", async () => {
  for (const entry of HEAD_CATALOG) {
    const head = entry.head();
    const input = randomHeadInput({ ...SIZE, bias: head.logits === "linear" }, 12);
    const r = await partialFcLoss(input, partialFc(head, { rate: 1, seed: 0 }), { step: 9 });
    assert.deepEqual(Array.from(r.classes), Array.from({ length: SIZE.C }, (_, j) => j));
    const full = marginSoftmaxLoss(input, head);
    assert.equal(r.loss, full.loss);
    assert.deepEqual(r.gradWeights.data, full.gradWeights.data);
    assert.deepEqual(r.gradFeatures.data, full.gradFeatures.data);
  }
});

for (const engine of engines.filter((e) => e.precision === "float32")) {
  const rtol = toleranceOf(engine).rtol;
  Deno.test(`partialFc on ${engine.name}: the float64 sub-head within rtol ${rtol}`, async () => {
    const worst: string[] = [];
    for (const entry of HEAD_CATALOG) {
      const head = entry.head();
      if (engine.supports(head) !== true) continue;
      const input = randomHeadInput({ ...SIZE, bias: head.logits === "linear" }, 13);
      const before = snapshot(input);
      const view = partialFc(head, { rate: 0.1, seed: 17 });
      await using pfc = await preparePartialFc(
        view,
        SHAPE,
        options(engine),
      );
      let rel = 0, last: PartialFcResult | undefined;
      for (const step of [0, 1, 2]) {
        // Each step after the first writes into the last one's arrays (same class count).
        const r = await pfc.run(input, { step, into: last });
        if (last) assert.strictEqual(r.gradWeights.data, last.gradWeights.data);
        const expected = marginSoftmaxLoss(partialFcInput(input, r.classes), head);
        rel = Math.max(rel, assertMatchesReference(r, expected, { name: entry.name, rtol }));
        last = r;
      }
      worst.push(`${entry.name} ${rel.toExponential(1)}`);
      assert.equal(snapshot(input), before);
    }
    console.log(`${engine.name}: worst relative error per head: ${worst.join(", ")}`);
  });
}

Deno.test("partialFc: more positives than ⌊r·C⌋ (the sub-shape changes), dispose", async () => {
  const head = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
  const view = partialFc(head, { rate: 0.05, seed: 1 }); // ⌊0.05·150⌋ = 7 < up to 12 positives
  const pfc = await preparePartialFc(view, SHAPE);
  let last: PartialFcResult | undefined;
  for (const [k, seed] of [3, 4, 5, 3].entries()) {
    const input = randomHeadInput(SIZE, seed);
    input.labels = Array.from(input.labels, (y, i) => i < k + 4 ? y : input.labels[0]);
    // `into` of another class count: new arrays instead.
    const r = last = await pfc.run(input, { step: k, into: last });
    assert.equal(r.classes.length, Math.max(7, new Set(Array.from(input.labels)).size));
    const expected = marginSoftmaxLoss(partialFcInput(input, r.classes), head);
    assertMatchesReference(r, expected, { name: `step ${k}`, rtol: 1e-12 });
  }
  await pfc.dispose();
  await assert.rejects(() => pfc.run(randomHeadInput(SIZE, 3)), /the view was disposed/);
});

Deno.test("partialFc: bad runs are errors naming the argument", async () => {
  const head = HEAD_CATALOG.find((e) => e.name === "cosFace")!.head();
  const view = partialFc(head, { rate: 0.1, seed: 1 });
  await using pfc = await preparePartialFc(view, SHAPE);
  const input = randomHeadInput(SIZE, 3);
  await assert.rejects(() => pfc.run(randomHeadInput({ ...SIZE, C: 20 }, 3)), /prepared for 12×9/);
  await assert.rejects(() => pfc.run(input, { step: -1 }), /options\.step must be an integer/);
  await assert.rejects(
    () => pfc.run(input, { step: 1, classes: [0, 1] }),
    /options\.classes or options\.step, not both/,
  );
  await assert.rejects(
    () => pfc.run(input, { classes: [0, 1] }),
    /options\.classes must hold every label/,
  );
  // deno-lint-ignore no-explicit-any
  await assert.rejects(() => pfc.run(input, { reduction: "max" as any }), /reduction/);
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => preparePartialFc({ head, rate: 2, seed: 1 } as any, SHAPE),
    /options\.rate must be a number in \(0, 1\]/,
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => preparePartialFc(view, SHAPE, { engine: "cuda" as any }),
    /options\.engine must be one of/,
  );
});

// The PyTorch fixtures: partial_fc_v2.py's margin loss on a class set the generator drew with
// torch (kept as data), float64 autograd through the gather down to the full weights.
interface PartialFcCase extends FixtureCase {
  rate: number;
}
const pfcCases: PartialFcCase[] = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/manifest.json", import.meta.url)),
).partialFcCases.map((c: PartialFcCase) => ({ ...c, inputDtype: "float64", tags: [] }));

function caseInput(c: PartialFcCase): HeadInput {
  return {
    features: { rows: c.N, cols: c.D, data: Float64Array.from(fixtureArray(c, "features")) },
    weights: { rows: c.C, cols: c.D, data: Float64Array.from(fixtureArray(c, "weights")) },
    labels: Array.from(fixtureArray(c, "labels")),
  };
}

function compareCase(c: PartialFcCase, r: EngineResult, rtol: number): number {
  let worst = 0;
  const pairs: [string, ArrayLike<number>][] = [
    ["loss", [r.loss]],
    ["losses", r.losses],
    ["gradFeatures", r.gradFeatures.data],
    ["gradWeights", r.gradWeights.data],
  ];
  if (r.logits) pairs.push(["logits", r.logits.data]);
  for (const [name, actual] of pairs) {
    const { relError } = closeness(actual, fixtureArray(c, name));
    assert.ok(relError <= rtol, `${c.name} ${name}: ${relError} > ${rtol}`);
    worst = Math.max(worst, relError);
  }
  return worst;
}

Deno.test("partialFc fixtures: PyTorch partial_fc_v2 on its class set, every engine", async () => {
  assert.ok(pfcCases.length >= 6);
  for (const engine of engines) {
    const rtol = engine.precision === "float64" ? 1e-10 : toleranceOf(engine).rtol;
    let worst = 0;
    for (const c of pfcCases) {
      const head: HeadSpec = HEAD_CATALOG.find((e) => e.name === c.loss)!.head(c.options);
      const classes = Array.from(fixtureArray(c, "classes"));
      const positives = new Set(fixtureArray(c, "labels")).size;
      assert.equal(classes.length, partialFcSize(c.C, c.rate, positives), `${c.name}: size`);
      const view = partialFc(head, { rate: c.rate, seed: 0 });
      const r = await partialFcLoss(caseInput(c), view, {
        ...options(engine),
        classes,
        logits: true,
      });
      assert.deepEqual(Array.from(r.labels), Array.from(fixtureArray(c, "subLabels")));
      worst = Math.max(worst, compareCase(c, r, rtol));
    }
    console.log(`${engine.name}: worst relative error on the Partial FC fixtures ${worst}`);
  }
});

Deno.test("partialFc: steps started together each run on their own gathered rows (the view's gather stage is held until its sub-head reads it)", async () => {
  const head = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
  for (const engine of engines) {
    const view = partialFc(head, { rate: 0.1, seed: 5 });
    await using pfc = await preparePartialFc(view, SHAPE, options(engine));
    const inputs = [21, 22, 23].map((seed) => randomHeadInput(SIZE, seed));
    const expected = inputs.map((input, step) => {
      const classes = partialFcClasses(input.labels, SIZE.C, { rate: 0.1, seed: 5, step });
      return marginSoftmaxLoss(partialFcInput(input, classes), head);
    });
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(inputs.map((input, step) => pfc.run(input, { step })));
      results.forEach((r, step) =>
        assertMatchesReference(r, expected[step], {
          name: `${engine.name} round ${round} step ${step}`,
          rtol: toleranceOf(engine).rtol,
        })
      );
    }
  }
});

// The PyTorch fixtures of the successor heads through Partial FC: partial_fc_v2.py's sample, then
// the successor's official loss on the gathered rows, steps with the state carried.
interface PartialFcSuccessorCase {
  name: string;
  loss: string;
  options: Record<string, unknown>;
  rate: number;
  subCenters: number;
  N: number;
  D: number;
  C: number;
  stateFields: string[];
  steps: Record<string, ArrayRef>[];
}
const pfcSuccessorCases: PartialFcSuccessorCase[] = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/manifest.json", import.meta.url)),
).partialFcSuccessorCases;

/** One array of one step of a case. */
function stepArray(c: PartialFcSuccessorCase, k: number, name: string): Float64Array {
  return fixtureArray({ name: c.name, arrays: c.steps[k] } as unknown as FixtureCase, name);
}

/** Runs a case's steps on one prepared view, the state passed along; the worst relative error. */
async function checkSuccessorSteps(
  engine: Engine & { key: EngineName },
  c: PartialFcSuccessorCase,
  rtol: number,
): Promise<number> {
  const head = successorCaseHead(c.loss, c.options)!;
  const view = partialFc(head, { rate: c.rate, seed: 0 });
  const shape = { samples: c.N, dims: c.D, classes: c.C * c.subCenters };
  await using pfc = await preparePartialFc(view, shape, options(engine));
  let worst = 0, state: Record<string, number> | undefined;
  for (const k of c.steps.keys()) {
    const array = (name: string) => stepArray(c, k, name);
    const input: HeadInput = {
      features: { rows: c.N, cols: c.D, data: array("features") },
      weights: { rows: shape.classes, cols: c.D, data: array("weights") },
      labels: Array.from(array("labels")),
    };
    const r = await pfc.run(input, { classes: Array.from(array("classes")), logits: true, state });
    assert.deepEqual(Array.from(r.labels), Array.from(array("subLabels")), `${c.name}: labels`);
    const pairs: [string, ArrayLike<number> | undefined][] = [
      ["loss", [r.loss]],
      ["losses", r.losses],
      ["logits", r.logits?.data],
      ["gradFeatures", r.gradFeatures.data],
      ["gradWeights", r.gradWeights.data],
    ];
    if (c.stateFields.length) pairs.push(["state", c.stateFields.map((f) => r.state?.[f] ?? NaN)]);
    if (c.steps[k].margins) pairs.push(["margins", r.margins]);
    for (const [name, actual] of pairs) {
      assert.ok(actual, `${c.name} step ${k}: no ${name}`);
      const { relError } = closeness(actual, array(name));
      assert.ok(relError <= rtol, `${c.name} step ${k} ${name}: ${relError} > ${rtol}`);
      worst = Math.max(worst, relError);
    }
    state = r.state;
  }
  return worst;
}

Deno.test("partialFc fixtures of the successor heads: PyTorch on partial_fc_v2's class set, the state carried, every engine", async () => {
  assert.ok(pfcSuccessorCases.length >= 7);
  for (const engine of engines) {
    const rtol = engine.precision === "float64" ? 1e-10 : toleranceOf(engine).rtol;
    let worst = 0;
    for (const c of pfcSuccessorCases) {
      const head = successorCaseHead(c.loss, c.options);
      assert.ok(head, `${c.name}: no head builder for ${c.loss}`);
      if (successorSupport(engine, head) !== true) continue;
      worst = Math.max(worst, await checkSuccessorSteps(engine, c, rtol));
    }
    console.log(
      `${engine.name}: worst relative error on the Partial FC successor fixtures ${worst}`,
    );
  }
});

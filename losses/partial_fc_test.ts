// Partial FC's pure half: the seeded sampler (positives always in, sorted, distinct, its size,
// one set per seed and step, uniform over the negatives), the gather and its checks.
import assert from "node:assert";
import {
  arcFaceHead,
  matrix,
  partialFc,
  partialFcClasses,
  partialFcInput,
  partialFcSize,
} from "../mod.ts";

function labelsOf(n: number, c: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729) % c);
}

Deno.test("partialFcClasses: positives in, sorted, distinct, size max(P, ⌊r·C⌋)", () => {
  for (const [n, c, rate] of [[16, 400, 0.1], [16, 60, 0.1], [8, 300, 0.05], [128, 10000, 0.29]]) {
    for (let seed = 0; seed < 5; seed++) {
      const labels = labelsOf(n, c, seed);
      const positives = new Set(labels);
      const classes = partialFcClasses(labels, c, { rate, seed, step: seed * 3 });
      assert.equal(classes.length, Math.max(positives.size, Math.floor(rate * c)));
      assert.equal(classes.length, partialFcSize(c, rate, positives.size));
      for (const y of positives) assert.ok(classes.includes(y), `label ${y} missing`);
      for (let k = 1; k < classes.length; k++) assert.ok(classes[k - 1] < classes[k]);
      assert.ok(classes[0] >= 0 && classes[classes.length - 1] < c);
    }
  }
});

Deno.test("partialFcClasses: the same set per (seed, step), another for another seed or step", () => {
  const labels = labelsOf(32, 5000, 1);
  const set = (seed: number, step?: number) =>
    Array.from(partialFcClasses(labels, 5000, { rate: 0.1, seed, step }));
  assert.deepEqual(set(9, 0), set(9, 0));
  assert.deepEqual(set(9), set(9, 0)); // step defaults to 0
  assert.notDeepEqual(set(9, 0), set(10, 0));
  assert.notDeepEqual(set(9, 0), set(9, 1));
  assert.notDeepEqual(set(0, 1), set(1, 0));
  // the generator as documented, pinned: any runtime must reproduce these
  assert.deepEqual(
    Array.from(partialFcClasses([3], 40, { rate: 0.25, seed: 1, step: 2 })),
    PINNED,
  );
});
const PINNED = [1, 3, 6, 10, 17, 26, 35, 36, 37, 38]; // also what a Python transcription of the doc gives

Deno.test("partialFcClasses: rate 1 keeps every class; P ≥ ⌊r·C⌋ keeps the positives alone", () => {
  assert.deepEqual(
    Array.from(partialFcClasses([4, 1], 6, { rate: 1, seed: 0 })),
    [0, 1, 2, 3, 4, 5],
  );
  assert.deepEqual(Array.from(partialFcClasses([9, 2, 9], 100, { rate: 0.01, seed: 0 })), [2, 9]);
  assert.deepEqual(Array.from(partialFcClasses([9], 10, { rate: 0.01, seed: 0 })), [9]);
});

Deno.test("partialFcClasses: each negative class as likely as any other", () => {
  const C = 40, rate = 0.25, steps = 4000, labels = [5, 17];
  const counts = new Float64Array(C);
  for (let step = 0; step < steps; step++) {
    for (const j of partialFcClasses(labels, C, { rate, seed: 123, step })) counts[j]++;
  }
  assert.equal(counts[5], steps);
  assert.equal(counts[17], steps);
  const p = (10 - 2) / (C - 2); // 8 negatives of 38
  for (let j = 0; j < C; j++) {
    if (j === 5 || j === 17) continue;
    const sd = Math.sqrt(steps * p * (1 - p));
    assert.ok(Math.abs(counts[j] - steps * p) < 5 * sd, `class ${j}: ${counts[j]}`);
  }
});

Deno.test("partialFcClasses and partialFc: bad arguments are errors naming them", () => {
  const bad: [() => unknown, RegExp][] = [
    [() => partialFcClasses([0], 10, { rate: 0, seed: 1 }), /options\.rate must be .*\(0, 1\]/],
    [() => partialFcClasses([0], 10, { rate: 1.5, seed: 1 }), /options\.rate/],
    [() => partialFcClasses([0], 10, { rate: NaN, seed: 1 }), /options\.rate/],
    // deno-lint-ignore no-explicit-any
    [() => partialFcClasses([0], 10, { rate: "0.1" as any, seed: 1 }), /options\.rate/],
    [() => partialFcClasses([0], 10, { rate: 0.5, seed: -1 }), /options\.seed must be an integer/],
    [() => partialFcClasses([0], 10, { rate: 0.5, seed: 1.5 }), /options\.seed/],
    [() => partialFcClasses([0], 10, { rate: 0.5, seed: 2 ** 32 }), /options\.seed/],
    [() => partialFcClasses([0], 10, { rate: 0.5, seed: 1, step: -2 }), /options\.step/],
    [() => partialFcClasses([10], 10, { rate: 0.5, seed: 1 }), /labels must be integers in/],
    [() => partialFcClasses([], 10, { rate: 0.5, seed: 1 }), /labels must not be empty/],
    [() => partialFcClasses([0], 0, { rate: 0.5, seed: 1 }), /classes must be a positive/],
    // deno-lint-ignore no-explicit-any
    [() => partialFcClasses([0], 10, { rate: 0.5, seed: 1, sed: 2 } as any), /unknown.*sed/],
    [() => partialFc(arcFaceHead(), { rate: 0, seed: 1 }), /partialFc: options\.rate/],
    // deno-lint-ignore no-explicit-any
    [() => partialFc(arcFaceHead(), { rate: 0.1 } as any), /partialFc: options\.seed/],
    // deno-lint-ignore no-explicit-any
    [() => partialFc(arcFaceHead(), undefined as any), /options \{rate, seed\} are required/],
    // deno-lint-ignore no-explicit-any
    [() => partialFc({ name: "x" } as any, { rate: 0.1, seed: 1 }), /partialFc/],
  ];
  for (const [f, message] of bad) assert.throws(f, message);
});

Deno.test("partialFcInput: gathers rows in the input's precision, remaps labels, never writes", () => {
  const w32 = Float32Array.from({ length: 6 * 3 }, (_, k) => k / 7);
  const input = {
    features: matrix(2, 3, [1, 2, 3, 4, 5, 6]),
    weights: { rows: 6, cols: 3, data: w32 },
    labels: [5, 2],
    bias: [0, 1, 2, 3, 4, 5],
  };
  const before = w32.slice();
  const sub = partialFcInput(input, [0, 2, 5]);
  assert.ok(sub.weights.data instanceof Float32Array);
  assert.deepEqual(Array.from(sub.weights.data), [
    ...w32.slice(0, 3),
    ...w32.slice(6, 9),
    ...w32.slice(15, 18),
  ]);
  assert.deepEqual(Array.from(sub.labels), [2, 1]);
  assert.deepEqual(Array.from(sub.bias!), [0, 2, 5]);
  assert.equal(sub.features, input.features);
  assert.deepEqual(w32, before);
  assert.deepEqual(input.labels, [5, 2]);
});

Deno.test("partialFcInput: a bad class set or a non-finite sampled row is named", () => {
  const input = {
    features: matrix(1, 2, [1, 0]),
    weights: matrix(4, 2, [1, 0, 0, 1, NaN, 0, 1, 1]),
    labels: [1],
  };
  assert.throws(() => partialFcInput(input, [1, 0]), /classes must be strictly increasing/);
  assert.throws(() => partialFcInput(input, [1, 1]), /classes must be strictly increasing/);
  assert.throws(() => partialFcInput(input, [0, 3]), /classes must hold every label.*not 1/);
  assert.throws(() => partialFcInput(input, [1, 4]), /classes must hold integers in \[0, C\)/);
  assert.throws(() => partialFcInput(input, []), /classes must not be empty/);
  assert.throws(() => partialFcInput(input, [1, 2]), /weights must hold finite numbers.*row 2/);
  assert.deepEqual(Array.from(partialFcInput(input, [1, 3]).labels), [0]); // row 2 not sampled
});

Deno.test("partialFcInput: with subCenters K, the K rows of each sampled class; K checked", () => {
  // Three classes of two sub-centers each: rows 2c and 2c + 1 belong to class c.
  const input = {
    features: matrix(2, 2, [1, 0, 0, 1]),
    weights: matrix(6, 2, [0, 0, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1]),
    labels: [2, 0],
  };
  const sub = partialFcInput(input, [0, 2], { subCenters: 2 });
  assert.deepEqual(Array.from(sub.weights.data), [0, 0, 0, 1, 2, 0, 2, 1]);
  assert.equal(sub.weights.rows, 4);
  assert.deepEqual(Array.from(sub.labels), [1, 0]);
  assert.throws(
    () => partialFcInput(input, [0, 2], { subCenters: 4 }),
    /weights\.rows must be a multiple of subCenters \(4 rows per class\), got 6/,
  );
  assert.throws(
    () => partialFcInput(input, [0, 2], { subCenters: 0 }),
    /options\.subCenters must be a positive integer, got 0/,
  );
  assert.throws(() => partialFcInput(input, [0, 3], { subCenters: 2 }), /in \[0, C\) = \[0, 3\)/);
});

// Sub-center ArcFace (issue 13) on engine-wasm, engine-native and engine-webgpu: the kernels (the
// passes) take each class's largest sub-center cosine over the C·K rows of W, the host the target's
// in float64; the results agree with the float64 reference (losses/_successor.ts) and the PyTorch
// fixtures to the float32 tolerance, every sub-center that is no class's arg-max gets an exactly
// zero row of ∂W, K = 1 is ArcFace, and a tie goes to the first sub-center (as torch.max).
import assert from "node:assert";
import {
  arcFaceHead,
  type HeadInput,
  type HeadResult,
  matrix,
  type Reduction,
  subCenterArcFaceHead,
  type SuccessorHeadSpec,
} from "../mod.ts";
import { assertMatchesReference, shapeOf } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { toleranceOf } from "../testing/tolerances.ts";
import { checkSuccessorCase } from "../testing/parity.ts";
import { successorCasesOf } from "../testing/successor_checks.ts";
import { prepareOn } from "./prepare_head.ts";
import { prepareSyncWasmHead } from "./wasm/engine.ts";
import { ENGINES } from "./registry.ts";
import type { Engine, EngineOptions } from "./engine.ts";

const REDUCTIONS: Reduction[] = ["mean", "sum", "none"];

/** C classes of K random rows each, labels in [0, C). */
function subCenterInput(N: number, D: number, C: number, K: number, seed: number): HeadInput {
  const input = randomHeadInput({ N, D, C: C * K }, seed);
  return { ...input, labels: Array.from({ length: N }, (_, i) => (i * 5 + seed) % C) };
}

/**
 * Every class's K rows close to one direction u_c, and every even sample close to −u_y, so that
 * its target cosine (the largest of the K) lies below cos(π − m) for m = 0.5 (−0.878): ArcFace's
 * fallback (or easy margin) there, the margin elsewhere.
 */
function pastInput(N: number, D: number, C: number, K: number, seed: number): HeadInput {
  const input = subCenterInput(N, D, C, K, seed), w = Float64Array.from(input.weights.data);
  const x = Float64Array.from(input.features.data);
  for (let c = 0; c < C; c++) {
    for (let k = 1; k < K; k++) {
      for (let d = 0; d < D; d++) {
        w[(c * K + k) * D + d] = w[c * K * D + d] * (1 + 0.1 * k) +
          0.05 * w[(c * K + k) * D + d];
      }
    }
  }
  for (let i = 0; i < N; i += 2) {
    const y = input.labels[i];
    for (let d = 0; d < D; d++) x[i * D + d] = -3 * w[y * K * D + d] + 0.02 * x[i * D + d];
  }
  return { ...input, features: matrix(N, D, x), weights: matrix(C * K, D, w) };
}

/** Sub-center 1 of every class a copy of sub-center 0: exact ties, which go to sub-center 0. */
function tiedInput(N: number, D: number, C: number, K: number, seed: number): HeadInput {
  const input = subCenterInput(N, D, C, K, seed), w = Float64Array.from(input.weights.data);
  for (let c = 0; c < C; c++) w.copyWithin((c * K + 1) * D, c * K * D, (c * K + 1) * D);
  return { ...input, weights: matrix(C * K, D, w) };
}

/** The heads: the defaults, easy margin, and a detached margin with other numbers. */
function heads(K: number): SuccessorHeadSpec[] {
  return [
    subCenterArcFaceHead({ subCenters: K }),
    subCenterArcFaceHead({ subCenters: K, easyMargin: true }),
    subCenterArcFaceHead({ subCenters: K, marginGradient: "detached", scale: 30, margin: 0.3 }),
  ];
}

async function run(
  engine: Engine,
  head: SuccessorHeadSpec | ReturnType<typeof arcFaceHead>,
  input: HeadInput,
  reduction: Reduction,
  options: Options = {},
) {
  await using prepared = await prepareOn(engine, head, shapeOf(input), options);
  return await prepared.run(input, { reduction, logits: true });
}

/** Rows of ∂W that the reference leaves at zero (no class's arg-max) are exactly zero. */
function assertZeroRows(
  actual: Float32Array,
  expected: ArrayLike<number>,
  D: number,
  name: string,
) {
  let zero = 0;
  for (let r = 0; r < expected.length / D; r++) {
    if (Array.from({ length: D }, (_, d) => expected[r * D + d]).some((v) => v !== 0)) continue;
    zero++;
    assert.ok(actual.subarray(r * D, r * D + D).every((v) => v === 0), `${name}: ∂W row ${r}`);
  }
  return zero;
}

/** Small blocks: tiles and threads on the CPU engines; on engine-webgpu, chunks of W whose ends
 * split a class's rows and ∂X slices likewise. */
type Options = EngineOptions & { tile?: number; chunkClasses?: number; sliceClasses?: number };
const SMALL = { cpu: { tile: 8, threads: 2 }, webgpu: { chunkClasses: 32, sliceClasses: 16 } };

const CASES: [string, HeadInput, number, typeof SMALL?][] = [
  ["K 3", subCenterInput(7, 13, 11, 3, 1), 3],
  ["N 1", subCenterInput(1, 5, 4, 3, 2), 3],
  ["C 2", subCenterInput(9, 8, 2, 3, 3), 3],
  ["K 1", subCenterInput(6, 9, 5, 1, 4), 1],
  ["K 5, odd D", subCenterInput(5, 7, 6, 5, 5), 5],
  ["K 2, many classes", subCenterInput(17, 33, 300, 2, 6), 2],
  ["K 3, small blocks", subCenterInput(12, 16, 40, 3, 7), 3, SMALL],
  ["past π − m", pastInput(8, 6, 5, 3, 8), 3],
  ["ties", tiedInput(8, 6, 5, 3, 9), 3],
];

for (const engine of [ENGINES.wasm, ENGINES.native, ENGINES.webgpu] as Engine[]) {
  const availability = await engine.availability();
  if (!availability.available) console.log(`SKIPPED ${engine.name}: ${availability.reason}`);
  const ignore = !availability.available;

  Deno.test({
    name: `${engine.name}: sub-center ArcFace matches the float64 reference`,
    ignore,
    async fn() {
      const rtol = toleranceOf(engine).rtol;
      let worst = 0, zeroRows = 0;
      for (const [what, input, K, options] of CASES) {
        for (const head of heads(K)) {
          for (const reduction of REDUCTIONS) {
            const expected = await run(ENGINES.reference as Engine, head, input, reduction);
            const small = engine === ENGINES.webgpu ? options?.webgpu : options?.cpu;
            const actual = await run(engine, head, input, reduction, small);
            const name = `${engine.name} ${JSON.stringify(head.successor)} ${what} ${reduction}`;
            worst = Math.max(
              worst,
              assertMatchesReference(actual, expected as HeadResult, { name, rtol }),
            );
            assert.equal(actual.logits!.cols, input.weights.rows / K, name);
            zeroRows += assertZeroRows(
              actual.gradWeights.data as Float32Array,
              expected.gradWeights.data,
              input.features.cols,
              name,
            );
            assert.equal(actual.state, undefined, name);
          }
        }
      }
      assert.ok(zeroRows > 0, "no sub-center without gradient");
      console.log(`${engine.name}: sub-center worst relative error ${worst.toExponential(2)}`);
    },
  });

  Deno.test({
    name: `${engine.name}: sub-center ArcFace matches the PyTorch fixtures`,
    ignore,
    async fn() {
      let worst = 0;
      for (const c of successorCasesOf("subCenterArcFace")) {
        const parity = await checkSuccessorCase(engine, c, toleranceOf(engine));
        assert.equal(parity.skipped, undefined, c.name);
        assert.deepEqual(parity.failures, [], c.name);
        worst = Math.max(worst, ...Object.values(parity.errors).map((v) => v ?? 0));
      }
      console.log(
        `${engine.name}: sub-center fixtures' worst relative error ${worst.toExponential(2)}`,
      );
    },
  });

  Deno.test({
    name: `${engine.name}: sub-center ArcFace with K = 1 is ArcFace, on the same engine`,
    ignore,
    async fn() {
      const input = subCenterInput(9, 12, 7, 1, 11);
      for (const easyMargin of [false, true]) {
        for (const reduction of REDUCTIONS) {
          const sub = await run(
            engine,
            subCenterArcFaceHead({ subCenters: 1, easyMargin }),
            input,
            reduction,
          );
          const arc = await run(engine, arcFaceHead({ easyMargin }), input, reduction);
          const name = `${engine.name} easyMargin ${easyMargin} ${reduction}`;
          assertMatchesReference(sub, arc as unknown as HeadResult, {
            name,
            rtol: toleranceOf(engine).rtol,
          });
        }
      }
    },
  });

  Deno.test({
    name: `${engine.name}: sub-center ArcFace refuses W rows not a multiple of K and labels ≥ C`,
    ignore,
    async fn() {
      const head = subCenterArcFaceHead({ subCenters: 3 });
      await assert.rejects(
        () => prepareOn(engine, head, { samples: 2, dims: 4, classes: 7 }, {}),
        /weights\.rows must be a multiple of head\.successor\.subCenters \(K = 3/,
      );
      const input = subCenterInput(2, 4, 3, 3, 12);
      await using prepared = await prepareOn(engine, head, shapeOf(input), {});
      await assert.rejects(
        () => prepared.run({ ...input, labels: [0, 3] }),
        /labels must be integers in \[0, C\) = \[0, 3\), got 3 at 1/,
      );
    },
  });
}

Deno.test({
  name: "engine-wasm: a synchronous head switches to sub-center ArcFace and back",
  ignore: !(await ENGINES.wasm.availability()).available,
  async fn() {
    const input = subCenterInput(6, 10, 9, 3, 13), shape = shapeOf(input);
    const head = await prepareSyncWasmHead(arcFaceHead(), shape, { threads: 2 });
    try {
      for (const next of [subCenterArcFaceHead({ subCenters: 3 }), arcFaceHead()]) {
        const actual = head.runSync(next, input, { reduction: "sum" });
        const expected = await run(ENGINES.reference as Engine, next, input, "sum");
        const { logits: _, ...rest } = expected;
        assertMatchesReference(actual, rest as HeadResult, {
          name: next.name,
          rtol: toleranceOf(ENGINES.wasm).rtol,
        });
      }
    } finally {
      head.dispose();
    }
  },
});

Deno.test({
  name:
    "engine-wasm runSync: a head prepared with sub-center ArcFace is laid out for its tile; one prepared with another refuses a sub-center run that needs more memory (not a hang)",
  ignore: !(await ENGINES.wasm.availability()).available,
  async fn() {
    // At N 4, D 256, 150 rows, the sub-center tile (132 rows) needs one page more than ArcFace's.
    const input = subCenterInput(4, 256, 50, 3, 14), shape = shapeOf(input);
    const next = subCenterArcFaceHead({ subCenters: 3 });
    const prepared = await prepareSyncWasmHead(next, shape, { threads: 2 });
    try {
      const expected = await run(ENGINES.reference as Engine, next, input, "mean");
      const { logits: _, ...rest } = expected;
      assertMatchesReference(prepared.runSync(next, input), rest as HeadResult, {
        name: next.name,
        rtol: toleranceOf(ENGINES.wasm).rtol,
      });
    } finally {
      prepared.dispose();
    }
    const other = await prepareSyncWasmHead(arcFaceHead(), shape, { threads: 2 });
    try {
      assert.throws(
        () => other.runSync(next, input),
        /^RangeError: wasm runSync: head "subCenterArcFace" \(angular scale subCenters 3\) needs another layout than this head was prepared for; prepare a head for it$/,
      );
    } finally {
      other.dispose();
    }
  },
});

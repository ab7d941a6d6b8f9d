// engine-wasm against the float64 reference and the PyTorch fixtures, through the engine contract.
import assert from "node:assert";
import { HEAD_CATALOG, marginSoftmaxLoss, matrix } from "../../mod.ts";
import type { HeadInput, HeadSpec, Reduction } from "../../mod.ts";
import type { Radius, TargetMargin } from "../../losses/head_spec.ts";
import { prepareHead, prepareOn } from "../prepare_head.ts";
import type { EngineResult } from "../engine.ts";
import { assertMatchesReference, shapeOf } from "../../testing/engine_checks.ts";
import { fixtureCases } from "../../testing/fixtures.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { checkCase } from "../../testing/parity.ts";
import { toleranceOf } from "../../testing/tolerances.ts";
import { wasmEngine } from "./engine.ts";

/** Relative to each array's largest magnitude, as the fixture parity of float32 engines. */
const RTOL = 1e-4;

/** One prepare, one run, one dispose on engine-wasm (`tile` classes per tile). */
async function runOnce(
  input: HeadInput,
  head: HeadSpec,
  options: { reduction?: Reduction; threads?: number; tile?: number; logits?: boolean } = {},
): Promise<EngineResult> {
  const { threads, tile, ...run } = options;
  await using prepared = tile
    ? await prepareOn(wasmEngine, head, shapeOf(input), { threads, tile })
    : await prepareHead(head, shapeOf(input), { engine: "wasm", threads });
  return await prepared.run(input, run);
}

/** Compares every output with the float64 reference and returns the worst relative error. */
async function compare(
  input: HeadInput,
  head: HeadSpec,
  reduction: Reduction,
  threads: number,
  name: string,
  tile = 8, // small tiles, so that even small heads spread over the threads
): Promise<number> {
  const expected = marginSoftmaxLoss(input, head, { reduction });
  const actual = await runOnce(input, head, { reduction, threads, tile, logits: true });
  return assertMatchesReference(actual, expected, { name, rtol: RTOL });
}

const RADII: Radius[] = [
  { kind: "scale", scale: 64 },
  { kind: "featureNorm" },
  { kind: "normProduct" },
];
const MARGINS: TargetMargin[] = [
  { kind: "none" },
  { kind: "angular", m1: 1, m2: 0.5, m3: 0, fallback: "insightface" },
  { kind: "angular", m1: 1, m2: 0.5, m3: 0, fallback: "easy" },
  { kind: "angular", m1: 1, m2: 0, m3: 0.35, fallback: "none" },
  { kind: "angular", m1: 1.3, m2: 0.2, m3: 0.1, fallback: "none" },
  { kind: "psi", margin: 4, lambda: 0 },
  { kind: "psi", margin: 3, lambda: 5 },
];

/** Every radius × margin × gradient mode, and the linear head. */
function allHeads(): HeadSpec[] {
  const heads: HeadSpec[] = [{ name: "softmax", logits: "linear" }];
  for (const radius of RADII) {
    for (const margin of MARGINS) {
      for (const marginGradient of ["exact", "detached"] as const) {
        const name = `${radius.kind}/${margin.kind}${
          margin.kind === "angular"
            ? `(${margin.m1},${margin.m2},${margin.m3},${margin.fallback})`
            : ""
        }${margin.kind === "psi" ? `(${margin.margin},${margin.lambda})` : ""}/${marginGradient}`;
        heads.push({ name, logits: "angular", radius, margin, marginGradient });
      }
    }
  }
  return heads;
}

Deno.test("engine-wasm: matches the PyTorch fixtures within 1e-4", async (t) => {
  const tolerance = toleranceOf(wasmEngine);
  const worst = new Map<string, { rel: number; where: string }>();
  let ran = 0;
  for (const c of fixtureCases()) {
    const parity = await checkCase(wasmEngine, c, tolerance);
    if (parity.skipped) continue; // center loss stays on the reference
    ran++;
    for (const [output, rel] of Object.entries(parity.errors)) {
      const w = worst.get(c.loss) ?? { rel: 0, where: "" };
      if (rel! >= w.rel) worst.set(c.loss, { rel: rel!, where: `${c.name} ${output}` });
    }
    await t.step(c.name, () => {
      if (parity.failures.length) throw new Error(parity.failures.join("; "));
    });
  }
  assert.ok(ran > 0, "no head fixture case ran");
  for (const [loss, w] of worst) {
    console.log(`engine-wasm ${loss}: worst relative error ${w.rel.toExponential(2)} (${w.where})`);
  }
});

Deno.test("engine-wasm: every head, gradient mode and reduction against float64", async (t) => {
  let worst = 0;
  for (const [h, head] of allHeads().entries()) {
    await t.step(head.name, async () => {
      for (const [r, reduction] of (["mean", "sum", "none"] as const).entries()) {
        // D = 37 and C = 29 exercise the padding; 2 threads split the classes.
        const size = { N: 11, D: r === 0 ? 64 : 37, C: 29, bias: head.logits === "linear" };
        const input = randomHeadInput(size, 10 * h + r);
        worst = Math.max(
          worst,
          await compare(input, head, reduction, 2, `${head.name} ${reduction}`),
        );
      }
    });
  }
  console.log(`engine-wasm: worst relative error against float64 ${worst.toExponential(2)}`);
});

Deno.test("engine-wasm: catalog heads on a larger head, 1 and 3 threads", async () => {
  const input = randomHeadInput({ N: 70, D: 96, C: 403 }, 7);
  for (const entry of HEAD_CATALOG) {
    for (const threads of [1, 3]) {
      await compare(input, entry.head(), "mean", threads, `${entry.name} threads=${threads}`);
    }
  }
});

Deno.test("engine-wasm: every split of rows into the six- and four-row blocks", async () => {
  // The products run six rows at a time and end a block with zero to two four-row ones: tiles of
  // 4 to 20 classes and a shorter last tile (C = 45), 8, 16 and 24 padded samples, cover each split.
  const head = HEAD_CATALOG.find((entry) => entry.name === "arcFace")!.head();
  for (const N of [5, 11, 24]) {
    const input = randomHeadInput({ N, D: 40, C: 45 }, N);
    for (const tile of [4, 8, 12, 16, 20]) {
      await compare(input, head, "mean", 2, `N=${N} tile=${tile}`, tile);
    }
  }
});

Deno.test("engine-wasm: edge cases", async (t) => {
  const heads = allHeads();
  await t.step("one sample, two classes", async () => {
    for (const head of heads) {
      const input = randomHeadInput({ N: 1, D: 3, C: 2, bias: head.logits === "linear" }, 3);
      await compare(input, head, "mean", 2, head.name);
    }
  });
  await t.step("repeated labels", async () => {
    const input = randomHeadInput({ N: 12, D: 16, C: 9 }, 4);
    input.labels = [3, 3, 3, 3, 0, 0, 8, 8, 8, 3, 0, 8];
    for (const head of heads) await compare(input, head, "sum", 2, head.name);
  });
  await t.step("|cos| = 1 exactly gives finite results", async () => {
    // Sample 0 lies on class 0 (c = 1), sample 1 opposite class 1 (c = −1).
    const input = {
      features: matrix(2, 3, [1, 0, 0, 2, 0, 0]),
      weights: matrix(3, 3, [2, 0, 0, -1, 0, 0, 0, 1, 0]),
      labels: [0, 1],
    };
    for (const head of heads) await compare(input, head, "mean", 2, head.name);
  });
  await t.step("target cosines within 1e-9 of 1 (float64 inputs)", async () => {
    const base = randomHeadInput({ N: 6, D: 12, C: 7 }, 11);
    const x = Float64Array.from(base.features.data);
    const w = Float64Array.from(base.weights.data);
    // Half the samples; a batch where every sample saturates (loss ≈ 1e-19, gradients ≈ 1e-22)
    // measures 1.1e-4 of the largest gradient: float32's exp arguments near −44 are that coarse.
    for (let i = 0; i < 6; i += 2) {
      const y = Number(base.labels[i]);
      // x_i = 3·(w_y/‖w_y‖ + ε·e), so c_iy = 1 − O(ε²).
      let norm = 0;
      for (let k = 0; k < 12; k++) norm += w[y * 12 + k] ** 2;
      for (let k = 0; k < 12; k++) x[i * 12 + k] = 3 * w[y * 12 + k] / Math.sqrt(norm);
      x[i * 12 + (i % 12)] += 3e-5 * (i + 1);
    }
    const input = { ...base, features: matrix(6, 12, x), weights: matrix(7, 12, w) };
    for (const head of heads.filter((h) => h.logits === "angular")) {
      await compare(input, head, "mean", 1, head.name);
    }
  });
  await t.step("ArcFace fallback past π − m", async () => {
    // Targets at cosines −0.95 … −0.5: below cos(π − 0.5) ≈ −0.878 the insightface line applies.
    const D = 2, rows: number[] = [];
    const cosines = [-0.95, -0.9, -0.88, -0.87, -0.5, 0.99];
    for (const c of cosines) rows.push(c, Math.sqrt(1 - c * c));
    const input = {
      features: matrix(cosines.length, D, rows),
      weights: matrix(2, D, [1, 0, 0, 1]),
      labels: cosines.map(() => 0),
    };
    for (const head of heads.filter((h) => h.logits === "angular")) {
      await compare(input, head, "mean", 1, head.name);
    }
  });
  await t.step("zero feature and weight rows", async () => {
    const input = randomHeadInput({ N: 5, D: 8, C: 6 }, 9);
    const x = Float64Array.from(input.features.data), w = Float64Array.from(input.weights.data);
    x.fill(0, 8, 16);
    w.fill(0, 16, 24);
    const zeroed = { ...input, features: matrix(5, 8, x), weights: matrix(6, 8, w) };
    for (const head of heads) await compare(zeroed, head, "mean", 2, head.name);
  });
});

Deno.test("engine-wasm: validates like the library and leaves inputs alone", async () => {
  const input = randomHeadInput({ N: 4, D: 8, C: 5 }, 1);
  const head = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
  await assert.rejects(
    () => runOnce({ ...input, labels: [0, 1, 2, 5] }, head),
    /wasm run: labels must be integers in \[0, C\)/,
  );
  await assert.rejects(() => runOnce(input, head, { threads: 0 }), /options.threads must be/);
  await assert.rejects(() => runOnce(input, head, { threads: 65 }), /options.threads must be/);
  await assert.rejects(() => runOnce(input, head, { reduction: "avg" as Reduction }));
  await assert.rejects(
    () => prepareOn(wasmEngine, head, shapeOf(input), { tile: 6 }),
    /options.tile must be a positive multiple of 4/,
  );
  const before = [Array.from(input.features.data), Array.from(input.weights.data)];
  await runOnce(input, head);
  assert.deepStrictEqual([Array.from(input.features.data), Array.from(input.weights.data)], before);
});

Deno.test("engine-wasm: the plain-SIMD fallback build agrees with the relaxed one", async () => {
  const input = randomHeadInput({ N: 20, D: 40, C: 300 }, 5);
  for (const entry of HEAD_CATALOG) {
    const head = entry.head();
    const expected = marginSoftmaxLoss(input, head);
    for (const kernels of ["simd", "relaxed"] as const) {
      await using prepared = await prepareOn(wasmEngine, head, shapeOf(input), {
        threads: 2,
        kernels,
      });
      const r = await prepared.run(input);
      assertMatchesReference(r, expected, { name: `${entry.name} ${kernels}`, rtol: RTOL });
    }
  }
});

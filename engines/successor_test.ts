// The successor heads behind the engine contract: the per-sample kinds (ElasticFace, MagFace,
// AdaFace, CurricularFace) run on engine-wasm, engine-native and engine-webgpu with their target
// terms from losses/successor_targets.ts on the host (AdaFace's non-target cosine clamp and
// CurricularFace's hard negatives in the kernels), and agree with the float64 reference
// (losses/_successor.ts) to the float32 tolerance, the state out equal to the reference's; AdaCos
// runs on the same engines (engines/adacos.ts), its scale within the float32 tolerance of the
// reference's; sub-center ArcFace too (engines/subcenter_test.ts); every other hook, and every kind
// an engine does not compute, is refused naming the hook.
import assert from "node:assert";
import {
  adaCosHead,
  adaFaceHead,
  adaFaceLoss,
  curricularFaceHead,
  curricularFaceLoss,
  elasticFaceHead,
  elasticFaceLoss,
  elasticFaceMargins,
  type HeadInput,
  type HeadResult,
  magFaceHead,
  magFaceLoss,
  matrix,
  type Reduction,
  subCenterArcFaceHead,
  type SuccessorHeadSpec,
} from "../mod.ts";
import { assertMatchesReference, shapeOf } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { toleranceOf } from "../testing/tolerances.ts";
import { prepareOn } from "./prepare_head.ts";
import { headLoss } from "./head_loss.ts";
import { sampleTerms } from "./host/samples.ts";
import { ENGINES } from "./registry.ts";
import type { Engine, EngineResult } from "./engine.ts";
import { checkSuccessorCase } from "../testing/parity.ts";
import { successorCasesOf } from "../testing/successor_checks.ts";

const REDUCTIONS: Reduction[] = ["mean", "sum", "none"];
/** The float32 engines that compute the per-sample kinds with their targets from the host. */
const HOST_ENGINES = [ENGINES.wasm, ENGINES.native, ENGINES.webgpu] as Engine[];

/** The heads of the kinds the host engines compute, for a batch of N. */
function hostHeads(N: number, seed: number): SuccessorHeadSpec[] {
  return [
    elasticFaceHead({ margins: elasticFaceMargins(N, { seed }) }),
    elasticFaceHead({ margins: elasticFaceMargins(N, { seed: seed + 1 }), plus: true }),
    elasticFaceHead({
      margins: elasticFaceMargins(N, { seed, std: 0.3 }),
      marginGradient: "detached",
    }),
    elasticFaceHead({
      variant: "cos",
      scale: 30,
      margins: elasticFaceMargins(N, { variant: "cos", seed }),
      plus: true,
    }),
    magFaceHead(),
    magFaceHead({ easyMargin: false, regularization: 20, scale: 32 }),
  ];
}

/** AdaFace heads: the defaults, and other numbers with a state that puts z_i on both sides. */
function adaFaceHeads(): SuccessorHeadSpec[] {
  return [
    adaFaceHead(),
    adaFaceHead({ scale: 32, margin: 0.5, h: 0.5, alpha: 0.3, state: { mean: 40, std: 30 } }),
  ];
}

/** CurricularFace heads: both margin gradients, t from 0 (the first step) to a late-training 0.6. */
function curricularHeads(): SuccessorHeadSpec[] {
  return [
    curricularFaceHead(),
    curricularFaceHead({ state: { t: 0.6 }, scale: 32, marginGradient: "detached" }),
    curricularFaceHead({ state: { t: 0.3 }, margin: 0.35, alpha: 0.5 }),
  ];
}

/**
 * Hard negatives for CurricularFace (m = 0.5): every sample near its target row (c_y ≈ 0.93, so
 * cos(θ_y + m) ≈ 0.6) with some classes close to the target (c ≈ 0.75…0.95, hard) and the others
 * random (c ≈ 0, easy), and with `far`, a few samples near −w_y (θ_y past π − m: the fallback
 * target, every non-target above cos(θ_y + m) ≈ −0.96 hard).
 */
function hardInput(
  size: { N: number; D: number; C: number },
  seed: number,
  far = false,
): HeadInput {
  const input = randomHeadInput(size, seed);
  const { N, D, C } = size, w = Float64Array.from(input.weights.data), x = new Float64Array(N * D);
  for (let j = 1; j < C; j += 3) {
    for (let k = 0; k < D; k++) w[j * D + k] = w[(j - 1) * D + k] + 0.3 * w[j * D + k];
  }
  for (let i = 0; i < N; i++) {
    const y = input.labels[i], sign = far && i % 3 === 1 ? -1 : 1;
    for (let k = 0; k < D; k++) {
      x[i * D + k] = sign * (w[y * D + k] + 0.35 * input.features.data[i * D + k]) * (1 + i);
    }
  }
  return { ...input, features: matrix(N, D, x), weights: matrix(C, D, w) };
}

/** How many non-targets of a CurricularFace head are hard, and how many targets past π − m. */
function hardCount(head: SuccessorHeadSpec, input: HeadInput): { hard: number; fallback: number } {
  const { rows: N, cols: D } = input.features, C = input.weights.rows;
  const x = input.features.data, w = input.weights.data;
  const s = sampleTerms(head, { N, D, labels: input.labels, x, w, wRow: input.labels });
  const m = (head.successor as { margin: number }).margin;
  let hard = 0, fallback = 0;
  for (let i = 0; i < N; i++) {
    if (s.tc[i] <= Math.cos(Math.PI - m)) fallback++;
    for (let j = 0; j < C; j++) {
      let dot = 0, sq = 0;
      for (let k = 0; k < D; k++) {
        [dot, sq] = [dot + x[i * D + k] * w[j * D + k], sq + w[j * D + k] ** 2];
      }
      const c = dot / (s.cx[i] * Math.sqrt(sq));
      if (j !== input.labels[i] && c > s.hardNegatives!.threshold[i]) hard++;
    }
  }
  return { hard, fallback };
}

/**
 * Cosines within 1e-3 of ±1, for AdaFace's clamp to ±(1 − 1e-3): every class row is ±w_0 plus a
 * little of its own random row (non-target cosines at ±(1 − 1e-5), clamped, and some at
 * ±(0.99…0.999), inside), and every sample ±w_0 slightly tilted, its norm spread over [3, 140].
 */
function clampInput(size: { N: number; D: number; C: number }, seed: number): HeadInput {
  const input = randomHeadInput(size, seed);
  const { N, D, C } = size, w = Float64Array.from(input.weights.data), x = new Float64Array(N * D);
  const spread = [0, 0.003, 0.006, 0.03, 0.05, 0.07];
  for (let j = 1; j < C; j++) {
    const sign = j % 3 === 2 ? -1 : 1, d = spread[j % 6];
    for (let k = 0; k < D; k++) w[j * D + k] = sign * (w[k] + d * w[j * D + k]);
  }
  for (let i = 0; i < N; i++) {
    const sign = i % 2 === 0 ? 1 : -1, norm = [3, 15, 24, 57, 140][i % 5];
    for (let k = 0; k < D; k++) {
      x[i * D + k] = sign * norm * (w[k] + 1e-4 * (i + 1) * (((k * 7 + i) % 5) - 2));
    }
  }
  return { ...input, features: matrix(N, D, x), weights: matrix(C, D, w) };
}

/** Random rows, their norms spread over MagFace's clip [10, 110] and past both bounds. */
function spreadInput(size: { N: number; D: number; C: number }, seed: number): HeadInput {
  const input = randomHeadInput(size, seed);
  const { N, D } = size, x = Float64Array.from(input.features.data);
  for (let i = 0; i < N; i++) {
    let sq = 0;
    for (let k = 0; k < D; k++) sq += x[i * D + k] ** 2;
    const target = [3, 10, 24, 57, 110, 140][(i + seed) % 6] * (1 + 0.01 * i);
    for (let k = 0; k < D; k++) x[i * D + k] *= target / Math.sqrt(sq);
  }
  return { ...input, features: matrix(N, D, x) };
}

/** Rows whose target cosine is ±1 up to a tiny tilt (and, for one sample, exactly 1). */
function nearUnitInput(size: { N: number; D: number; C: number }, seed: number): HeadInput {
  const input = spreadInput(size, seed);
  const { N, D } = size, x = Float64Array.from(input.features.data), w = input.weights.data;
  for (let i = 0; i < N; i++) {
    const y = input.labels[i], sign = i % 2 === 0 ? 1 : -1, tilt = i === 0 ? 0 : 1e-5 * i;
    for (let k = 0; k < D; k++) x[i * D + k] = sign * 40 * w[y * D + k] + tilt * (k % 3 - 1);
  }
  return { ...input, features: matrix(N, D, x) };
}

async function run(
  engine: Engine,
  head: SuccessorHeadSpec,
  input: HeadInput,
  reduction: Reduction,
) {
  await using prepared = await prepareOn(engine, head, shapeOf(input), {});
  return await prepared.run(input, { reduction, logits: true });
}

async function checkAgainstReference(
  engine: Engine,
  inputs: [string, HeadInput][],
  heads: (N: number) => SuccessorHeadSpec[] = (N) => hostHeads(N, 5),
) {
  const rtol = toleranceOf(engine).rtol;
  let worst = 0;
  for (const [what, input] of inputs) {
    for (const head of heads(input.features.rows)) {
      for (const reduction of REDUCTIONS) {
        const expected = await run(ENGINES.reference as Engine, head, input, reduction);
        const actual = await run(engine, head, input, reduction);
        const name = `${engine.name} ${head.name} ${JSON.stringify(head.successor).slice(0, 60)} ` +
          `${what} ${reduction}`;
        worst = Math.max(
          worst,
          assertMatchesReference(actual, expected as HeadResult, { name, rtol }),
        );
        if (expected.margins) assert.deepEqual(actual.margins, expected.margins, name);
        // AdaFace's next { mean, std } (from float64 norms on both); none for the others.
        assert.deepEqual(actual.state, expected.state, name);
      }
    }
  }
  return worst;
}

for (const engine of HOST_ENGINES) {
  const availability = await engine.availability();
  if (!availability.available) console.log(`SKIPPED ${engine.name}: ${availability.reason}`);
  Deno.test({
    name: `${engine.name}: ElasticFace and MagFace heads match the float64 reference`,
    ignore: !availability.available,
    async fn() {
      const inputs: [string, HeadInput][] = [
        ["N 1", spreadInput({ N: 1, D: 5, C: 4 }, 1)],
        ["odd D", spreadInput({ N: 7, D: 13, C: 11 }, 2)],
        ["D 3", spreadInput({ N: 6, D: 3, C: 3 }, 3)],
        ["C 2", spreadInput({ N: 9, D: 8, C: 2 }, 4)],
        ["many classes", spreadInput({ N: 17, D: 33, C: 300 }, 5)],
        ["cos near ±1", nearUnitInput({ N: 8, D: 9, C: 6 }, 6)],
      ];
      const worst = await checkAgainstReference(engine, inputs);
      console.log(
        `${engine.name}: worst relative error vs the reference ${worst.toExponential(2)}`,
      );
    },
  });

  Deno.test({
    name: `${engine.name}: successor heads stay finite at a zero feature row and norms at the clip`,
    ignore: !availability.available,
    async fn() {
      const input = spreadInput({ N: 4, D: 6, C: 5 }, 8);
      const x = Float64Array.from(input.features.data);
      x.fill(0, 0, 6); // a zero row
      for (let k = 6; k < 12; k++) x[k] = k === 6 ? 10 : 0; // ‖x‖ = 10 exactly (the lower clip)
      for (let k = 12; k < 18; k++) x[k] = k === 12 ? 110 : 0; // ‖x‖ = 110 (the upper clip)
      const edge = { ...input, features: matrix(4, 6, x) };
      await checkAgainstReference(engine, [["edges", edge]]);
    },
  });

  Deno.test({
    name:
      `${engine.name}: AdaFace heads match the float64 reference, the cosine clamp and state included`,
    ignore: !availability.available,
    async fn() {
      const inputs: [string, HeadInput][] = [
        ["N 1 clamped", clampInput({ N: 1, D: 7, C: 9 }, 8)],
        ["clamped", clampInput({ N: 8, D: 9, C: 13 }, 15)],
        ["clamped, many classes", clampInput({ N: 17, D: 33, C: 300 }, 24)],
        ["N 1", spreadInput({ N: 1, D: 5, C: 4 }, 1)],
        ["C 2", spreadInput({ N: 9, D: 8, C: 2 }, 4)],
        ["cos near ±1", nearUnitInput({ N: 8, D: 9, C: 6 }, 6)],
      ];
      const worst = await checkAgainstReference(engine, inputs, adaFaceHeads);
      console.log(
        `${engine.name}: AdaFace's worst relative error vs the reference ${worst.toExponential(2)}`,
      );
      // The state goes along from step to step, as on the reference.
      const input = clampInput({ N: 8, D: 9, C: 13 }, 15);
      let state = { mean: 20, std: 100 }, reference = state;
      for (let step = 0; step < 3; step++) {
        const r = await run(engine, adaFaceHead({ state }), input, "mean");
        const e = await run(
          ENGINES.reference as Engine,
          adaFaceHead({ state: reference }),
          input,
          "mean",
        );
        assert.deepEqual(r.state, e.state, `step ${step}`);
        state = r.state as typeof state;
        reference = e.state as typeof reference;
      }
    },
  });

  Deno.test({
    name:
      `${engine.name}: CurricularFace heads match the float64 reference, hard negatives, fallback and t included`,
    ignore: !availability.available,
    async fn() {
      const inputs: [string, HeadInput][] = [
        ["hard negatives", hardInput({ N: 8, D: 9, C: 13 }, 15)],
        ["past π − m", hardInput({ N: 9, D: 7, C: 10 }, 16, true)],
        ["many classes", hardInput({ N: 17, D: 33, C: 300 }, 24, true)],
        ["N 1", hardInput({ N: 1, D: 5, C: 4 }, 1)],
        ["C 2", hardInput({ N: 9, D: 8, C: 2 }, 4, true)],
        ["random", spreadInput({ N: 7, D: 13, C: 11 }, 2)],
      ];
      for (const [what, input] of inputs.slice(0, 3)) {
        const { hard, fallback } = hardCount(curricularFaceHead(), input);
        assert.ok(hard >= 4 && (what === "hard negatives" || fallback >= 2), `${what}: ${hard}`);
      }
      const worst = await checkAgainstReference(engine, inputs, curricularHeads);
      console.log(
        `${engine.name}: CurricularFace's worst relative error vs the reference ` +
          worst.toExponential(2),
      );
      // t goes along from step to step, as on the loss page.
      const input = inputs[1][1];
      let state = { t: 0 };
      for (let step = 0; step < 3; step++) {
        const r = await run(engine, curricularFaceHead({ state }), input, "mean");
        const page = curricularFaceLoss(input, { state });
        assert.deepEqual(r.state, page.state, `step ${step}`);
        state = r.state as typeof state;
      }
    },
  });

  Deno.test({
    name: `${engine.name}: the cosine clamp changes the logits and gradients of AdaFace only`,
    ignore: !availability.available,
    async fn() {
      // Non-target cosines past 1 − 1e-3 hold the logit at s·(1 − 1e-3) and pass no gradient.
      const input = clampInput({ N: 4, D: 7, C: 9 }, 3);
      const r = await run(engine, adaFaceHead(), input, "sum");
      const { rows: N, cols: C } = r.logits!;
      let clamped = 0;
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < C; j++) {
          if (j === input.labels[i]) continue;
          const z = r.logits!.data[i * C + j];
          assert.ok(Math.abs(z) <= 64 * Math.fround(1 - 1e-3) * (1 + 1e-7), `z ${i} ${j}: ${z}`);
          if (Math.abs(z) >= 64 * (1 - 1e-3) * (1 - 1e-6)) clamped++;
        }
      }
      assert.ok(clamped >= N, `${clamped} clamped logits`);
    },
  });
}

Deno.test("reference engine: the successor heads give their loss pages' results, state included", async () => {
  const input = spreadInput({ N: 6, D: 5, C: 7 }, 11);
  const margins = elasticFaceMargins(6, { seed: 3 });
  const pairs: [SuccessorHeadSpec, HeadResult & { state?: unknown; margins?: unknown }][] = [
    [elasticFaceHead({ margins, plus: true }), elasticFaceLoss(input, { margins, plus: true })],
    [magFaceHead(), magFaceLoss(input)],
  ];
  const state = { mean: 31, std: 12 };
  pairs.push([adaFaceHead({ state, alpha: 0.2 }), adaFaceLoss(input, { state, alpha: 0.2 })]);
  for (const [head, page] of pairs) {
    const r = await headLoss(input, head, { logits: true });
    assert.equal(r.loss, page.loss, head.name);
    assert.deepEqual(r.gradFeatures, page.gradFeatures, head.name);
    assert.deepEqual(r.logits, page.logits, head.name);
    assert.deepEqual(r.state, head.successor.kind === "adaFace" ? page.state : undefined);
    assert.deepEqual(r.margins, page.margins, head.name);
  }
  // The state goes along from step to step through the heads, optax style.
  let s = { mean: 20, std: 100 };
  for (let step = 0; step < 3; step++) {
    const r = await headLoss(input, adaFaceHead({ state: s }), { engine: "reference" });
    const page = adaFaceLoss(input, { state: s });
    assert.deepEqual(r.state, page.state);
    s = r.state as typeof s;
  }
});

Deno.test("sub-center ArcFace (engines/subcenter_test.ts) and CurricularFace run on every engine; every engine checks the heads", async () => {
  const shape = { samples: 2, dims: 3, classes: 6 };
  for (const engine of Object.values(ENGINES) as Engine[]) {
    for (const head of [subCenterArcFaceHead({ subCenters: 3 }), curricularFaceHead()]) {
      await (await prepareOn(engine, head, shape, {})).dispose();
    }
    await assert.rejects(
      () => prepareOn(engine, elasticFaceHead({ margins: [0.5, 0.5, 0.5] }), shape, {}),
      /head\.successor\.margins must hold one margin per sample \(shape\.samples = 2\), got 3/,
    );
    const magFace = magFaceHead(), bad = { ...magFace, successor: { ...magFace.successor } };
    (bad.successor as { upperNorm: number }).upperNorm = 5;
    await assert.rejects(
      () => prepareOn(engine, bad, shape, {}),
      /head\.successor \("magFace"\)/,
    );
  }
});

Deno.test("host target terms: AdaFace's state and targets are the reference's (for the engines' host)", () => {
  const input = spreadInput({ N: 5, D: 4, C: 3 }, 12);
  const head = adaFaceHead({ state: { mean: 40, std: 30 }, alpha: 0.3 });
  const page = adaFaceLoss(input, { state: { mean: 40, std: 30 }, alpha: 0.3 });
  const { rows: N, cols: D } = input.features;
  const s = sampleTerms(head, {
    N,
    D,
    labels: input.labels,
    x: input.features.data,
    w: input.weights.data,
    wRow: input.labels,
  });
  assert.deepEqual(s.state, page.state);
  for (let i = 0; i < N; i++) {
    const zy = page.logits.data[i * input.weights.rows + input.labels[i]];
    assert.ok(Math.abs(s.zy[i] - zy) <= 1e-12 * Math.abs(zy), `z_y of sample ${i}`);
  }
});

// ── AdaCos on the float32 engines (engines/adacos.ts): two runs of the scale-only head ──

const ADACOS_ENGINES = [ENGINES.wasm, ENGINES.native, ENGINES.webgpu] as Engine[];

/** The reference's and the engine's results, the scale's relative error checked too. */
async function adaCosPair(engine: Engine, head: SuccessorHeadSpec, input: HeadInput, r: Reduction) {
  const expected = await run(ENGINES.reference as Engine, head, input, r);
  const actual = await run(engine, head, input, r);
  return { actual, expected };
}

function scaleError(actual: EngineResult, expected: EngineResult, name: string, rtol: number) {
  const a = actual.state?.scale, e = expected.state?.scale;
  assert.ok(typeof a === "number" && typeof e === "number", `${name}: no state.scale`);
  const error = Math.abs(a - e) / e;
  assert.ok(error <= rtol, `${name}: scale ${a} vs ${e} (relative error ${error})`);
  return error;
}

/** AdaCos heads: the initial scale, a given one, a frozen one. */
const adaCosHeads = (): SuccessorHeadSpec[] => [
  adaCosHead(),
  adaCosHead({ state: { scale: 30 } }),
  adaCosHead({ state: { scale: 12 }, updateScale: false }),
  adaCosHead({ updateScale: false }),
];

for (const engine of ADACOS_ENGINES) {
  const availability = await engine.availability();
  if (!availability.available) console.log(`SKIPPED ${engine.name}: ${availability.reason}`);
  const rtol = toleranceOf(engine).rtol;

  Deno.test({
    name: `${engine.name}: AdaCos matches the float64 reference, its scale included`,
    ignore: !availability.available,
    async fn() {
      const inputs: [string, HeadInput][] = [
        ["N 1", randomHeadInput({ N: 1, D: 5, C: 4 }, 1)],
        ["even N", randomHeadInput({ N: 8, D: 13, C: 11 }, 2)],
        ["odd N", randomHeadInput({ N: 7, D: 9, C: 6 }, 3)],
        ["C 3", randomHeadInput({ N: 6, D: 3, C: 3 }, 4)],
        ["many classes", randomHeadInput({ N: 17, D: 33, C: 300 }, 5)],
        ["cos near ±1", nearUnitInput({ N: 8, D: 9, C: 6 }, 6)],
      ];
      let worst = 0, worstScale = 0;
      for (const [what, input] of inputs) {
        for (const head of adaCosHeads()) {
          for (const reduction of REDUCTIONS) {
            const { actual, expected } = await adaCosPair(engine, head, input, reduction);
            const name = `${engine.name} ${JSON.stringify(head.successor)} ${what} ${reduction}`;
            worst = Math.max(
              worst,
              assertMatchesReference(actual, expected as HeadResult, { name, rtol }),
            );
            worstScale = Math.max(worstScale, scaleError(actual, expected, name, rtol));
            if ("updateScale" in head.successor && !head.successor.updateScale) {
              assert.deepEqual(actual.state, expected.state, name);
            }
          }
        }
      }
      console.log(
        `${engine.name}: AdaCos's worst relative error vs the reference ${worst.toExponential(2)}` +
          `, of the scale ${worstScale.toExponential(2)}`,
      );
    },
  });

  Deno.test({
    name:
      `${engine.name}: AdaCos's scale goes along from step to step; a large scale overflows nothing`,
    ignore: !availability.available,
    async fn() {
      const input = randomHeadInput({ N: 12, D: 16, C: 40 }, 7);
      let state = { scale: 2 }, reference = state;
      for (let step = 0; step < 4; step++) {
        const { actual } = await adaCosPair(engine, adaCosHead({ state }), input, "mean");
        const { actual: e } = await adaCosPair(
          ENGINES.reference as Engine,
          adaCosHead({ state: reference }),
          input,
          "mean",
        );
        scaleError(actual, e, `step ${step}`, rtol);
        state = actual.state as typeof state;
        reference = e.state as typeof reference;
      }
      // s = 1000: e^(s·c_ij) and e^ℓ_i overflow float64 (checked here on the frozen run at s),
      // ln B does not.
      const frozen = await run(
        engine,
        adaCosHead({ state: { scale: 1000 }, updateScale: false }),
        input,
        "none",
      );
      assert.ok(Math.max(...frozen.losses) > 710 && Math.max(...frozen.logits!.data) > 710);
      const head = adaCosHead({ state: { scale: 1000 } });
      for (const reduction of REDUCTIONS) {
        const { actual, expected } = await adaCosPair(engine, head, input, reduction);
        const name = `${engine.name} s 1000 ${reduction}`;
        assertMatchesReference(actual, expected as HeadResult, { name, rtol });
        scaleError(actual, expected, name, rtol);
        assert.ok(expected.state!.scale > 100, `${name}: ${expected.state!.scale}`);
      }
    },
  });

  Deno.test({
    name: `${engine.name}: an AdaCos run reads the caller's arrays at once, float32 or float64`,
    ignore: !availability.available,
    async fn() {
      const input = randomHeadInput({ N: 6, D: 7, C: 9 }, 9), shape = shapeOf(input);
      const expected = await run(ENGINES.reference as Engine, adaCosHead(), input, "mean");
      await using head = await prepareOn(engine, adaCosHead(), shape, {});
      for (const F of [Float64Array, Float32Array, Float64Array]) {
        const x = F.from(input.features.data), w = F.from(input.weights.data);
        const mine = { ...input, features: matrix(6, 7, x), weights: matrix(9, 7, w) };
        const pending = head.run(mine);
        x.fill(1e3); // changed before the second run of the scale-only head: it must not see it
        w.fill(-1e3);
        const actual = await pending;
        const name = `${engine.name} ${F.name}`;
        assertMatchesReference(actual, expected as HeadResult, { name, rtol });
        scaleError(actual, expected, name, rtol);
      }
    },
  });

  Deno.test({
    name: `${engine.name}: AdaCos matches the PyTorch fixtures (the parity matrix's check)`,
    ignore: !availability.available,
    async fn() {
      let worst = 0;
      for (const c of successorCasesOf("adaCos")) {
        const parity = await checkSuccessorCase(engine, c, toleranceOf(engine));
        assert.equal(parity.skipped, undefined, c.name);
        assert.deepEqual(parity.failures, [], c.name);
        for (const rel of Object.values(parity.errors)) worst = Math.max(worst, rel!);
      }
      console.log(
        `${engine.name}: AdaCos fixtures' worst relative error ${worst.toExponential(2)}`,
      );
    },
  });
}

// The WebGPU engine against the float64 reference, in float32 (rtol 1e-4 relative to the largest
// expected magnitude), on every head kind, gradient mode and reduction; its fixture parity is
// backends/parity_test.ts's, as for every backend.
import assert from "node:assert";
import {
  HEAD_CATALOG,
  type HeadInput,
  type HeadSpec,
  marginSoftmaxLoss,
  matrix,
  type Reduction,
} from "../../mod.ts";
import { toleranceOf } from "../../backends/tolerances.ts";
import { closeness } from "../../testing/assert_close.ts";
import { assertMatchesReference } from "../../testing/engine_checks.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { webgpuEngineBackend } from "./backend.ts";
import { webgpuHeadLoss } from "./head_loss.ts";
import { prepareEngine } from "./_engine.ts";

const RTOL = toleranceOf(webgpuEngineBackend).rtol;
const REDUCTIONS: Reduction[] = ["mean", "sum", "none"];

const availability = await webgpuEngineBackend.availability();
const skip = availability.available ? "" : availability.reason;
if (skip) console.log(`SKIPPED engine-webgpu tests: ${skip}`);

/** Every catalog head with its default options, angular ones in both gradient modes. */
function heads(): HeadSpec[] {
  return HEAD_CATALOG.flatMap((entry): HeadSpec[] => {
    const head = entry.head();
    if (head.logits === "linear") return [head];
    return [{ ...head, marginGradient: "exact" }, { ...head, marginGradient: "detached" }];
  });
}

/** Relative errors of the engine's outputs against the float64 reference; throws past RTOL. */
async function compareWithReference(
  input: HeadInput,
  head: HeadSpec,
  reduction: Reduction,
  name: string,
  rtol = RTOL,
): Promise<number> {
  const expected = marginSoftmaxLoss(input, head, { reduction });
  const actual = await webgpuHeadLoss(input, head, { reduction });
  return assertMatchesReference(actual, expected, { name, rtol });
}

Deno.test({
  name: "engine-webgpu: matches the float64 reference on every head, gradient mode and reduction",
  ignore: skip !== "",
  async fn(t) {
    for (const head of heads()) {
      const mode = head.logits === "angular" ? head.marginGradient : "linear";
      await t.step(`${head.name} ${mode}`, async () => {
        let worst = 0;
        for (const [k, reduction] of REDUCTIONS.entries()) {
          // Sizes that are not multiples of any block, so the padding is exercised.
          const size = { N: 19, D: 37, C: 83, bias: head.logits === "linear" };
          const input = randomHeadInput(size, 11 + k);
          worst = Math.max(
            worst,
            await compareWithReference(input, head, reduction, `${head.name} ${reduction}`),
          );
        }
        console.log(`  ${head.name} ${mode}: worst relative error ${worst.toExponential(2)}`);
      });
    }
  },
});

Deno.test({
  name: "engine-webgpu: matches the float64 reference at 64 × 128 × 1000",
  ignore: skip !== "",
  async fn() {
    const lines: string[] = [];
    for (const head of heads()) {
      if (head.logits === "angular" && head.marginGradient === "detached") continue;
      const input = randomHeadInput({ N: 64, D: 128, C: 1000, bias: head.logits === "linear" }, 4);
      const worst = await compareWithReference(input, head, "mean", `${head.name} 64×128×1000`);
      lines.push(`${head.name}: ${worst.toExponential(2)}`);
    }
    console.log(`  worst relative error per head: ${lines.join(", ")}`);
  },
});

Deno.test({
  name: "engine-webgpu: W split into class chunks gives the same results",
  ignore: skip !== "",
  async fn() {
    for (const head of heads()) {
      const input = randomHeadInput({ N: 19, D: 37, C: 83, bias: head.logits === "linear" }, 8);
      const expected = marginSoftmaxLoss(input, head, { reduction: "sum" });
      const engine = await prepareEngine(head, input, { reduction: "sum", chunkClasses: 32 });
      try {
        const actual = await engine.run();
        const pairs: [ArrayLike<number>, ArrayLike<number>][] = [
          [actual.losses, expected.losses],
          [actual.gradFeatures, expected.gradFeatures.data],
          [actual.gradWeights, expected.gradWeights.data],
        ];
        if (expected.gradBias) pairs.push([actual.gradBias!, expected.gradBias]);
        for (const [a, e] of pairs) {
          const { relError } = closeness(a, e);
          assert.ok(relError <= RTOL, `${head.name}: relative error ${relError}`);
        }
      } finally {
        engine.dispose();
      }
    }
  },
});

Deno.test({
  name: "engine-webgpu: edge shapes (N = 1, C = 2, repeated labels)",
  ignore: skip !== "",
  async fn() {
    for (const head of heads()) {
      const one = randomHeadInput({ N: 1, D: 5, C: 2, bias: head.logits === "linear" }, 3);
      await compareWithReference(one, head, "mean", `${head.name} N=1 C=2`);
      const same = randomHeadInput({ N: 9, D: 6, C: 4 }, 5);
      same.labels = Array.from({ length: 9 }, () => 2);
      await compareWithReference(same, head, "sum", `${head.name} repeated labels`);
    }
  },
});

/** Features that are ±(a multiple of) their target's weight row: the target cosine is ±1 exactly. */
function parallelInput(): HeadInput {
  const weights = randomHeadInput({ N: 1, D: 8, C: 6 }, 9).weights;
  const labels = [0, 1, 2, 3];
  const features = matrix(4, 8);
  labels.forEach((y, i) => {
    const factor = i % 2 === 0 ? 2 : -0.5;
    for (let k = 0; k < 8; k++) features.data[i * 8 + k] = factor * weights.data[y * 8 + k];
  });
  return { features, weights, labels };
}

Deno.test({
  name: "engine-webgpu: |cos θ| = 1 exactly gives finite results",
  ignore: skip !== "",
  async fn() {
    const input = parallelInput();
    const lines: string[] = [];
    for (const head of heads()) {
      const result = await webgpuHeadLoss(input, head);
      for (
        const v of [
          result.loss,
          ...result.losses,
          ...result.gradFeatures.data,
          ...result.gradWeights.data,
        ]
      ) {
        assert.ok(Number.isFinite(v), `${head.name}: non-finite ${v}`);
      }
      const expected = marginSoftmaxLoss(input, head);
      const name = `${head.name} ${head.logits === "angular" ? head.marginGradient : ""}`;
      const loss = closeness(result.losses, expected.losses).relError;
      assert.ok(loss <= RTOL, `${name}: losses off by ${loss}`);
      const grad = Math.max(
        closeness(result.gradFeatures.data, expected.gradFeatures.data).relError,
        closeness(result.gradWeights.data, expected.gradWeights.data).relError,
      );
      // f′(c) → ∞ as θ → 0 for margins with m2 ≠ 0 or m1 ≠ 1: float32 cannot tell c = 1 from its
      // neighbour, so only bounded slopes are held to RTOL there (see the report in the README).
      const singular = head.logits === "angular" && head.marginGradient === "exact" &&
        head.margin.kind === "angular" && (head.margin.m2 !== 0 || head.margin.m1 !== 1);
      if (!singular) assert.ok(grad <= RTOL, `${name}: gradients off by ${grad}`);
      lines.push(`${name}: losses ${loss.toExponential(1)}, gradients ${grad.toExponential(1)}`);
    }
    console.log(`  relative errors at |cos θ| = 1:\n  ${lines.join("\n  ")}`);
  },
});

Deno.test({
  name: "engine-webgpu: angular margins on every fallback and psi margin",
  ignore: skip !== "",
  async fn() {
    // Wide angles: many targets past π − m, where the fallbacks differ.
    const input = randomHeadInput({ N: 24, D: 3, C: 7 }, 21);
    const base = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
    assert.ok(base.logits === "angular");
    const margins: HeadSpec[] = [];
    for (const fallback of ["none", "insightface", "easy"] as const) {
      for (const [m1, m2, m3] of [[1, 0.5, 0], [1, 0, 0.35], [1.4, 0.3, 0.2], [0.8, 0.2, 0.1]]) {
        margins.push({ ...base, margin: { kind: "angular", m1, m2, m3, fallback } });
      }
    }
    for (const margin of [1, 2, 3, 4, 5]) {
      for (const lambda of [0, 2.5]) {
        margins.push({
          ...base,
          radius: { kind: "featureNorm" },
          margin: { kind: "psi", margin, lambda },
        });
      }
    }
    let worst = 0;
    for (const head of margins) {
      for (const marginGradient of ["exact", "detached"] as const) {
        worst = Math.max(
          worst,
          await compareWithReference(
            input,
            { ...head, marginGradient } as HeadSpec,
            "mean",
            `${JSON.stringify(head.logits === "angular" ? head.margin : {})} ${marginGradient}`,
          ),
        );
      }
    }
    console.log(
      `  worst relative error ${worst.toExponential(2)} over ${2 * margins.length} heads`,
    );
  },
});

Deno.test({
  name: "engine-webgpu: validates like the reference and never touches its inputs",
  ignore: skip !== "",
  async fn() {
    const head = HEAD_CATALOG.find((e) => e.name === "cosFace")!.head();
    const input = randomHeadInput({ N: 3, D: 4, C: 5 }, 1);
    const bad = { ...input, labels: [0, 5, 1] };
    assert.throws(() => marginSoftmaxLoss(bad, head), /labels must be integers in \[0, C\)/);
    await assert.rejects(() => webgpuHeadLoss(bad, head), /labels must be integers in \[0, C\)/);
    const before = [Array.from(input.features.data), Array.from(input.weights.data)];
    await webgpuHeadLoss(input, head);
    assert.deepStrictEqual(
      [Array.from(input.features.data), Array.from(input.weights.data)],
      before,
    );
  },
});

// The host maths alone: what the kernels compute is simulated here in float64, so the float64 steps
// before and after them must reproduce the reference to float32 rounding of the outputs.
import assert from "node:assert";
import { HEAD_CATALOG, type HeadInput, type HeadSpec, marginSoftmaxLoss } from "../../mod.ts";
import type { Reduction } from "../../losses/types.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import { closeness } from "../../testing/assert_close.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { sampleMaths, type Samples } from "./_inputs.ts";
import * as F from "./_finish.ts";

/** What the kernels leave for the host, computed in float64 (non-targets only, as they do). */
function simulateKernels(head: HeadSpec, input: HeadInput, s: Samples, reduction: Reduction) {
  const { N, D } = s, C = input.weights.rows, w = input.weights.data;
  const angular = head.logits === "angular", radius = angular ? head.radius.kind : undefined;
  const weight = reduction === "mean" ? 1 / N : 1;
  const nw = Array.from({ length: C }, (_, j) => Math.hypot(...w.subarray(j * D, j * D + D)));
  const icw = nw.map((n) => angular ? 1 / Math.max(n, NORM_EPS) : 1);
  const cos = new Float64Array(C * N), z = new Float64Array(C * N);
  for (let j = 0; j < C; j++) {
    for (let i = 0; i < N; i++) {
      let dot = 0;
      for (let k = 0; k < D; k++) dot += s.x[i * D + k] / s.cx[i] * w[j * D + k];
      cos[j * N + i] = dot * icw[j] + (input.bias ? input.bias[j] : 0);
      z[j * N + i] = s.a[i] * (radius === "normProduct" ? nw[j] : 1) * cos[j * N + i];
    }
  }
  const stats = new Float64Array(2 * N), logz = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const others = Array.from({ length: C }, (_, j) => z[j * N + i]).filter((_, j) =>
      j !== s.labels[i]
    );
    const M = Math.max(...others), S = others.reduce((t, v) => t + Math.exp(v - M), 0);
    stats.set([M, S], 2 * i);
    logz[i] = M + Math.log(S + Math.exp(s.zy[i] - M));
  }
  const part = {
    gx: new Float64Array(N * D),
    sumx: new Float64Array(N),
    grada: new Float64Array(N),
  };
  const gw = new Float32Array(C * D), gb = new Float32Array(C);
  for (let j = 0; j < C; j++) {
    const b = radius === "normProduct" ? nw[j] : 1;
    let colGc = 0, colGz = 0;
    for (let i = 0; i < N; i++) {
      if (s.labels[i] === j) continue;
      const c = cos[j * N + i], gz = weight * Math.exp(z[j * N + i] - logz[i]);
      const g = angular ? gz * s.a[i] * b : gz; // ∂loss/∂c (∂loss/∂z when linear)
      for (let k = 0; k < D; k++) {
        part.gx[i * D + k] += g * w[j * D + k] * icw[j];
        gw[j * D + k] += g * s.x[i * D + k] / s.cx[i] * icw[j];
      }
      part.sumx[i] += g * c;
      if (radius !== "scale") part.grada[i] += gz * b * c;
      colGc += g * c;
      colGz += gz * s.a[i] * c;
      gb[j] += gz;
    }
    if (!angular) continue;
    const coef = (nw[j] > NORM_EPS ? -colGc * icw[j] : 0) + (radius === "normProduct" ? colGz : 0);
    for (let k = 0; k < D; k++) gw[j * D + k] += nw[j] > 0 ? coef / nw[j] * w[j * D + k] : 0;
  }
  return { stats, part, gw, gb, cos, nw: Float64Array.from(nw), weight, radius };
}

function finish(head: HeadSpec, input: HeadInput, reduction: Reduction) {
  const N = input.features.rows, D = input.features.cols, C = input.weights.rows;
  const s = sampleMaths("t", head, {
    N,
    D,
    x: Float64Array.from(input.features.data),
    w: Float64Array.from(input.weights.data),
    labels: input.labels,
    bias: input.bias,
  });
  const k = simulateKernels(head, input, s, reduction);
  const losses = F.lossesOf(k.stats, s.zy, N, reduction);
  const gradFeatures = F.gradFeaturesOf(s, k.radius, [k.part], losses, k.weight, D);
  const gradBias = input.bias ? k.gb : undefined;
  F.addTargetGradients(s, k.radius, losses, k.weight, k.gw, gradBias);
  const logits = F.logitsOf(s, k.cos, N, C, k.radius === "normProduct" ? k.nw : undefined);
  return { losses, gradFeatures, gradWeights: k.gw, gradBias, logits };
}

Deno.test("_finish: float64 host maths around simulated kernels give the reference", () => {
  const heads = HEAD_CATALOG.map((e) => e.head());
  for (const [h, head] of heads.entries()) {
    for (const reduction of ["mean", "none"] as const) {
      const input = randomHeadInput({ N: 5, D: 6, C: 7, bias: head.logits === "linear" }, 20 + h);
      const expected = marginSoftmaxLoss(input, head, { reduction });
      const actual = finish(head, input, reduction);
      const pairs = [
        ["loss", [actual.losses.loss], [expected.loss]],
        ["losses", actual.losses.losses, expected.losses],
        ["gradFeatures", actual.gradFeatures, expected.gradFeatures.data],
        ["gradWeights", actual.gradWeights, expected.gradWeights.data],
        ["logits", actual.logits, expected.logits.data],
        ["gradBias", actual.gradBias ?? [], expected.gradBias ?? []],
      ] as const;
      for (const [name, a, e] of pairs) {
        const { relError } = closeness(a, e);
        // Float64 all the way for the losses; the arrays are float32.
        assert.ok(relError < (name.startsWith("loss") ? 1e-12 : 3e-7), `${head.name} ${name}`);
      }
    }
  }
});

Deno.test("lossesOf: log1p of the non-target sum keeps tiny losses, 1 − p_y never cancels", () => {
  // One non-target class at z = 0 and a target at z_y: loss = log(1 + e^(−z_y)).
  for (const zy of [1, 40, 70, 700]) {
    const { losses, rest, loss } = F.lossesOf([0, 1], [zy], 1, "sum");
    assert.equal(losses[0], Math.log1p(Math.exp(-zy)));
    assert.ok(losses[0] > 0, `z_y = ${zy}`);
    assert.equal(rest[0], Math.exp(-zy) / (1 + Math.exp(-zy)));
    assert.equal(loss, losses[0]);
  }
  // A target far below the others: q overflows, the loss is the gap.
  const { losses, rest } = F.lossesOf([800, 2], [0], 1, "mean");
  assert.ok(Math.abs(losses[0] - (800 + Math.log(2))) < 1e-12);
  assert.equal(rest[0], 1);
});

Deno.test("unpad and checkFiniteOutput", () => {
  const padded = Float32Array.from([1, 2, 0, 0, 3, 4, 0, 0]);
  const out = F.unpad(padded, 2, 2, 4);
  assert.deepStrictEqual(Array.from(out), [1, 2, 3, 4]);
  const same = F.unpad(padded, 2, 4, 4);
  assert.notStrictEqual(same.buffer, padded.buffer);
  F.checkFiniteOutput("t", "gradWeights", out, 2);
  assert.throws(
    () => F.checkFiniteOutput("t", "gradWeights", [1, 2, Infinity], 2, 4),
    /t: gradWeights overflowed float32 at 6 \(row 3, column 0\)/,
  );
});

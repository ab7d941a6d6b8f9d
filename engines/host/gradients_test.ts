// The float64 host maths alone: what the kernels compute is simulated here in float64 (non-targets
// only, as they do), so the steps before and after them must reproduce the reference to float32
// rounding of the outputs.
import assert from "node:assert";
import { HEAD_CATALOG, type HeadInput, type HeadSpec, marginSoftmaxLoss } from "../../mod.ts";
import type { Reduction } from "../../losses/types.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import { closeness } from "../../testing/assert_close.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { type Samples, sampleTerms } from "./samples.ts";
import { lossesOf } from "./losses.ts";
import { type RowReader, sampleGradients } from "./gradients.ts";

/** The non-target sums the kernels leave for the host, computed in float64. */
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
  const gx = new Float64Array(N * D), sumx = new Float64Array(N), grada = new Float64Array(N);
  const gw = new Float32Array(C * D), gb = new Float32Array(C);
  for (let j = 0; j < C; j++) {
    const b = radius === "normProduct" ? nw[j] : 1;
    let colGc = 0, colGz = 0;
    for (let i = 0; i < N; i++) {
      if (s.labels[i] === j) continue;
      const c = cos[j * N + i], gz = weight * Math.exp(z[j * N + i] - logz[i]);
      const g = angular ? gz * s.a[i] * b : gz; // ∂loss/∂c (∂loss/∂z when linear)
      for (let k = 0; k < D; k++) {
        gx[i * D + k] += g * w[j * D + k] * icw[j];
        gw[j * D + k] += g * s.x[i * D + k] / s.cx[i] * icw[j];
      }
      sumx[i] += g * c;
      if (radius !== "scale") grada[i] += gz * b * c;
      colGc += g * c;
      colGz += gz * s.a[i] * c;
      gb[j] += gz;
    }
    if (!angular) continue;
    const coef = (nw[j] > NORM_EPS ? -colGc * icw[j] : 0) + (radius === "normProduct" ? colGz : 0);
    for (let k = 0; k < D; k++) gw[j * D + k] += nw[j] > 0 ? coef / nw[j] * w[j * D + k] : 0;
  }
  const reader: RowReader = {
    read(i, row) {
      for (let k = 0; k < D; k++) row[k] += gx[i * D + k];
      return { scale: 1 / s.cx[i], sumx: sumx[i], grada: grada[i] };
    },
  };
  return { stats, reader, gw, gb, weight, radius };
}

function finish(head: HeadSpec, input: HeadInput, reduction: Reduction) {
  const N = input.features.rows, D = input.features.cols;
  const labels = Int32Array.from(input.labels, Number);
  const rows = { N, D, labels, x: input.features.data, w: input.weights.data, wRow: labels };
  const s = sampleTerms(head, rows, input.bias);
  const k = simulateKernels(head, input, s, reduction);
  const losses = lossesOf(k.stats, s.zy, N, reduction);
  const gradBias = input.bias ? k.gb : undefined;
  const targets = { gradWeights: k.gw, gradBias };
  const gradFeatures = sampleGradients(s, k.radius, losses, k.weight, k.reader, targets);
  return { losses, gradFeatures, gradWeights: k.gw, gradBias };
}

Deno.test("host maths around simulated kernels give the reference, for every head", () => {
  for (const [h, entry] of HEAD_CATALOG.entries()) {
    const head = entry.head();
    for (const reduction of ["mean", "none"] as const) {
      const input = randomHeadInput({ N: 5, D: 6, C: 7, bias: head.logits === "linear" }, 20 + h);
      const expected = marginSoftmaxLoss(input, head, { reduction });
      const actual = finish(head, input, reduction);
      const pairs = [
        ["loss", [actual.losses.loss], [expected.loss]],
        ["losses", actual.losses.losses, expected.losses],
        ["gradFeatures", actual.gradFeatures, expected.gradFeatures.data],
        ["gradWeights", actual.gradWeights, expected.gradWeights.data],
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

Deno.test("target gradients near c = 1: float64 target rows, no float32 cancellation", () => {
  // x_0 within 1e-5 rad of w_0: ArcFace's f′(c) is large there, and dc/dx = (ŵ − c·x̂)/‖x‖ is a
  // difference of nearly equal vectors; the host computes it in float64.
  const head = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
  const D = 3, labels = [0];
  const w = new Float64Array([0.6, 0.8, 0]), x = new Float64Array([0.6 - 8e-6, 0.8 + 6e-6, 0]);
  const s = sampleTerms(head, { N: 1, D, labels, x, w, wRow: labels });
  assert.ok(1 - s.tc[0] < 1e-9 && Math.abs(s.slope[0]) > 1e3);
  const rest = { rest: [0.5] };
  const gw = new Float32Array(D),
    reader = { read: () => ({ scale: 1 / s.cx[0], sumx: 0, grada: 0 }) };
  const gx = sampleGradients(s, "scale", rest, 1, reader, { gradWeights: gw });
  // dc/dx ⟂ x and dc/dw ⟂ w to the float32 rounding of the outputs (float32 maths: 1e-3).
  const cosine = (g: ArrayLike<number>, v: ArrayLike<number>) =>
    (g[0] * v[0] + g[1] * v[1] + g[2] * v[2]) / Math.hypot(g[0], g[1], g[2]) /
    Math.hypot(v[0], v[1], v[2]);
  assert.ok(Math.abs(cosine(gx, x)) < 1e-6 && Math.abs(cosine(gw, w)) < 1e-6);
  assert.ok(Math.hypot(...gx) > 1 && gx[2] === 0 && gw[2] === 0);
});

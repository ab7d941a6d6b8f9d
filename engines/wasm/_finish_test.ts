// engine-wasm's own part of the finishing step: reading its threads' partial sums, the logits, ∂W
// out of its padded rows, and the output checks (the float64 maths itself: engines/host/).
import assert from "node:assert";
import { arcFaceHead, cosFaceHead, type HeadSpec } from "../../mod.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { sampleGradients } from "../host/gradients.ts";
import { sampleMaths } from "./_inputs.ts";
import * as F from "./_finish.ts";

/** engine-wasm's samples of a random input. */
function samplesOf(head: HeadSpec, N: number, D: number, C: number, seed: number) {
  const input = randomHeadInput({ N, D, C }, seed);
  const x = Float64Array.from(input.features.data), w = Float64Array.from(input.weights.data);
  return sampleMaths("t", head, { N, D, x, w, labels: input.labels });
}

Deno.test("gradFeaturesOf: the threads' padded partial sums, added, for engines/host", () => {
  const N = 3, D = 5, Dp = 8, C = 4;
  const s = samplesOf(arcFaceHead(), N, D, C, 4);
  const losses = { loss: 0, losses: new Float64Array(N), rest: Float64Array.from([0.5, 0.2, 0.9]) };
  const value = (i: number, k: number, t: number) => Math.sin(i * 7 + k * 3 + t);
  const parts = [0, 1].map((t) => ({
    gx: Float64Array.from({ length: N * Dp }, (_, e) => e % Dp < D ? value(e >> 3, e % Dp, t) : 9),
    sumx: Float64Array.from({ length: N }, (_, i) => value(i, -1, t)),
    grada: Float64Array.from({ length: N }, (_, i) => value(i, -2, t)),
  }));
  for (const radius of ["scale", "featureNorm"] as const) {
    const gw = [new Float32Array(C * D), new Float32Array(C * D)];
    const actual = F.gradFeaturesOf(s, radius, parts, losses, 0.5, Dp, { gradWeights: gw[0] });
    const reader = {
      read(i: number, row: Float64Array) {
        for (let k = 0; k < D; k++) row[k] = value(i, k, 0) + value(i, k, 1);
        const sumx = value(i, -1, 0) + value(i, -1, 1), grada = value(i, -2, 0) + value(i, -2, 1);
        return { scale: 1 / s.cx[i], sumx, grada };
      },
    };
    const expected = sampleGradients(s, radius, losses, 0.5, reader, { gradWeights: gw[1] });
    assert.deepStrictEqual(actual, expected, radius);
    assert.deepStrictEqual(gw[0], gw[1], radius);
  }
});

Deno.test("logitsOf: a_i·b_j·c_ij from the class-major cosines, the targets from the host", () => {
  const N = 2, D = 3, C = 3, Np = 4;
  const s = samplesOf(cosFaceHead(), N, D, C, 5);
  const cos = Float32Array.from({ length: C * Np }, (_, e) => (e - 5) / 8);
  const nw = [1, 2, 3];
  for (const norms of [undefined, nw]) {
    const logits = F.logitsOf(s, cos, Np, C, norms);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < C; j++) {
        const expected = j === s.labels[i]
          ? s.zy[i]
          : s.a[i] * (norms ? nw[j] : 1) * cos[j * Np + i];
        assert.equal(logits[i * C + j], Math.fround(expected), `${i} ${j}`);
      }
    }
  }
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

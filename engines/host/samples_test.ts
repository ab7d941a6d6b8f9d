import assert from "node:assert";
import { HEAD_CATALOG, marginSoftmaxLoss } from "../../mod.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { sampleTerms } from "./samples.ts";

Deno.test("sampleTerms: the target logits the reference computes, for every head", () => {
  const N = 5, D = 6, C = 7;
  for (const [h, entry] of HEAD_CATALOG.entries()) {
    const head = entry.head();
    const input = randomHeadInput({ N, D, C, bias: head.logits === "linear" }, 30 + h);
    const labels = Int32Array.from(input.labels, Number);
    const x = input.features.data, w = input.weights.data;
    const s = sampleTerms(head, { N, D, labels, x, w, wRow: labels }, input.bias);
    const { logits } = marginSoftmaxLoss(input, head);
    for (let i = 0; i < N; i++) {
      const expected = logits.data[i * C + labels[i]];
      assert.ok(Math.abs(s.zy[i] - expected) <= 1e-12 * Math.abs(expected), `${entry.name} ${i}`);
      if (head.logits === "linear") {
        assert.deepStrictEqual([s.cx[i], s.a[i], s.b[i], s.ny[i]], [1, 1, 1, 0]);
        continue;
      }
      const xi = x.subarray(i * D, i * D + D), wy = w.subarray(labels[i] * D, labels[i] * D + D);
      assert.ok(Math.abs(s.nx[i] - Math.hypot(...xi)) < 1e-12 * s.nx[i]);
      assert.ok(Math.abs(s.ny[i] - Math.hypot(...wy)) < 1e-12 * s.ny[i]);
      assert.ok(s.tc[i] >= -1 && s.tc[i] <= 1);
    }
  }
});

Deno.test("sampleTerms: W read in place and its target rows gathered give the same numbers", () => {
  const N = 4, D = 5, C = 6;
  const input = randomHeadInput({ N, D, C }, 3);
  const labels = Int32Array.from(input.labels, Number);
  const x = Float32Array.from(input.features.data), w = Float32Array.from(input.weights.data);
  const wy = new Float64Array(N * D);
  labels.forEach((y, i) => wy.set(w.subarray(y * D, y * D + D), i * D));
  const iota = Int32Array.from({ length: N }, (_, i) => i);
  for (const entry of HEAD_CATALOG) {
    const head = entry.head();
    const inPlace = sampleTerms(head, { N, D, labels, x, w, wRow: labels });
    const gathered = sampleTerms(head, {
      N,
      D,
      labels,
      x: Float64Array.from(x),
      w: wy,
      wRow: iota,
    });
    for (const key of ["nx", "cx", "ny", "cy", "a", "b", "tc", "tv", "slope", "zy"] as const) {
      assert.deepStrictEqual(gathered[key], inPlace[key], `${entry.name} ${key}`);
    }
  }
});

Deno.test("sampleTerms: a zero feature row or target row keeps finite terms (ε floors)", () => {
  const head = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
  const x = new Float64Array([0, 0, 3, 4]), w = new Float64Array([1, 0, 0, 0]);
  const labels = [0, 1];
  const s = sampleTerms(head, { N: 2, D: 2, labels, x, w, wRow: labels });
  assert.deepStrictEqual([s.nx[0], s.tc[0], s.ny[1], s.tc[1]], [0, 0, 0, 0]);
  assert.ok([...s.zy, ...s.slope].every(Number.isFinite));
});

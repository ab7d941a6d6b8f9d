import assert from "node:assert";
import { marginParams, targetMarginParams } from "./margin_params.ts";
import { NORM_EPS } from "./_constants.ts";
import { arcFaceHead } from "./arcface.ts";
import { combinedMarginHead } from "./combined_margin.ts";
import { cosFaceHead } from "./cosface.ts";
import { fNormSphereFaceHead } from "./fnorm_sphereface.ts";
import { lSoftmaxHead } from "./lsoftmax.ts";
import { normFaceHead } from "./normface.ts";
import { softmaxHead } from "./softmax.ts";
import { sphereFaceHead } from "./sphereface.ts";
import { targetFunction } from "./target.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { matrix } from "./matrix.ts";
import type { HeadSpec } from "./head_spec.ts";

Deno.test("marginParams: ArcFace's constants, insightface's threshold and shift", () => {
  const p = marginParams(arcFaceHead({ scale: 64, margin: 0.5 }));
  assert.deepStrictEqual(p, {
    scale: 64,
    m1: 1,
    m2: 0.5,
    m3: 0,
    cosM2: Math.cos(0.5),
    sinM2: Math.sin(0.5),
    threshold: Math.cos(Math.PI - 0.5),
    shift: Math.sin(Math.PI - 0.5) * 0.5,
    psiMargin: 0,
    lambda: 0,
  });
  // The fallback is the linear extension c − m·sin m (insightface's `mm`).
  assert.ok(Math.abs(p.shift - 0.5 * Math.sin(0.5)) < 1e-15);
  assert.ok(Math.abs(p.threshold + Math.cos(0.5)) < 1e-15);
});

Deno.test("marginParams: every loss's head, identity values where a head has no such part", () => {
  const cases: [HeadSpec, Partial<ReturnType<typeof marginParams>>][] = [
    [softmaxHead(), { scale: 1, m1: 1, m2: 0, m3: 0, psiMargin: 0, lambda: 0 }],
    [normFaceHead({ scale: 30 }), { scale: 30, m1: 1, m2: 0, m3: 0, psiMargin: 0 }],
    [cosFaceHead({ scale: 30, margin: 0.4 }), { scale: 30, m1: 1, m2: 0, m3: 0.4, shift: 0.4 }],
    [
      combinedMarginHead({ scale: 16, m1: 0.9, m2: 0.4, m3: 0.15 }),
      { scale: 16, m1: 0.9, m2: 0.4, m3: 0.15, shift: Math.sin(Math.PI - 0.4) * 0.4 + 0.15 },
    ],
    [lSoftmaxHead({ margin: 3, lambda: 5 }), { scale: 1, psiMargin: 3, lambda: 5, m2: 0 }],
    [sphereFaceHead(), { scale: 1, psiMargin: 4, lambda: 0 }],
    [fNormSphereFaceHead({ scale: 64, margin: 2 }), { scale: 64, psiMargin: 2, lambda: 0 }],
  ];
  for (const [head, expected] of cases) {
    const p = marginParams(head) as unknown as Record<string, number>;
    for (const [key, value] of Object.entries(expected)) {
      assert.strictEqual(p[key], value, `${head.name} ${key}`);
    }
    for (const value of Object.values(p)) assert.ok(Number.isFinite(value), head.name);
    // Without an angular margin, cos m2 = 1, sin m2 = 0, threshold = cos π = −1 and shift = 0.
    if (head.logits === "linear" || head.margin.kind !== "angular") {
      assert.deepStrictEqual([p.cosM2, p.sinM2, p.threshold, p.shift], [1, 0, -1, 0]);
    }
  }
});

Deno.test("marginParams checks the head first", () => {
  assert.throws(
    () => marginParams({ ...arcFaceHead(), marginGradient: "bogus" } as unknown as HeadSpec),
    /^RangeError: marginParams: head\.marginGradient must be one of "exact", "detached"/,
  );
});

Deno.test("the reference's insightface fallback switches at marginParams' threshold by its shift", () => {
  for (const m2 of [0.5, 0.3, 1.2]) {
    const margin = { kind: "angular", m1: 1, m2, m3: 0.1, fallback: "insightface" } as const;
    const { threshold, shift } = targetMarginParams(margin);
    const f = targetFunction(margin, "exact");
    const below = threshold - 1e-9, above = threshold + 1e-9;
    assert.strictEqual(f(below).value, below - shift);
    assert.strictEqual(f(below).slope, 1);
    assert.strictEqual(f(threshold).value, threshold - shift); // c ≤ threshold: the fallback
    const expected = Math.cos(Math.acos(above) + m2) - 0.1;
    assert.ok(Math.abs(f(above).value - expected) < 1e-9);
  }
});

Deno.test("NORM_EPS is 1e-12 and clamps norms as torch.nn.functional.normalize does", () => {
  assert.strictEqual(NORM_EPS, 1e-12);
  // A feature of norm 1e-13 < NORM_EPS is divided by NORM_EPS, not by its norm: c = 0.1·(x̂·ŵ).
  const result = marginSoftmaxLoss(
    { features: matrix(1, 2, [1e-13, 0]), weights: matrix(2, 2, [1, 0, 0, 1]), labels: [0] },
    normFaceHead({ scale: 10 }),
  );
  assert.ok(Math.abs(result.logits.data[0] - 10 * (1e-13 / NORM_EPS)) < 1e-12);
  assert.strictEqual(result.logits.data[1], 0);
});

import assert from "node:assert";
import { decisionBoundaries } from "./boundaries.ts";
import { arcFaceHead } from "./arcface.ts";
import { cosFaceHead } from "./cosface.ts";
import { normFaceHead } from "./normface.ts";
import { softmaxHead } from "./softmax.ts";
import { lSoftmaxHead } from "./lsoftmax.ts";
import { sphereFaceHead } from "./sphereface.ts";
import { psi } from "./target.ts";

const close = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

Deno.test("decisionBoundaries", async (t) => {
  await t.step("ArcFace: θ₂ = θ₁ + m and θ₁ = θ₂ + m, exactly", () => {
    const m = 0.5;
    const { angle } = decisionBoundaries(arcFaceHead({ margin: m }), { samples: 101 });
    const inside = (p: { x: number; y: number }) => p.x + m <= Math.PI && p.y + m <= Math.PI;
    for (const p of angle.class1.filter((p) => p.x + m <= Math.PI)) close(p.y, p.x + m, 1e-7);
    for (const p of angle.class2.filter(inside)) close(p.x, p.y + m, 1e-7);
    assert.ok(angle.class1.length > 50 && angle.gap.length > 30);
    for (const g of angle.gap.filter((g) => g.x >= m && g.x + m <= Math.PI)) {
      close(g.y2 - g.y, 2 * m, 1e-7);
    }
  });
  await t.step("CosFace in cosine space: cos θ₂ = cos θ₁ − m", () => {
    const { cosine } = decisionBoundaries(cosFaceHead({ margin: 0.35 }), { samples: 41 });
    for (const p of cosine.class1) close(p.y, p.x - 0.35);
    for (const p of cosine.class2) close(p.y, p.x + 0.35, 1e-12);
  });
  await t.step("NormFace and softmax: the diagonal, the two boundaries coincide", () => {
    for (const head of [normFaceHead(), softmaxHead(), cosFaceHead({ margin: 0 })]) {
      const { angle, cosine } = decisionBoundaries(head, { samples: 31 });
      for (const curves of [angle, cosine]) {
        assert.equal(curves.class1.length, 31);
        for (const p of curves.class1) close(p.y, p.x, 1e-12);
        for (const g of curves.gap) close(g.y2 - g.y, 0, 1e-12);
      }
    }
  });
  await t.step("softmax with norms and biases: ‖x‖(‖W₁‖c₁ − ‖W₂‖c₂) + b₁ − b₂ = 0", () => {
    const { cosine } = decisionBoundaries(softmaxHead(), {
      weightNorms: [2, 1.5],
      bias: [0.3, -0.2],
      featureNorm: 2,
    });
    for (const p of cosine.class1) close(2 * (2 * p.x - 1.5 * p.y) + 0.5, 0);
  });
  await t.step("SphereFace (λ = 0) and L-Softmax: ψ(θ₁) = cos θ₂", () => {
    const { cosine } = decisionBoundaries(sphereFaceHead({ margin: 4 }), { samples: 21 });
    for (const p of cosine.class1) close(p.y, psi(4, p.x).value);
    const l = decisionBoundaries(lSoftmaxHead({ margin: 2 }), { weightNorms: [1, 2] });
    for (const p of l.cosine.class1) close(2 * p.y, psi(2, p.x).value);
  });
  await t.step("rejects bad options", () => {
    assert.throws(() => decisionBoundaries(normFaceHead(), { samples: 1 }), RangeError);
    assert.throws(
      () => decisionBoundaries(normFaceHead(), { weightNorms: [1, 0] as [number, number] }),
      RangeError,
    );
  });
});

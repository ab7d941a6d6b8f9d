import assert from "node:assert";
import { type Boundaries, decisionBoundaries } from "./boundaries.ts";
import { subCenterArcFaceHead } from "./subcenter_arcface.ts";
import { magFaceHead } from "./magface.ts";
import { elasticFaceHead } from "./elasticface.ts";
import { adaCosHead } from "./adacos.ts";
import { adaFaceHead } from "./adaface.ts";
import { curricularFaceHead } from "./curricularface.ts";
import { arcFaceHead } from "./arcface.ts";
import { cosFaceHead } from "./cosface.ts";
import { normFaceHead } from "./normface.ts";
import { softmaxHead } from "./softmax.ts";
import { lSoftmaxHead } from "./lsoftmax.ts";
import { sphereFaceHead } from "./sphereface.ts";
import { psi } from "./target.ts";
import type { HeadSpec } from "./head_spec.ts";

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

Deno.test("decisionBoundaries of the successor heads", async (t) => {
  const arc = (m: number, fallback: "insightface" | "easy" | "none" = "insightface") =>
    decisionBoundaries({
      ...arcFaceHead({ margin: m }),
      margin: { kind: "angular", m1: 1, m2: m, m3: 0, fallback },
    } as HeadSpec);
  const same = (a: Boundaries, b: Boundaries, tol: number) => {
    for (const space of ["angle", "cosine"] as const) {
      for (const curve of ["class1", "class2"] as const) {
        assert.equal(a[space][curve].length, b[space][curve].length, `${space} ${curve}`);
        a[space][curve].forEach((p, k) => close(p.y, b[space][curve][k].y, tol));
      }
      a[space].gap.forEach((g, k) => {
        close(g.y, b[space].gap[k].y, tol);
        close(g.y2, b[space].gap[k].y2, tol);
      });
    }
  };
  await t.step("sub-center ArcFace: ArcFace's boundary on the dominant sub-centers", () => {
    same(decisionBoundaries(subCenterArcFaceHead({ margin: 0.5 })), arc(0.5), 0);
    same(
      decisionBoundaries(subCenterArcFaceHead({ margin: 0.3, easyMargin: true })),
      arc(0.3, "easy"),
      0,
    );
  });
  await t.step("MagFace: ArcFace's at m(a), a the clipped feature norm", () => {
    const head = magFaceHead(); // m 0.45–0.8 over a 10–110, easy margin
    same(decisionBoundaries(head, { featureNorm: 3 }), arc(0.45, "easy"), 0);
    same(decisionBoundaries(head, { featureNorm: 60 }), arc(0.625, "easy"), 1e-15);
    same(decisionBoundaries(head, { featureNorm: 500 }), arc(0.8, "easy"), 0);
    const { angle } = decisionBoundaries(head, { featureNorm: 110 });
    for (const p of angle.class1.filter((p) => p.x < Math.PI / 2)) close(p.y, p.x + 0.8, 1e-7);
  });
  await t.step("ElasticFace: one drawn margin (default their mean), arc without fallback", () => {
    const head = elasticFaceHead({ margins: [0.4, 0.6] });
    same(decisionBoundaries(head), arc(0.5, "none"), 0);
    same(decisionBoundaries(head, { margin: 0.55 }), arc(0.55, "none"), 0);
    const { cosine } = decisionBoundaries(elasticFaceHead({ variant: "cos", margins: [0.35] }));
    for (const p of cosine.class1) close(p.y, p.x - 0.35);
  });
  await t.step("AdaCos: NormFace's diagonal", () => {
    for (const p of decisionBoundaries(adaCosHead()).angle.class1) close(p.y, p.x, 1e-12);
  });
  await t.step("AdaFace: z = −1 is ArcFace's, z = 0 CosFace's, inside the clamps", () => {
    const eps = 1e-3, head = adaFaceHead({ margin: 0.4 });
    const minus = decisionBoundaries(head, { z: -1 });
    const m = 0.4;
    const clear = (p: { x: number; y: number }) => p.x > 0.05 && p.x + m < Math.PI - 0.05;
    for (const p of minus.angle.class1.filter(clear)) close(p.y, p.x + m, 1e-9);
    const zero = decisionBoundaries(head, { z: 0 });
    for (const p of zero.cosine.class1.filter((p) => Math.abs(p.x) < 1 - eps)) {
      if (p.x - m > -1 + eps) close(p.y, p.x - m, 1e-9);
    }
    // z = 1: cos(θ − m) − 2m.
    const plus = decisionBoundaries(head, { z: 1 });
    for (const p of plus.cosine.class1.filter((p) => Math.abs(p.x) < 0.9)) {
      const theta = Math.acos(p.x) - m;
      if (theta > eps) close(p.y, Math.cos(theta) - 2 * m, 1e-9);
    }
    // z from the norm and the head's μ, σ: h·(‖x‖ − μ)/(σ + ε), clipped to ±1.
    const stats = adaFaceHead({ margin: 0.4, h: 0.5, state: { mean: 10, std: 4 } });
    same(
      decisionBoundaries(stats, { featureNorm: 12 }),
      decisionBoundaries(stats, { z: 0.5 * 2 / (4 + eps) }),
      0,
    );
    same(
      decisionBoundaries(stats, { featureNorm: 90 }),
      decisionBoundaries(adaFaceHead({ margin: 0.4, h: 0.5 }), { z: 1 }),
      0,
    );
  });
  await t.step("CurricularFace: cos(θ₁ + m) = c₂·(t + c₂) for a hard negative", () => {
    for (const tValue of [0, 0.3, 0.8]) {
      const m = 0.5, head = curricularFaceHead({ margin: m, state: { t: tValue } });
      const { cosine } = decisionBoundaries(head, { samples: 101 });
      assert.ok(cosine.class1.length > 50);
      for (const p of cosine.class1) {
        const theta = Math.acos(p.x);
        if (theta + m >= Math.PI) continue; // the fallback
        const border = Math.cos(theta + m);
        // Past the border a hard negative's logit c(t + c) falls short of the target while
        // border·(t + border) < border; else class 1 loses at the border itself.
        const expected = border * (tValue + border) < border
          ? (-tValue + Math.sqrt(tValue * tValue + 4 * border)) / 2
          : border;
        close(p.y, expected, 1e-9);
      }
    }
    // t = 0 widens class 1's region against ArcFace's (hard negatives are scaled down by c₂).
    const curricular = decisionBoundaries(curricularFaceHead({ state: { t: 0 } }), { samples: 5 });
    const plain = arc(0.5);
    assert.ok(curricular.cosine.class1[3].y > plain.cosine.class1[3].y);
  });
  await t.step("options that belong to another head are errors", () => {
    assert.throws(
      () => decisionBoundaries(arcFaceHead(), { z: 0 }),
      /^TypeError: decisionBoundaries: options\.z applies only to an AdaFace head$/,
    );
    assert.throws(
      () => decisionBoundaries(adaFaceHead(), { margin: 0.1 }),
      /^TypeError: decisionBoundaries: options\.margin applies only to an ElasticFace head$/,
    );
    assert.throws(
      () => decisionBoundaries(adaFaceHead(), { z: 2 }),
      /^RangeError: decisionBoundaries: options\.z must be a finite number in \[−1, 1\], got 2$/,
    );
    assert.throws(
      () => decisionBoundaries({ ...magFaceHead(), marginGradient: "detached" }),
      /^RangeError: decisionBoundaries: head\.marginGradient/,
    );
  });
});

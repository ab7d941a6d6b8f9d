// WGSL generation without a GPU: every shader declares exactly its bindings, reads only uniform
// fields that exist, and an unknown kind is an error rather than silent zeros.
import assert from "node:assert";
import { HEAD_CATALOG } from "../../losses/catalog.ts";
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { StageName } from "./_layout.ts";
import { stageShader } from "./_shaders.ts";
import { UNIFORM_FIELDS } from "./_uniforms.ts";

const STAGES: StageName[] = [
  "targets",
  "forward",
  "row",
  "logits",
  "column",
  "gradFeatures",
  "reduceFeatures",
  "gradWeights",
];

Deno.test("shaders: bindings declared in order, uniform fields that exist", () => {
  const fields = new Set<string>(UNIFORM_FIELDS.map((f) => f.name));
  for (const entry of HEAD_CATALOG) {
    for (const stage of STAGES) {
      const { code, bindings } = stageShader(stage, entry.head());
      const declared = [...code.matchAll(/@binding\((\d+)\) var<storage, (\w+)> (\w+)/g)];
      assert.deepStrictEqual(
        declared.map((m) => [Number(m[1]), m[2], m[3]]),
        bindings.map((b, k) => [k + 1, b.access, b.name]),
        `${entry.name} ${stage}`,
      );
      for (const [, name] of code.matchAll(/\bp\.(\w+)/g)) {
        assert.ok(fields.has(name), `${entry.name} ${stage} reads p.${name}, not a field`);
      }
    }
  }
});

Deno.test("shaders: a successor head's passes read f(c_iy) from the host and clamp only with a clamp", () => {
  const head = HEAD_CATALOG.find((e) => e.name === "normFace")!.head();
  const fields = new Set<string>(UNIFORM_FIELDS.map((f) => f.name));
  const clamped = { hostTargets: true, clamp: [-0.999, 0.999] as const };
  const row = stageShader("row", head, clamped);
  assert.ok(row.bindings.some((b) => b.name === "targets"));
  assert.ok(!row.bindings.some((b) => b.name === "halves"));
  assert.match(row.code, /vec2f\(targets\[i\], 0\.0\)/);
  for (const stage of ["row", "logits", "column"] as const) {
    assert.match(stageShader(stage, head, clamped).code, /clamp\(c, p\.cosLo, p\.cosHi\)/, stage);
    assert.doesNotMatch(stageShader(stage, head).code, /p\.cosLo/, stage);
    for (const [, name] of stageShader(stage, head, clamped).code.matchAll(/\bp\.(\w+)/g)) {
      assert.ok(fields.has(name), `${stage} reads p.${name}, not a field`);
    }
  }
});

Deno.test("shaders: an unknown margin, radius or fallback kind is an error", () => {
  const arcFace = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
  assert.ok(arcFace.logits === "angular");
  const bad = [
    { ...arcFace, margin: { kind: "elastic" } },
    { ...arcFace, radius: { kind: "adaptive" } },
    { ...arcFace, margin: { ...arcFace.margin, fallback: "clamp" } },
  ] as unknown as HeadSpec[];
  for (const head of bad) {
    assert.throws(
      () => stageShader("row", head),
      /engine-webgpu: unknown (margin kind|radius kind|fallback)/,
    );
  }
});

Deno.test("shaders: hard negatives and sub-centers are generated only for the heads that have them", () => {
  const head = HEAD_CATALOG.find((e) => e.name === "normFace")!.head();
  const fields = new Set<string>(UNIFORM_FIELDS.map((f) => f.name));
  const hard = { hostTargets: true, hard: true };
  const sub = { hostTargets: true, subCenters: 3 };
  for (const stage of ["row", "logits", "column"] as const) {
    const plain = stageShader(stage, head, { hostTargets: true }).code;
    assert.doesNotMatch(plain, /hardThreshold|p\.hardT|NOT_ARG_MAX|p\.K\b/, stage);
    const withHard = stageShader(stage, head, hard);
    assert.ok(withHard.bindings.some((b) => b.name === "thresholds"), stage);
    assert.match(withHard.code, /hardThreshold = thresholds\[i\];/, stage);
    assert.match(withHard.code, /c \* \(p\.hardT \+ c\)/, stage);
    const withSub = stageShader(stage, head, sub).code;
    assert.match(withSub, /p\.K/, stage);
    for (const code of [withHard.code, withSub]) {
      for (const [, name] of code.matchAll(/\bp\.(\w+)/g)) {
        assert.ok(fields.has(name), `${stage} reads p.${name}, not a field`);
      }
    }
  }
  // The row pass claims each class's largest sub-center in S; the column pass zeroes the others.
  const row = stageShader("row", head, sub);
  assert.equal(row.bindings.find((b) => b.name === "scores")!.access, "read_write");
  assert.match(row.code, /claimCosine\(row, j\)/);
  assert.match(stageShader("column", head, sub).code, /c != NOT_ARG_MAX/);
  assert.match(stageShader("logits", head, sub).code, /logits\[i \* \(p\.C \/ p\.K\) \+ j\]/);
});

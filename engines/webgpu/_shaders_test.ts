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

// The uniform struct: every field lands at the offset that the generated WGSL struct gives it
// under WGSL's alignment rules, computed here independently from the struct's text.
import assert from "node:assert";
import { arcFaceHead } from "../../losses/arcface.ts";
import { planLayout } from "./_layout.ts";
import {
  headUniforms,
  packUniforms,
  structText,
  UNIFORM_BYTES,
  UNIFORM_FIELDS,
  type UniformField,
  uniformOffsets,
} from "./_uniforms.ts";

/** WGSL's AlignOf and SizeOf of the types the struct may hold (WGSL § 14.4.1). */
const WGSL: Record<string, { align: number; size: number }> = {
  u32: { align: 4, size: 4 },
  i32: { align: 4, size: 4 },
  f32: { align: 4, size: 4 },
  vec2f: { align: 8, size: 8 },
  vec4f: { align: 16, size: 16 },
};

/** Offsets of a struct's members as a WGSL compiler lays them out, from the struct's text. */
function wgslOffsets(text: string): { fields: [string, string, number][]; size: number } {
  const members = [...text.matchAll(/^\s+(\w+): (\w+),$/gm)].map((m) => [m[1], m[2]]);
  let at = 0, align = 0;
  const fields = members.map(([name, type]): [string, string, number] => {
    const t = WGSL[type];
    at = Math.ceil(at / t.align) * t.align;
    const offset = at;
    at += t.size;
    align = Math.max(align, t.align);
    return [name, type, offset];
  });
  // A uniform buffer's struct is aligned to 16 (WGSL § 14.4.4 uniform layout constraints).
  const structAlign = Math.ceil(align / 16) * 16;
  return { fields, size: Math.ceil(at / structAlign) * structAlign };
}

function read(view: DataView, type: string, at: number): number[] {
  const lanes = WGSL[type].size / 4;
  return Array.from({ length: lanes }, (_, k) => {
    const o = at + 4 * k;
    return type === "u32"
      ? view.getUint32(o, true)
      : type === "i32"
      ? view.getInt32(o, true)
      : view.getFloat32(o, true);
  });
}

/** Packs distinct values into `fields` and checks each at the WGSL offset. */
function checkFields(fields: readonly UniformField[]) {
  const text = structText("Params", fields);
  const expected = wgslOffsets(text);
  assert.equal(expected.fields.length, fields.length, "every field is in the struct text");
  const values: Record<string, number | number[]> = {};
  fields.forEach((f, k) => {
    const lanes = WGSL[f.type].size / 4;
    const v = Array.from({ length: lanes }, (_, e) => f.type === "i32" ? -(k + e) : k * 10 + e + 1);
    values[f.name] = lanes === 1 ? v[0] : v;
  });
  const buffer = packUniforms(fields, values);
  assert.equal(buffer.byteLength, expected.size);
  assert.equal(uniformOffsets(fields).size, expected.size);
  const view = new DataView(buffer);
  for (const [name, type, offset] of expected.fields) {
    const want = [values[name]].flat();
    assert.deepStrictEqual(read(view, type, offset), want, `${name} at ${offset}`);
    assert.equal(uniformOffsets(fields).offsets[name], offset);
  }
}

Deno.test("uniforms: every field of Params lands at its WGSL offset", () => {
  checkFields(UNIFORM_FIELDS);
  assert.equal(UNIFORM_BYTES % 16, 0);
});

Deno.test("uniforms: vector fields follow WGSL alignment (vec2f at 8, vec4f at 16)", () => {
  const fields: UniformField[] = [
    { name: "a", type: "f32" },
    { name: "b", type: "vec2f" },
    { name: "c", type: "u32" },
    { name: "d", type: "vec4f" },
    { name: "e", type: "i32" },
  ];
  checkFields(fields);
  assert.deepStrictEqual(uniformOffsets(fields), {
    offsets: { a: 0, b: 8, c: 16, d: 32, e: 48 },
    size: 64,
  });
});

Deno.test("uniforms: a missing value or a fractional integer is refused", () => {
  const fields: UniformField[] = [{ name: "n", type: "u32" }, { name: "x", type: "f32" }];
  assert.throws(() => packUniforms(fields, { n: 1 } as never), /uniform x: expected 1 number/);
  assert.throws(() => packUniforms(fields, { n: 1.5, x: 0 }), /uniform n: 1\.5 is not an integer/);
});

Deno.test("uniforms: a head's numbers come from marginParams, the weight from the reduction", () => {
  const limits = {
    maxStorageBufferBindingSize: 2 ** 27,
    maxBufferSize: 2 ** 31 - 1,
    maxComputeWorkgroupsPerDimension: 65535,
  };
  const layout = planLayout({ samples: 4, dims: 3, classes: 5 }, limits, { angular: true });
  const head = arcFaceHead({ scale: 30, margin: 0.4 });
  const { offsets } = uniformOffsets(UNIFORM_FIELDS);
  const at = (buffer: ArrayBuffer, name: string) =>
    new DataView(buffer).getFloat32(offsets[name], true);
  const mean = headUniforms(head, layout, layout.chunks[0], "mean");
  const sum = headUniforms(head, layout, layout.chunks[0], "sum");
  assert.equal(at(mean, "scale"), 30);
  assert.equal(at(mean, "weight"), 0.25);
  assert.equal(at(sum, "weight"), 1);
  assert.equal(at(mean, "m2"), Math.fround(0.4));
  assert.equal(at(mean, "threshold"), Math.fround(Math.cos(Math.PI - 0.4)));
  assert.equal(at(mean, "shift"), Math.fround(Math.sin(Math.PI - 0.4) * 0.4));
  assert.equal(at(mean, "one"), 1);
  // A successor head's clamp of the non-target cosines comes from its layout.
  assert.equal(at(mean, "cosLo"), -1);
  const clamped = planLayout({ samples: 4, dims: 3, classes: 5 }, limits, {
    angular: true,
    hostTargets: true,
    clamp: [-0.999, 0.999],
  });
  const packed = headUniforms(head, clamped, clamped.chunks[0], "mean");
  assert.equal(at(packed, "cosLo"), Math.fround(-0.999));
  assert.equal(at(packed, "cosHi"), Math.fround(0.999));
});

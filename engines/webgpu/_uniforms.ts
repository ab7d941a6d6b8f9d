// The uniform struct, described once by name: the WGSL struct text and the packing function are
// both generated from UNIFORM_FIELDS (as tfjs-webgpu's makeShader does), so a field can never land
// at an offset the shaders do not read it from. The margin numbers come from marginParams(head).
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import { marginParams } from "../../losses/margin_params.ts";
import type { Chunk, Layout } from "./_layout.ts";

/** The WGSL types a uniform field may have. */
export type UniformType = "u32" | "i32" | "f32" | "vec2f" | "vec4f";

/** One field of the uniform struct. */
export interface UniformField {
  name: string;
  type: UniformType;
}

/** Alignment and size in bytes of each type in the uniform address space (WGSL §"Alignment"). */
export const TYPE_LAYOUT: Readonly<Record<UniformType, { align: number; size: number }>> = {
  u32: { align: 4, size: 4 },
  i32: { align: 4, size: 4 },
  f32: { align: 4, size: 4 },
  vec2f: { align: 8, size: 8 },
  vec4f: { align: 16, size: 16 },
};

/** The fields of `Params`, in order. */
export const UNIFORM_FIELDS = [
  // Sizes: N×D features, C×D weights, padded to Np, Cp, Dp.
  { name: "N", type: "u32" },
  { name: "C", type: "u32" },
  { name: "D", type: "u32" },
  { name: "Np", type: "u32" },
  { name: "Cp", type: "u32" },
  { name: "Dp", type: "u32" },
  // The chunk of classes a dispatch covers: W rows [c0, c0 + cC), cCp with padding; ∂X slices.
  { name: "c0", type: "u32" },
  { name: "cC", type: "u32" },
  { name: "cCp", type: "u32" },
  { name: "slice", type: "u32" },
  { name: "slice0", type: "u32" },
  { name: "slices", type: "u32" },
  // The head's numbers (marginParams) and the reduction's weight on each sample (1/N or 1).
  { name: "psiMargin", type: "u32" },
  { name: "scale", type: "f32" },
  { name: "weight", type: "f32" },
  { name: "m1", type: "f32" },
  { name: "m2", type: "f32" },
  { name: "m3", type: "f32" },
  { name: "cosM2", type: "f32" },
  { name: "sinM2", type: "f32" },
  { name: "threshold", type: "f32" },
  { name: "shift", type: "f32" },
  { name: "lambda", type: "f32" },
  // The range of the non-target cosines of a head that clamps them (AdaFace), else [−1, 1] unread.
  { name: "cosLo", type: "f32" },
  { name: "cosHi", type: "f32" },
  // CurricularFace's t of this run (its hard negatives' c·(t + c)), else 0 unread.
  { name: "hardT", type: "f32" },
  // Sub-center ArcFace's K (rows per class; C counts rows), else 1 unread.
  { name: "K", type: "u32" },
  // 1, unknown to the shader compiler: compensated sums multiply by it so that it cannot fold
  // (a + b) − a into b (lavapipe's NIR does) and lose the compensation.
  { name: "one", type: "f32" },
] as const satisfies readonly UniformField[];

/** Bytes of the uniform buffer. */
export const UNIFORM_BYTES = uniformOffsets(UNIFORM_FIELDS).size;

/** The name of a field of `Params`. */
export type UniformName = typeof UNIFORM_FIELDS[number]["name"];

/** A value per field: a number for scalars, numbers for vectors. */
export type UniformValues<F extends readonly UniformField[]> = Record<
  F[number]["name"],
  number | readonly number[]
>;

/** Byte offsets of the fields and the struct's size, padded to 16 as a uniform buffer needs. */
export function uniformOffsets(
  fields: readonly UniformField[],
): { offsets: Record<string, number>; size: number } {
  const offsets: Record<string, number> = {};
  let at = 0, align = 16;
  for (const { name, type } of fields) {
    const t = TYPE_LAYOUT[type];
    at = Math.ceil(at / t.align) * t.align;
    offsets[name] = at;
    at += t.size;
    align = Math.max(align, t.align);
  }
  return { offsets, size: Math.ceil(at / align) * align };
}

/** The WGSL declaration of the struct. */
export function structText(name: string, fields: readonly UniformField[]): string {
  return `struct ${name} {\n${fields.map((f) => `  ${f.name}: ${f.type},`).join("\n")}\n}`;
}

const isInteger = (type: UniformType) => type === "u32" || type === "i32";

/** Packs `values` at the offsets of {@linkcode uniformOffsets}; throws on a missing or bad value. */
export function packUniforms<F extends readonly UniformField[]>(
  fields: F,
  values: UniformValues<F>,
): ArrayBuffer {
  const { offsets, size } = uniformOffsets(fields);
  const buffer = new ArrayBuffer(size);
  const view = new DataView(buffer);
  for (const { name, type } of fields) {
    const value = (values as Record<string, number | readonly number[]>)[name];
    const lanes = typeof value === "number" ? [value] : value;
    const want = TYPE_LAYOUT[type].size / 4;
    if (!lanes || lanes.length !== want || lanes.some((v) => typeof v !== "number")) {
      throw new TypeError(`uniform ${name}: expected ${want} number(s), got ${String(value)}`);
    }
    lanes.forEach((v, k) => {
      if (isInteger(type) && !Number.isInteger(v)) {
        throw new RangeError(`uniform ${name}: ${v} is not an integer`);
      }
      const at = offsets[name] + 4 * k;
      if (type === "u32") view.setUint32(at, v, true);
      else if (type === "i32") view.setInt32(at, v, true);
      else view.setFloat32(at, v, true);
    });
  }
  return buffer;
}

/**
 * The `Params` of one chunk of a head (its clamp and K are the layout's), for a run with
 * `reduction` and, for CurricularFace, the run's `hardT`.
 */
export function headUniforms(
  head: HeadSpec,
  layout: Layout,
  chunk: Chunk,
  reduction: Reduction,
  hardT = 0,
): ArrayBuffer {
  const { scale, m1, m2, m3, cosM2, sinM2, threshold, shift, psiMargin, lambda } = marginParams(
    head,
  );
  const { N, C, D, Np, Cp, Dp, slice, slices } = layout;
  const [cosLo, cosHi] = layout.clamp ?? [-1, 1];
  return packUniforms(UNIFORM_FIELDS, {
    N,
    C,
    D,
    Np,
    Cp,
    Dp,
    c0: chunk.c0,
    cC: chunk.cC,
    cCp: chunk.cCp,
    slice,
    slice0: chunk.slice0,
    slices,
    psiMargin,
    scale,
    weight: reduction === "mean" ? 1 / N : 1,
    m1,
    m2,
    m3,
    cosM2,
    sinM2,
    threshold,
    shift,
    lambda,
    cosLo,
    cosHi,
    hardT,
    K: Math.max(layout.subCenters, 1),
    one: 1,
  });
}

/**
 * The numbers every engine derives from a head, computed in one place so that the reference, the
 * WebAssembly and WebGPU engines and the tfjs head read the same constants.
 *
 * @module
 */
import type { HeadSpec, TargetMargin } from "./head_spec.ts";
import { checkHeadSpec } from "./_head_spec_check.ts";

/** The numbers of a target margin (see {@linkcode marginParams}). */
export interface TargetMarginParams {
  /** Multiplicative angular margin m1 (1 without an angular margin). */
  m1: number;
  /** Additive angular margin m2 in radians (0 without an angular margin). */
  m2: number;
  /** Additive cosine margin m3 (0 without an angular margin). */
  m3: number;
  /** cos m2. */
  cosM2: number;
  /** sin m2. */
  sinM2: number;
  /**
   * insightface's switch: the angular target applies where c > threshold = cos(π − m2); below,
   * `"insightface"` uses the linear extension c − shift.
   */
  threshold: number;
  /** insightface's fallback offset: shift = sin(π − m2)·m2 + m3. */
  shift: number;
  /** ψ's integer margin m (0 without a ψ margin). */
  psiMargin: number;
  /** λ, the blend of the plain cosine into ψ (0 without a ψ margin). */
  lambda: number;
}

/** The numbers of a whole head (see {@linkcode marginParams}). */
export interface MarginParams extends TargetMarginParams {
  /** The fixed scale s of a `"scale"` radius; 1 for a norm radius and for a linear head. */
  scale: number;
}

/**
 * The numbers of a target margin alone; an angular margin's formulas evaluated at m1 = 1,
 * m2 = m3 = 0 (the identity) for the other kinds. Trusts its argument: check heads with
 * {@linkcode marginParams} or `checkHeadSpec`.
 */
export function targetMarginParams(margin: TargetMargin): TargetMarginParams {
  const angular = margin.kind === "angular";
  const m1 = angular ? margin.m1 : 1, m2 = angular ? margin.m2 : 0, m3 = angular ? margin.m3 : 0;
  return {
    m1,
    m2,
    m3,
    cosM2: Math.cos(m2),
    sinM2: Math.sin(m2),
    threshold: Math.cos(Math.PI - m2),
    shift: Math.sin(Math.PI - m2) * m2 + m3,
    psiMargin: margin.kind === "psi" ? margin.margin : 0,
    lambda: margin.kind === "psi" ? margin.lambda : 0,
  };
}

/**
 * The named numbers of a head: the scale, the angular margins with cos m2 and sin m2, insightface's
 * fallback threshold cos(π − m2) and shift sin(π − m2)·m2 + m3, ψ's m and λ. Fields that a head
 * does not use hold the identity (scale 1, m1 1, m2 = m3 = 0, psiMargin = λ = 0). The head is
 * checked first.
 *
 * @example ArcFace's fallback constants
 * ```ts
 * import { marginParams } from "./margin_params.ts";
 * import { arcFaceHead } from "./arcface.ts";
 * import assert from "node:assert";
 *
 * const p = marginParams(arcFaceHead({ scale: 64, margin: 0.5 }));
 * assert.equal(p.scale, 64);
 * assert.equal(p.threshold, Math.cos(Math.PI - 0.5));
 * assert.equal(p.shift, Math.sin(Math.PI - 0.5) * 0.5);
 * ```
 *
 * @param head Any head description.
 * @returns Its numbers.
 */
export function marginParams(head: HeadSpec): MarginParams {
  const h = checkHeadSpec("marginParams", head);
  if (h.logits === "linear") return { scale: 1, ...targetMarginParams({ kind: "none" }) };
  return {
    scale: h.radius.kind === "scale" ? h.radius.scale : 1,
    ...targetMarginParams(h.margin),
  };
}

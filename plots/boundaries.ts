/**
 * Draws the binary decision boundaries of every loss, in angle space and in cosine space, with the
 * margin gap shaded: docs/boundaries.svg and docs/boundaries.png. Run: `deno task plot`.
 *
 * The successors (issue 13) whose papers draw a binary boundary: CurricularFace for an early and a
 * late t, ElasticFace at its mean margin with the band m ± σ dashed, MagFace at the smallest and
 * largest feature norm, AdaFace at z = −1, 0, 1. Left out: sub-center ArcFace (ArcFace's boundary
 * on the dominant sub-centers, the ArcFace panel) and AdaCos (no margin: NormFace's diagonal).
 *
 * @module
 */
import { type BoundaryOptions, decisionBoundaries } from "../losses/boundaries.ts";
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import { softmaxHead } from "../losses/softmax.ts";
import { sphereFaceHead } from "../losses/sphereface.ts";
import { lSoftmaxHead } from "../losses/lsoftmax.ts";
import { fNormSphereFaceHead } from "../losses/fnorm_sphereface.ts";
import { normFaceHead } from "../losses/normface.ts";
import { cosFaceHead } from "../losses/cosface.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { curricularFaceHead } from "../losses/curricularface.ts";
import { elasticFaceHead } from "../losses/elasticface.ts";
import { magFaceHead } from "../losses/magface.ts";
import { adaFaceHead } from "../losses/adaface.ts";
import { renderSvg, svgToPng } from "../charts/render.ts";

/** ElasticFace's σ (the official configs'): its band is the boundaries at m − σ and m + σ. */
const ELASTIC_STD = 0.05;

/**
 * The panels: the table of LOSSES.md, with the papers' usual margins, then the successors with
 * the options that fix their boundary (a norm, z, a band of margins).
 */
const PANELS: [string, HeadSpec | SuccessorHeadSpec, BoundaryOptions?, number[]?][] = [
  ["softmax (‖W₁‖ = ‖W₂‖, b = 0)", softmaxHead()],
  ["modified softmax", sphereFaceHead({ margin: 1 })],
  ["L-Softmax m=2", lSoftmaxHead({ margin: 2 })],
  ["A-Softmax m=4", sphereFaceHead({ margin: 4 })],
  ["F-Norm SphereFace m=4", fNormSphereFaceHead({ margin: 4 })],
  ["NormFace", normFaceHead()],
  ["CosFace m=0.35", cosFaceHead({ margin: 0.35 })],
  ["ArcFace m=0.5", arcFaceHead({ margin: 0.5 })],
  ["CurricularFace m=0.5, t=0", curricularFaceHead({ state: { t: 0 } })],
  ["CurricularFace m=0.5, t=0.8", curricularFaceHead({ state: { t: 0.8 } })],
  ["ElasticFace-Arc m=0.5 ± 0.05", elasticFaceHead({ margins: [0.5] }), {}, [
    0.5 - ELASTIC_STD,
    0.5 + ELASTIC_STD,
  ]],
  ["MagFace ‖x‖=10 (m=0.45)", magFaceHead(), { featureNorm: 10 }],
  ["MagFace ‖x‖=110 (m=0.8)", magFaceHead(), { featureNorm: 110 }],
  ["AdaFace m=0.4, z=−1", adaFaceHead(), { z: -1 }],
  ["AdaFace m=0.4, z=0", adaFaceHead(), { z: 0 }],
  ["AdaFace m=0.4, z=1", adaFaceHead(), { z: 1 }],
];

const SPACES = [
  ["angle", "angle space (θ₁, θ₂)"],
  ["cosine", "cosine space (cos θ₁, cos θ₂)"],
] as const;

/**
 * One row per point of both classes' boundary curves, with `fields`; a band's rows (`margin` given)
 * also name their edge.
 */
function curveRows(
  curves: {
    class1: readonly { x: number; y: number }[];
    class2: readonly { x: number; y: number }[];
  },
  fields: Record<string, unknown>,
  margin?: number,
): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const [curve, points] of [["class 1", curves.class1], ["class 2", curves.class2]] as const) {
    const edge = margin === undefined ? {} : { edge: `${curve} ${margin}` };
    for (const p of points) {
      rows.push({ ...fields, curve: `${curve} boundary`, ...edge, x: p.x, y: p.y });
    }
  }
  return rows;
}

if (import.meta.main) {
  const lines: Record<string, unknown>[] = [], gaps: Record<string, unknown>[] = [];
  for (const [loss, head, options, band] of PANELS) {
    const boundaries = decisionBoundaries(head, { samples: 181, ...options });
    for (const [space, title] of SPACES) {
      // ElasticFace's band: the boundaries of the margins m − σ and m + σ, dashed.
      for (const margin of band ?? []) {
        const edge = decisionBoundaries(head, { samples: 181, ...options, margin })[space];
        lines.push(...curveRows(edge, { kind: "band", loss, space: title }, margin));
      }
      const curves = boundaries[space];
      lines.push(...curveRows(curves, { kind: "line", loss, space: title }));
      for (const g of curves.gap) gaps.push({ kind: "gap", loss, space: title, ...g });
    }
  }
  const panel = (domain: [number, number], axis: [string, string]) => ({
    width: 150,
    height: 150,
    layer: [
      {
        transform: [{ filter: { field: "kind", equal: "gap" } }],
        mark: { type: "area", color: "#f4a582", opacity: 0.6, clip: true },
        encoding: { y2: { field: "y2" } },
      },
      {
        transform: [{ filter: { field: "kind", equal: "band" } }],
        mark: { type: "line", strokeWidth: 0.8, strokeDash: [3, 3], opacity: 0.8, clip: true },
        encoding: {
          color: { field: "curve", type: "nominal", title: null },
          detail: { field: "edge" },
          order: { field: "x", type: "quantitative" },
        },
      },
      {
        transform: [{ filter: { field: "kind", equal: "line" } }],
        mark: { type: "line", strokeWidth: 1.6, clip: true },
        encoding: {
          color: {
            field: "curve",
            type: "nominal",
            title: null,
            scale: { range: ["#2166ac", "#b2182b"] },
            legend: { orient: "top" },
          },
          detail: { field: "curve" },
          order: { field: "x", type: "quantitative" },
        },
      },
    ],
    encoding: {
      x: {
        field: "x",
        type: "quantitative",
        scale: { domain, nice: false, zero: false, padding: 0 },
        title: axis[0],
      },
      y: {
        field: "y",
        type: "quantitative",
        scale: { domain, nice: false, zero: false, padding: 0 },
        title: axis[1],
      },
    },
  });
  const row = (space: string, domain: [number, number], axis: [string, string]) => ({
    title: { text: space, anchor: "start" as const },
    data: { values: [...lines, ...gaps].filter((d) => d.space === space) },
    facet: { field: "loss", type: "nominal", title: null, sort: PANELS.map(([n]) => n) },
    columns: 8,
    spec: panel(domain, axis),
  });
  const svg = await renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "Binary decision boundaries, class 1 against class 2 (margin gap shaded)",
      subtitle:
        "class 1 wins beyond the blue curve, class 2 beyond the red one; in the shaded gap neither wins",
    },
    vconcat: [
      row(SPACES[0][1], [0, Math.PI], ["θ₁", "θ₂"]),
      row(SPACES[1][1], [-1, 1], ["cos θ₁", "cos θ₂"]),
    ],
    // deno-lint-ignore no-explicit-any
  } as any);
  await Deno.mkdir(new URL("../docs/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(new URL("../docs/boundaries.svg", import.meta.url), svg);
  await Deno.writeFile(new URL("../docs/boundaries.png", import.meta.url), await svgToPng(svg));
  console.log("wrote docs/boundaries.svg, docs/boundaries.png");
}

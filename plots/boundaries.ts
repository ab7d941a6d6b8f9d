/**
 * Draws the binary decision boundaries of every loss, in angle space and in cosine space, with the
 * margin gap shaded: docs/boundaries.svg and docs/boundaries.png. Run: `deno task plot`.
 *
 * @module
 */
import { decisionBoundaries } from "../losses/boundaries.ts";
import type { HeadSpec } from "../losses/head_spec.ts";
import { softmaxHead } from "../losses/softmax.ts";
import { sphereFaceHead } from "../losses/sphereface.ts";
import { lSoftmaxHead } from "../losses/lsoftmax.ts";
import { fNormSphereFaceHead } from "../losses/fnorm_sphereface.ts";
import { normFaceHead } from "../losses/normface.ts";
import { cosFaceHead } from "../losses/cosface.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { renderSvg, svgToPng } from "../charts/render.ts";

/** The panels: the table of LOSSES.md, with the papers' usual margins. */
const PANELS: [string, HeadSpec][] = [
  ["softmax (‖W₁‖ = ‖W₂‖, b = 0)", softmaxHead()],
  ["modified softmax", sphereFaceHead({ margin: 1 })],
  ["L-Softmax m=2", lSoftmaxHead({ margin: 2 })],
  ["A-Softmax m=4", sphereFaceHead({ margin: 4 })],
  ["F-Norm SphereFace m=4", fNormSphereFaceHead({ margin: 4 })],
  ["NormFace", normFaceHead()],
  ["CosFace m=0.35", cosFaceHead({ margin: 0.35 })],
  ["ArcFace m=0.5", arcFaceHead({ margin: 0.5 })],
];

const SPACES = [
  ["angle", "angle space (θ₁, θ₂)"],
  ["cosine", "cosine space (cos θ₁, cos θ₂)"],
] as const;

if (import.meta.main) {
  const lines: Record<string, unknown>[] = [], gaps: Record<string, unknown>[] = [];
  for (const [loss, head] of PANELS) {
    const boundaries = decisionBoundaries(head, { samples: 181 });
    for (const [space, title] of SPACES) {
      const curves = boundaries[space];
      for (const [curve, points] of [["class 1", curves.class1], ["class 2", curves.class2]]) {
        for (const p of points as { x: number; y: number }[]) {
          lines.push({
            kind: "line",
            loss,
            space: title,
            curve: `${curve} boundary`,
            x: p.x,
            y: p.y,
          });
        }
      }
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
    columns: 4,
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

// The decision boundaries, live: pick a loss, move its scale and margins, and see both class
// boundaries and the margin gap in angle and cosine space, from the same decisionBoundaries the
// library documents (losses/boundaries.ts).
/// <reference lib="dom" />
import { type Boundaries, decisionBoundaries, HEAD_CATALOG, type HeadSpec } from "../mod.ts";
import { band, frame, line } from "./plot.ts";

/** One slider: an option of the loss's head builder. */
interface Param {
  key: string;
  label: string;
  min: number;
  max: number;
  step: number;
  value: number;
}

const s = (value: number): Param => ({ key: "scale", label: "s", min: 1, max: 64, step: 1, value });
const m = (value: number, max: number, step: number, key = "margin", label = "m"): Param => ({
  key,
  label,
  min: 0,
  max,
  step,
  value,
});

/** The losses of the picker, with their sliders (the papers' usual values first). */
const LOSSES: Record<string, { label: string; params: Param[] }> = {
  softmax: { label: "softmax", params: [] },
  normFace: { label: "NormFace", params: [s(30)] },
  lSoftmax: { label: "L-Softmax", params: [{ ...m(2, 6, 1), min: 1 }] },
  sphereFace: { label: "SphereFace (A-Softmax)", params: [{ ...m(4, 6, 1), min: 1 }] },
  fNormSphereFace: { label: "F-Norm SphereFace", params: [s(30), { ...m(4, 6, 1), min: 1 }] },
  cosFace: { label: "CosFace (AM-Softmax)", params: [s(64), m(0.35, 0.8, 0.01)] },
  arcFace: { label: "ArcFace", params: [s(64), m(0.5, 1.2, 0.01)] },
  combinedMargin: {
    label: "combined margin (insightface)",
    params: [
      s(64),
      { ...m(1, 2, 0.05, "m1", "m₁"), min: 1 },
      m(0.3, 1, 0.01, "m2", "m₂"),
      m(0.2, 0.5, 0.01, "m3", "m₃"),
    ],
  },
};

/** What the section shows now (read by the browser test). */
export interface BoundaryState {
  loss: string;
  options: Record<string, number>;
  /** θ₂ of class 2's boundary minus class 1's at θ₁ = 45°, in degrees (the gap's height there). */
  gapDegrees: number;
  /** The same in cosine space at cos θ₁ = 0.5. */
  gapCosine: number;
}

/** The gap's height at x (interpolated between samples), or 0 where there is none. */
function gapAt(curves: Boundaries["angle"], x: number): number {
  const rows = curves.gap;
  for (let k = 1; k < rows.length; k++) {
    if ((rows[k - 1].x - x) * (rows[k].x - x) <= 0) {
      const t = (x - rows[k - 1].x) / ((rows[k].x - rows[k - 1].x) || 1);
      const h0 = rows[k - 1].y2 - rows[k - 1].y, h1 = rows[k].y2 - rows[k].y;
      return h0 + t * (h1 - h0);
    }
  }
  return 0;
}

function panel(b: Boundaries, space: "angle" | "cosine"): SVGSVGElement {
  const angle = space === "angle";
  const ticks = angle
    ? [0, 45, 90, 135, 180].map((d) => ({ value: d * Math.PI / 180, label: `${d}°` }))
    : [-1, -0.5, 0, 0.5, 1].map((v) => ({ value: v, label: String(v) }));
  const f = frame({
    size: 260,
    domain: angle ? [0, Math.PI] : [-1, 1],
    ticks,
    xLabel: angle ? "θ₁ (angle to W₁)" : "cos θ₁",
    yLabel: angle ? "θ₂ (angle to W₂)" : "cos θ₂",
    title: angle ? "angle space" : "cosine space",
  });
  const curves = b[space];
  f.layer.append(band(f, curves.gap, "gap"));
  f.layer.append(line(f, curves.class1, "class1"));
  f.layer.append(line(f, curves.class2, "class2"));
  return f.svg;
}

/** Builds the section into `root`; returns a function that reads its state. */
export function mountBoundaries(root: HTMLElement): () => BoundaryState {
  const picker = root.querySelector<HTMLSelectElement>("select[name=loss]")!;
  const sliders = root.querySelector<HTMLElement>(".sliders")!;
  const plots = root.querySelector<HTMLElement>(".plots")!;
  const readout = root.querySelector<HTMLElement>(".readout")!;
  for (const [name, { label }] of Object.entries(LOSSES)) {
    picker.append(new Option(label, name, name === "arcFace", name === "arcFace"));
  }
  let state: BoundaryState;
  const draw = () => {
    const options: Record<string, number> = {};
    for (const input of sliders.querySelectorAll<HTMLInputElement>("input")) {
      options[input.name] = Number(input.value);
      input.nextElementSibling!.textContent = input.value;
    }
    const entry = HEAD_CATALOG.find((e) => e.name === picker.value)!;
    const head: HeadSpec = entry.head(options);
    const b = decisionBoundaries(head, { samples: 361 });
    plots.replaceChildren(panel(b, "angle"), panel(b, "cosine"));
    state = {
      loss: picker.value,
      options,
      gapDegrees: gapAt(b.angle, Math.PI / 4) * 180 / Math.PI,
      gapCosine: gapAt(b.cosine, 0.5),
    };
    readout.textContent = `margin gap at θ₁ = 45°: ${state.gapDegrees.toFixed(1)}° of θ₂; ` +
      `at cos θ₁ = 0.5: ${state.gapCosine.toFixed(3)} of cos θ₂` +
      (options.scale !== undefined ? " (s scales the logits; it cancels in the boundary)" : "");
  };
  const build = () => {
    sliders.replaceChildren();
    for (const p of LOSSES[picker.value].params) {
      const label = document.createElement("label");
      const input = Object.assign(document.createElement("input"), {
        type: "range",
        name: p.key,
        min: String(p.min),
        max: String(p.max),
        step: String(p.step),
        value: String(p.value),
      });
      input.addEventListener("input", draw);
      label.append(`${p.label} `, input, Object.assign(document.createElement("output")));
      sliders.append(label);
    }
    if (!LOSSES[picker.value].params.length) sliders.append("no scale or margin: one boundary");
    draw();
  };
  picker.addEventListener("change", build);
  build();
  return () => state;
}

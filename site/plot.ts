// Small SVG charts for the page, drawn with the DOM: axes with ticks, lines, a shaded band, points,
// and horizontal bars. No chart library: the page's bundle stays the library plus tfjs and ORT.
/// <reference lib="dom" />

const NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number> = {},
  text?: string,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A linear map from [d0, d1] to [r0, r1]. */
export function scale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  return (v) => r0 + (v - d0) / (d1 - d0) * (r1 - r0);
}

/** A square plot area with axes: the SVG, its scales and a layer to draw into. */
export interface Frame {
  svg: SVGSVGElement;
  x: (v: number) => number;
  y: (v: number) => number;
  layer: SVGGElement;
}

/** Options of {@linkcode frame}. */
export interface FrameOptions {
  size: number;
  domain: [number, number];
  ticks: { value: number; label: string }[];
  xLabel: string;
  yLabel: string;
  title: string;
}

/** An empty square plot with ticks on both axes and a clip to the plot area. */
export function frame(o: FrameOptions): Frame {
  const margin = { left: 46, right: 16, top: 24, bottom: 40 };
  const width = o.size + margin.left + margin.right, height = o.size + margin.top + margin.bottom;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "plot" });
  const x = scale(o.domain[0], o.domain[1], margin.left, margin.left + o.size);
  const y = scale(o.domain[0], o.domain[1], margin.top + o.size, margin.top);
  svg.append(el("text", { x: width / 2, y: 15, class: "title", "text-anchor": "middle" }, o.title));
  const clipId = `clip${Math.random().toString(36).slice(2)}`;
  const clip = el("clipPath", { id: clipId });
  clip.append(el("rect", { x: x(o.domain[0]), y: y(o.domain[1]), width: o.size, height: o.size }));
  svg.append(clip);
  svg.append(el("rect", {
    x: x(o.domain[0]),
    y: y(o.domain[1]),
    width: o.size,
    height: o.size,
    class: "area",
  }));
  for (const t of o.ticks) {
    svg.append(
      el("line", {
        x1: x(t.value),
        x2: x(t.value),
        y1: y(o.domain[0]),
        y2: y(o.domain[1]),
        class: "grid",
      }),
    );
    svg.append(
      el("line", {
        y1: y(t.value),
        y2: y(t.value),
        x1: x(o.domain[0]),
        x2: x(o.domain[1]),
        class: "grid",
      }),
    );
    svg.append(
      el(
        "text",
        { x: x(t.value), y: y(o.domain[0]) + 14, "text-anchor": "middle", class: "tick" },
        t.label,
      ),
    );
    svg.append(
      el(
        "text",
        { x: x(o.domain[0]) - 5, y: y(t.value) + 4, "text-anchor": "end", class: "tick" },
        t.label,
      ),
    );
  }
  svg.append(
    el("text", {
      x: margin.left + o.size / 2,
      y: height - 6,
      "text-anchor": "middle",
      class: "axis",
    }, o.xLabel),
  );
  svg.append(el("text", {
    x: 12,
    y: margin.top + o.size / 2,
    "text-anchor": "middle",
    class: "axis",
    transform: `rotate(-90 12 ${margin.top + o.size / 2})`,
  }, o.yLabel));
  const layer = el("g", { "clip-path": `url(#${clipId})` });
  svg.append(layer);
  return { svg, x, y, layer };
}

/** A polyline through `points`, in the frame's coordinates. */
export function line(
  f: Frame,
  points: { x: number; y: number }[],
  cls: string,
): SVGPolylineElement {
  const d = points.map((p) => `${f.x(p.x).toFixed(1)},${f.y(p.y).toFixed(1)}`).join(" ");
  return el("polyline", { points: d, class: cls, fill: "none" });
}

/** The band between y and y2 at each x. */
export function band(f: Frame, rows: { x: number; y: number; y2: number }[], cls: string) {
  const upper = rows.map((r) => `${f.x(r.x).toFixed(1)},${f.y(r.y2).toFixed(1)}`);
  const lower = rows.toReversed().map((r) => `${f.x(r.x).toFixed(1)},${f.y(r.y).toFixed(1)}`);
  return el("polygon", { points: [...upper, ...lower].join(" "), class: cls });
}

/** Ten distinguishable colours (Tableau's category10), one per digit. */
export const CATEGORY10 = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** One bar of {@linkcode bars}. */
export interface Bar {
  label: string;
  value: number;
  group: string;
}

/** Horizontal bars on a log scale, one row per label, one colour per group, with a legend. */
export function bars(rows: Bar[], groups: string[], unit: string, width = 620): SVGSVGElement {
  const labels = [...new Set(rows.map((r) => r.label))];
  const rowHeight = 8 * groups.length + 8, left = 150, top = 26;
  const height = top + labels.length * rowHeight + 34;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "plot" });
  const values = rows.map((r) => r.value).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values, 10)));
  const x = (v: number) => left + Math.log10(v / lo) / Math.log10(hi / lo) * (width - left - 44);
  for (let e = lo; e <= hi; e *= 10) {
    svg.append(el("line", { x1: x(e), x2: x(e), y1: top - 4, y2: height - 30, class: "grid" }));
    svg.append(
      el(
        "text",
        { x: x(e), y: height - 16, "text-anchor": "middle", class: "tick" },
        `${e} ${unit}`,
      ),
    );
  }
  labels.forEach((label, i) => {
    const y0 = top + i * rowHeight;
    svg.append(
      el(
        "text",
        { x: left - 6, y: y0 + rowHeight / 2 + 3, "text-anchor": "end", class: "tick" },
        label,
      ),
    );
    groups.forEach((group, g) => {
      const row = rows.find((r) => r.label === label && r.group === group);
      if (!row || !(row.value > 0)) return;
      svg.append(el("rect", {
        x: left,
        y: y0 + 4 + g * 8,
        width: Math.max(1, x(row.value) - left),
        height: 7,
        fill: CATEGORY10[g],
      }));
    });
  });
  groups.forEach((group, g) => {
    svg.append(el("rect", { x: left + g * 110, y: 6, width: 10, height: 10, fill: CATEGORY10[g] }));
    svg.append(el("text", { x: left + g * 110 + 14, y: 15, class: "tick" }, group));
  });
  return svg;
}

/** A line chart of values in [0, 1] (accuracy) over x in [1, xMax], with a dashed level. */
export function progressChart(
  values: number[],
  xMax: number,
  title: string,
  level: number,
): SVGSVGElement {
  const width = 360, height = 200, left = 40, right = 10, top = 24, bottom = 30;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "plot" });
  const x = scale(0, Math.max(xMax, 1), left, width - right);
  const y = scale(0, 1, height - bottom, top);
  svg.append(el("text", { x: width / 2, y: 15, class: "title", "text-anchor": "middle" }, title));
  svg.append(el("rect", {
    x: left,
    y: top,
    width: width - left - right,
    height: height - top - bottom,
    class: "area",
  }));
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(
      el("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", class: "tick" }, `${v * 100}%`),
    );
  }
  for (const e of [0, Math.round(xMax / 2), xMax]) {
    svg.append(
      el(
        "text",
        { x: x(e), y: height - bottom + 14, "text-anchor": "middle", class: "tick" },
        `${e}`,
      ),
    );
  }
  svg.append(
    el(
      "text",
      { x: (left + width) / 2, y: height - 3, "text-anchor": "middle", class: "axis" },
      "epoch",
    ),
  );
  svg.append(
    el("line", { x1: left, x2: width - right, y1: y(level), y2: y(level), class: "level" }),
  );
  const points = values.map((v, k) => `${x(k + 1).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  svg.append(el("polyline", { points, class: "progress", fill: "none" }));
  return svg;
}

/**
 * Renders Vega-Lite charts headless: to SVG with Vega's own renderer, and to PNG with resvg (a real
 * SVG renderer, compiled to WebAssembly), using the DejaVu Sans font from Debian's
 * `fonts-dejavu-core`.
 *
 * @module
 */
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import { initWasm, Resvg } from "@resvg/resvg-wasm";

/** A Vega-Lite specification (https://vega.github.io/vega-lite/docs/spec.html). */
export type VegaLiteSpec = vegaLite.TopLevelSpec;

/** Compiles a Vega-Lite spec and renders it to an SVG string. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const FONT_PATHS = [
  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
  "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
];
let ready: Promise<Uint8Array[]> | undefined;

function init(): Promise<Uint8Array[]> {
  ready ??= (async () => {
    const wasmUrl = import.meta.resolve("@resvg/resvg-wasm/index_bg.wasm");
    await initWasm(await Deno.readFile(new URL(wasmUrl)));
    const fonts: Uint8Array[] = [];
    for (const path of FONT_PATHS) {
      try {
        fonts.push(await Deno.readFile(path));
      } catch {
        // A missing font only drops text; the check below says so once.
      }
    }
    if (fonts.length === 0) {
      console.warn(
        "charts: no DejaVu font found (apt-get install fonts-dejavu-core): PNG text is blank",
      );
    }
    return fonts;
  })();
  return ready;
}

/** Renders an SVG string to PNG bytes at `scale` times its size. */
export async function svgToPng(svg: string, options: { scale?: number } = {}): Promise<Uint8Array> {
  const fontBuffers = await init();
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: options.scale ?? 2 },
    background: "white",
    font: { fontBuffers, defaultFontFamily: "DejaVu Sans", loadSystemFonts: false },
  });
  const png = resvg.render().asPng();
  resvg.free();
  return png;
}

/**
 * The page (site/index.html), bundled by site/build.ts: the library in a browser, with its
 * engines. Four sections: the decision boundaries, live; the digits trained in the page with
 * tfjsHeadLoss; a bench of every engine and tfjs / onnxruntime-web backend the browser has; and
 * each engine's parity on a few fixture cases. What each section measured is also kept in
 * `globalThis.siteResults`, which the browser test (site/browser_e2e.ts) reads.
 *
 * @module
 */
/// <reference lib="dom" />
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import * as ortWasm from "onnxruntime-web";
import * as ortWebgpu from "onnxruntime-web/webgpu";
import { type Engine, ENGINES } from "../mod.ts";
import { runtimeDescription } from "../engines/platform.ts";
import { type BoundaryState, mountBoundaries } from "./boundaries.ts";
import { DIGIT_LOSSES, type Epoch, splitDigits, trainDigits } from "./digits.ts";
import { type BenchRow, runBench, SIZES } from "./bench.ts";
import { PARITY_CASES, type ParityCell, runParity, TOLERANCE } from "./parity.ts";
import { bars, CATEGORY10, el, frame, progressChart } from "./plot.ts";

// Third-party binaries are served from node_modules beside the bundle (site/serve.ts).
setWasmPaths(new URL("../vendor/tfjs/", import.meta.url).href);
for (const ort of [ortWasm, ortWebgpu]) {
  ort.env.wasm.wasmPaths = new URL("../vendor/ort/", import.meta.url).href;
}
const FIXTURES = new URL("../fixtures/", import.meta.url);
const DIGITS = new URL("../demo/data/digits.json", import.meta.url);

/** Everything the page measured, for the browser test. */
export interface SiteResults {
  environment?: { browser: string; isolated: boolean; adapter: string; engines: string[] };
  boundaries?: BoundaryState;
  parity?: ParityCell[];
  bench?: { browser: string; adapter: string; rows: BenchRow[] };
  digits?: { loss: string; backend: string; epochs: Omit<Epoch, "features" | "weights">[] };
  errors: string[];
}

const results: SiteResults = { errors: [] };
(globalThis as { siteResults?: SiteResults }).siteResults = results;

const $ = <T extends HTMLElement = HTMLElement>(selector: string) =>
  document.querySelector<T>(selector)!;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Marks a section busy or done (data-state, which the browser test waits for). */
function setState(section: HTMLElement, state: "idle" | "running" | "done" | "failed") {
  section.dataset.state = state;
  for (const button of section.querySelectorAll<HTMLButtonElement>("button.run")) {
    button.disabled = state === "running";
  }
}

async function adapterName(): Promise<string> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu) return "no WebGPU (navigator.gpu is missing)";
  const adapter = await gpu.requestAdapter();
  if (!adapter) return "no WebGPU adapter (requestAdapter() gave none)";
  const info = adapter.info;
  return [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(
    " ",
  ) ||
    "a WebGPU adapter (unnamed)";
}

async function environment() {
  const adapter = await adapterName().catch((error) => `WebGPU failed: ${message(error)}`);
  const engines: string[] = [];
  for (const engine of Object.values(ENGINES) as Engine[]) {
    const a = await engine.availability();
    engines.push(
      `${engine.name}: ${
        a.available ? `available${a.detail ? `, ${a.detail}` : ""}` : `unavailable: ${a.reason}`
      }`,
    );
  }
  results.environment = {
    browser: runtimeDescription(),
    isolated: globalThis.crossOriginIsolated === true,
    adapter,
    engines,
  };
  const list = $("#environment ul");
  list.replaceChildren(
    ...[
      `Browser: ${results.environment.browser}`,
      `Cross-origin isolated: ${results.environment.isolated ? "yes" : "no"}`,
      `WebGPU adapter: ${adapter}`,
      ...engines,
    ].map((text) => Object.assign(document.createElement("li"), { textContent: text })),
  );
}

// ---- digits --------------------------------------------------------------------------------------

/** The test features (scaled to unit maximum norm) by digit, and each class's weight direction. */
function scatter(e: Epoch, labels: Int32Array, title: string): SVGSVGElement {
  const { features, weights } = e;
  let max = 0;
  for (let i = 0; i < labels.length; i++) {
    max = Math.max(max, Math.hypot(features[2 * i], features[2 * i + 1]));
  }
  const ticks = [-1, -0.5, 0, 0.5, 1].map((v) => ({ value: v, label: String(v) }));
  const f = frame({ size: 300, domain: [-1.05, 1.05], ticks, xLabel: "", yLabel: "", title });
  for (let j = 0; j < 10; j++) {
    const norm = Math.hypot(weights[2 * j], weights[2 * j + 1]) || 1;
    f.layer.append(el("line", {
      x1: f.x(0),
      y1: f.y(0),
      x2: f.x(weights[2 * j] / norm),
      y2: f.y(weights[2 * j + 1] / norm),
      stroke: CATEGORY10[j],
      "stroke-width": 1.5,
      "stroke-dasharray": "4 3",
    }));
  }
  for (let i = 0; i < labels.length; i++) {
    f.layer.append(el("circle", {
      cx: f.x(features[2 * i] / (max || 1)).toFixed(1),
      cy: f.y(features[2 * i + 1] / (max || 1)).toFixed(1),
      r: 2.2,
      fill: CATEGORY10[labels[i]],
    }));
  }
  return f.svg;
}

function mountDigits() {
  const section = $("#digits");
  const picker = section.querySelector<HTMLSelectElement>("select[name=loss]")!;
  for (const [name, { label }] of Object.entries(DIGIT_LOSSES)) {
    picker.append(new Option(label, name));
  }
  const legend = section.querySelector(".legend")!;
  legend.replaceChildren(...CATEGORY10.map((color, digit) => {
    const span = Object.assign(document.createElement("span"), { textContent: `■ ${digit}` });
    span.style.color = color;
    return span;
  }));
  let data: ReturnType<typeof splitDigits> | undefined, stop = false;
  section.querySelector("button.stop")!.addEventListener("click", () => stop = true);
  section.querySelector("button.run")!.addEventListener("click", async () => {
    const loss = picker.value,
      epochs = Number(section.querySelector<HTMLInputElement>("input[name=epochs]")!.value);
    const backend = section.querySelector<HTMLSelectElement>("select[name=backend]")!
      .value as "wasm";
    const status = section.querySelector(".status")!, plotBox = section.querySelector(".plots")!;
    setState(section, "running");
    stop = false;
    results.digits = { loss, backend, epochs: [] };
    try {
      data ??= splitDigits(await (await fetch(DIGITS)).text());
      const test = data.test;
      await trainDigits(data, {
        loss,
        epochs,
        backend,
        stopped: () => stop,
        onEpoch: async (e) => {
          const { features: _, weights: __, ...row } = e;
          results.digits!.epochs.push(row);
          status.textContent =
            `epoch ${e.epoch}/${epochs}: loss ${e.loss.toFixed(3)}, test accuracy ` +
            `${(100 * e.accuracy).toFixed(1)} % (${e.seconds.toFixed(1)} s, tfjs ${backend})`;
          plotBox.replaceChildren(
            scatter(e, test.y, `${DIGIT_LOSSES[loss].label}: test features, epoch ${e.epoch}`),
            progressChart(
              results.digits!.epochs.map((r) => r.accuracy),
              epochs,
              "test accuracy (dashed: 90 %)",
              0.9,
            ),
          );
          await new Promise(requestAnimationFrame);
        },
      });
      setState(section, "done");
    } catch (error) {
      status.textContent = `failed: ${message(error)}`;
      results.errors.push(`digits: ${message(error)}`);
      setState(section, "failed");
    }
  });
}

// ---- bench ---------------------------------------------------------------------------------------

function benchTable(rows: BenchRow[]): HTMLTableElement {
  const table = document.createElement("table");
  const head = [
    "engine",
    "kind",
    "precision",
    ...SIZES.map((s) => `${s.name} ${s.N}×${s.D}×${s.C} (ms)`),
    "note",
  ];
  table.createTHead().insertRow().append(
    ...head.map((text) => Object.assign(document.createElement("th"), { textContent: text })),
  );
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.dataset.engine = row.engine;
    const cells = [
      row.engine,
      row.kind,
      row.precision,
      ...SIZES.map((s) =>
        row.ms[s.name] === undefined ? "—" : row.ms[s.name].toFixed(row.ms[s.name] < 10 ? 2 : 1)
      ),
      row.note,
    ];
    for (const text of cells) tr.insertCell().textContent = text;
  }
  return table;
}

function mountBench() {
  const section = $("#bench");
  section.querySelector("button.run")!.addEventListener("click", async () => {
    setState(section, "running");
    const quick = section.querySelector<HTMLInputElement>("input[name=quick]")!.checked;
    const rows: BenchRow[] = [];
    const tableBox = section.querySelector(".table")!, chartBox = section.querySelector(".chart")!;
    const adapter = await adapterName().catch((error) => `WebGPU failed: ${message(error)}`);
    section.querySelector(".where")!.textContent = `${runtimeDescription()} — WebGPU: ${adapter}`;
    const draw = (row: BenchRow) => {
      const k = rows.findIndex((r) => r.engine === row.engine);
      if (k < 0) rows.push(row);
      else rows[k] = row;
      tableBox.replaceChildren(benchTable(rows));
      results.bench = { browser: runtimeDescription(), adapter, rows };
    };
    try {
      await runBench({
        budgetMs: quick ? { S: 300, M: 0 } : { S: 1000, M: 3000 },
        minRuns: quick ? { S: 3, M: 1 } : { S: 5, M: 3 },
        maxPredictedMs: quick ? 12_000 : 30_000,
        onRow: draw,
      });
      const groups = SIZES.map((s) => `${s.name} ${s.N}×${s.D}×${s.C}`);
      chartBox.replaceChildren(bars(
        rows.flatMap((r) =>
          SIZES.map((s, k) => ({ label: r.engine, group: groups[k], value: r.ms[s.name] ?? 0 }))
        ),
        groups,
        "ms",
      ));
      setState(section, "done");
    } catch (error) {
      results.errors.push(`bench: ${message(error)}`);
      section.querySelector(".where")!.textContent += ` — failed: ${message(error)}`;
      setState(section, "failed");
    }
  });
}

// ---- parity --------------------------------------------------------------------------------------

function parityTable(cells: ParityCell[]): HTMLTableElement {
  const engines = [...new Set(cells.map((c) => c.engine))];
  const table = document.createElement("table");
  table.createTHead().insertRow().append(
    ...["case", ...engines].map((text) =>
      Object.assign(document.createElement("th"), { textContent: text })
    ),
  );
  const body = table.createTBody();
  for (const name of PARITY_CASES) {
    const tr = body.insertRow();
    tr.insertCell().textContent = name;
    for (const engine of engines) {
      const cell = cells.find((c) => c.case === name && c.engine === engine);
      const td = tr.insertCell();
      if (!cell) continue;
      td.textContent = cell.error !== undefined ? cell.error.toExponential(1) : "—";
      td.title = cell.note ?? `worst output: ${cell.worst}`;
      td.className = cell.error === undefined ? "na" : cell.ok ? "ok" : "bad";
    }
  }
  return table;
}

function mountParity() {
  const section = $("#parity");
  section.querySelector(".tolerance")!.textContent =
    `Tolerance: ${TOLERANCE.float64} (float64), ${TOLERANCE.float32} (float32), of the largest expected magnitude.`;
  section.querySelector("button.run")!.addEventListener("click", async () => {
    setState(section, "running");
    const cells: ParityCell[] = [];
    const box = section.querySelector(".table")!;
    try {
      await runParity(FIXTURES, (cell) => {
        cells.push(cell);
        box.replaceChildren(parityTable(cells));
      });
      results.parity = cells;
      setState(section, "done");
    } catch (error) {
      results.errors.push(`parity: ${message(error)}`);
      setState(section, "failed");
    }
  });
}

// ---- start ---------------------------------------------------------------------------------------

const readBoundaries = mountBoundaries($("#boundaries"));
$("#boundaries").addEventListener("input", () => results.boundaries = readBoundaries());
$("#boundaries").addEventListener("change", () => results.boundaries = readBoundaries());
results.boundaries = readBoundaries();
mountDigits();
mountBench();
mountParity();
try {
  await environment();
  document.body.dataset.state = "ready";
} catch (error) {
  results.errors.push(`environment: ${message(error)}`);
  document.body.dataset.state = "failed";
}

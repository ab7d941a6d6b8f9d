/**
 * Serves the page on 127.0.0.1 (`deno task serve`, then open the address it prints), cross-origin
 * isolated: every response carries Cross-Origin-Opener-Policy: same-origin and
 * Cross-Origin-Embedder-Policy: require-corp, so the page has SharedArrayBuffer and engine-wasm
 * its worker threads. Bundles first (site/build.ts).
 *
 * What it serves, and nothing else: the page (site/index.html), its bundle (site/dist/), the
 * fixtures the parity section and the ONNX peers read (fixtures/), the digits (demo/data/), and the
 * .wasm binaries of tfjs-backend-wasm and onnxruntime-web from node_modules (/vendor/tfjs/,
 * /vendor/ort/).
 *
 * Options: `--port=N` (default 8000; 0 picks a free one), `--no-build` (serve site/dist/ as it is).
 * `/?isolation=off` serves the page without COOP/COEP, as a plain server would: engine-wasm then
 * runs on the page's own thread, and the page says so.
 *
 * @module
 */
import { buildBundles } from "./build.ts";

const root = new URL("../", import.meta.url);

/** URL prefix → folder of the repository (relative to its root). */
const MOUNTS: [string, string][] = [
  ["/dist/", "site/dist/"],
  ["/fixtures/", "fixtures/"],
  ["/demo/data/", "demo/data/"],
  ["/vendor/tfjs/", "node_modules/@tensorflow/tfjs-backend-wasm/dist/"],
  ["/vendor/ort/", "node_modules/onnxruntime-web/dist/"],
];

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  map: "application/json",
  wasm: "application/wasm",
  onnx: "application/octet-stream",
  f64: "application/octet-stream",
  css: "text/css; charset=utf-8",
  png: "image/png",
  svg: "image/svg+xml",
};

/** The headers that make the page cross-origin isolated (SharedArrayBuffer). */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

function fileOf(pathname: string): URL | undefined {
  if (pathname === "/" || pathname === "/index.html") return new URL("site/index.html", root);
  if (pathname.split("/").some((part) => part === ".." || part.startsWith("."))) return undefined;
  for (const [prefix, folder] of MOUNTS) {
    if (pathname.startsWith(prefix)) {
      return new URL(folder + decodeURIComponent(pathname.slice(prefix.length)), root);
    }
  }
  return undefined;
}

/** Answers one request: a file of {@linkcode MOUNTS}, with the isolation headers, or 404. */
export async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const headers = new Headers(ISOLATION_HEADERS);
  if (url.searchParams.get("isolation") === "off") {
    // The page as a server without those headers serves it: no SharedArrayBuffer for workers.
    headers.delete("Cross-Origin-Opener-Policy");
    headers.delete("Cross-Origin-Embedder-Policy");
  }
  headers.set("Cache-Control", "no-store");
  const file = ["GET", "HEAD"].includes(request.method) ? fileOf(url.pathname) : undefined;
  if (file) {
    try {
      const body = await Deno.readFile(file);
      const type = TYPES[file.pathname.split(".").pop() ?? ""] ?? "application/octet-stream";
      headers.set("Content-Type", type);
      return new Response(request.method === "HEAD" ? null : body, { headers });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory)) {
        throw error;
      }
    }
  }
  headers.set("Content-Type", "text/plain; charset=utf-8");
  return new Response("not found\n", { status: 404, headers });
}

/** Starts the server on 127.0.0.1:`port` (0: any free port); resolves once it listens. */
export async function serveSite(port: number): Promise<Deno.HttpServer<Deno.NetAddr>> {
  const listening = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => listening.resolve() },
    handle,
  );
  await listening.promise;
  return server;
}

if (import.meta.main) {
  const port = Number(Deno.args.find((a) => a.startsWith("--port="))?.slice(7) ?? 8000);
  if (!Deno.args.includes("--no-build")) {
    const { seconds } = await buildBundles();
    console.log(`bundled site/dist/ and node/dist/ in ${seconds.toFixed(1)} s`);
  }
  const server = await serveSite(port);
  console.log(`the page: http://127.0.0.1:${server.addr.port}/  (Ctrl-C stops)`);
}

/**
 * Bundles the library for the two runtimes that cannot run its TypeScript sources: the page
 * (site/dist/, for browsers) and Node.js (node/dist/). `deno task bundle`; `deno task serve` runs
 * it first.
 *
 * esbuild (npm) bundles; the target is ES2022, so `await using` is lowered (Node 20 has none).
 * Each bundle's folder holds engine-wasm's assets where its modules look for them, relative to the
 * bundle (engines/platform.ts, `siblingScript`): the worker bundled as `_worker.js` and the
 * kernels as `build/kernels*.wasm`. The page's third-party binaries (tfjs-backend-wasm's and
 * onnxruntime-web's .wasm files) stay in node_modules and are served from there (site/serve.ts).
 *
 * @module
 */
import * as esbuild from "esbuild";

const root = new URL("../", import.meta.url);
const path = (relative: string) => decodeURIComponent(new URL(relative, root).pathname);

/** What a build wrote. */
export interface Bundles {
  /** site/dist/, the page's folder. */
  site: string;
  /** node/dist/, Node's. */
  node: string;
  /** Seconds the build took. */
  seconds: number;
}

const common: esbuild.BuildOptions = {
  bundle: true,
  format: "esm",
  target: ["es2022"],
  logLevel: "warning",
  legalComments: "none",
};

/** Copies engine-wasm's kernels into `out`/build/. */
async function copyKernels(out: string) {
  await Deno.mkdir(`${out}/build`, { recursive: true });
  for (const file of ["kernels.wasm", "kernels_relaxed.wasm"]) {
    await Deno.copyFile(path(`engines/wasm/build/${file}`), `${out}/build/${file}`);
  }
}

/** The page: site/page.ts with everything it imports (tfjs, onnxruntime-web), for browsers. */
async function buildSite(out: string) {
  await esbuild.build({
    ...common,
    platform: "browser",
    entryPoints: { page: path("site/page.ts"), _worker: path("engines/wasm/_worker.ts") },
    outdir: out,
    minify: true,
    sourcemap: "linked",
    // onnxruntime-web's bundles mention Node's modules in branches that browsers never take.
    external: ["node:*", "fs", "path", "os", "worker_threads", "perf_hooks", "crypto", "url"],
  });
  await copyKernels(out);
}

/** Node's bundle: mod.ts (the library, no tfjs) as an ES module, with its worker. */
async function buildNode(out: string) {
  await esbuild.build({
    ...common,
    platform: "node",
    entryPoints: { mod: path("mod.ts"), _worker: path("engines/wasm/_worker.ts") },
    outdir: out,
  });
  await copyKernels(out);
  await Deno.writeTextFile(
    `${out}/package.json`,
    JSON.stringify({ type: "module", private: true, main: "mod.js" }, null, 2) + "\n",
  );
}

/** Builds both bundles (into site/dist/ and node/dist/, emptied first). */
export async function buildBundles(): Promise<Bundles> {
  const started = performance.now();
  const site = path("site/dist"), node = path("node/dist");
  for (const out of [site, node]) await Deno.remove(out, { recursive: true }).catch(() => {});
  try {
    await Promise.all([buildSite(site), buildNode(node)]);
  } finally {
    await esbuild.stop();
  }
  return { site, node, seconds: (performance.now() - started) / 1000 };
}

if (import.meta.main) {
  const { site, node, seconds } = await buildBundles();
  console.log(`bundled ${site} and ${node} in ${seconds.toFixed(1)} s`);
}

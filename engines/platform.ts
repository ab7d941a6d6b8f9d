/**
 * What the engines need from the JavaScript runtime they run in (Deno, a browser, Node.js ≥ 20,
 * Bun), behind one small interface: the runtime's name, its logical cores, the bytes of a file
 * shipped beside a module (a kernel binary), and worker threads — Web Workers where the runtime
 * has them, node:worker_threads in Node.js — with the worker's side of the channel.
 *
 * Nothing is imported: Node's builtins are taken through `process.getBuiltinModule` (Node ≥ 20.16),
 * so a bundle for browsers resolves no `node:` module, and every runtime imports this file.
 *
 * A bundle (or JSR's npm build) is JavaScript: a module that names a sibling `.ts` file (a worker)
 * finds it as the `.js` file of the same name next to itself ({@linkcode siblingScript}). The
 * page's and Node's bundles (site/build.ts) lay out engine-wasm's assets that way: `_worker.js`
 * and `build/*.wasm` next to the bundle.
 *
 * @module
 */

/** The runtime, as far as the engines care. */
export type RuntimeName = "deno" | "node" | "bun" | "browser" | "unknown";

interface NodeProcess {
  versions?: { node?: string; bun?: string };
  getBuiltinModule?: (id: string) => unknown;
}

interface NodeWorker {
  on(event: "message", listener: (data: unknown) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  postMessage(message: unknown): void;
  terminate(): Promise<number>;
  ref(): void;
  unref(): void;
}

interface NodeWorkerThreads {
  Worker: new (url: URL) => NodeWorker;
  parentPort: {
    on(event: "message", listener: (data: unknown) => void): void;
    postMessage(message: unknown): void;
  } | null;
}

interface NodeOs {
  availableParallelism?: () => number;
  cpus(): unknown[];
}

interface NodeFs {
  promises: { readFile(url: URL): Promise<Uint8Array<ArrayBuffer>> };
}

// Taken at load, before anything can replace it: tfjs-backend-wasm's threaded build, believing
// itself in Node.js, sets globalThis.Worker to node:worker_threads' Worker.
const WebWorker: typeof Worker | undefined = typeof Worker === "function" ? Worker : undefined;

const nodeProcess = (globalThis as { process?: NodeProcess }).process;

/** One of Node's (or Bun's) builtin modules, without an import; undefined elsewhere. */
function nodeBuiltin<T>(id: string): T | undefined {
  if (typeof Deno !== "undefined") return undefined; // Deno has them, but uses its own APIs
  return nodeProcess?.getBuiltinModule?.(id) as T | undefined;
}

/** Which runtime this is. */
export function runtimeName(): RuntimeName {
  if (typeof Deno !== "undefined" && typeof Deno.version?.deno === "string") return "deno";
  if (nodeProcess?.versions?.bun) return "bun";
  if (nodeProcess?.versions?.node) return "node";
  return typeof navigator !== "undefined" && typeof navigator.userAgent === "string"
    ? "browser"
    : "unknown";
}

/** The runtime with its version, e.g. "Deno 2.9.6", "Node.js 20.20.2", or the browser's agent. */
export function runtimeDescription(): string {
  switch (runtimeName()) {
    case "deno":
      return `Deno ${Deno.version.deno}`;
    case "bun":
      return `Bun ${nodeProcess!.versions!.bun}`;
    case "node":
      return `Node.js ${nodeProcess!.versions!.node}`;
    case "browser":
      return navigator.userAgent;
    default:
      return "an unknown JavaScript runtime";
  }
}

/** Logical cores: navigator.hardwareConcurrency, else Node's os.availableParallelism(); ≥ 1. */
export function logicalCores(): number {
  const fromNavigator = typeof navigator !== "undefined" ? navigator.hardwareConcurrency : 0;
  if (Number.isInteger(fromNavigator) && fromNavigator > 0) return fromNavigator;
  const os = nodeBuiltin<NodeOs>("node:os");
  const cores = os ? (os.availableParallelism?.() ?? os.cpus().length) : 1;
  return Math.max(1, cores || 1);
}

/**
 * The bytes of a file beside a module (`new URL("./build/x.wasm", import.meta.url)`): from the file
 * system for a file: URL (Deno, Node.js, Bun), else fetched (a page, or a bundle served over HTTP).
 */
export async function readAsset(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  if (url.protocol === "file:") {
    if (typeof Deno !== "undefined") return await Deno.readFile(url);
    const fs = nodeBuiltin<NodeFs>("node:fs");
    if (fs) return new Uint8Array(await fs.promises.readFile(url));
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * A sibling script named by its TypeScript source (`new URL("./_worker.ts", import.meta.url)`) as
 * the running module finds it: the `.ts` file where the module runs from source, the `.js` file of
 * the same name where the module itself is JavaScript (a bundle, or JSR's npm build).
 */
export function siblingScript(script: URL, moduleUrl: string): URL {
  if (/\.[cm]?ts$/.test(new URL(moduleUrl).pathname)) return script;
  return new URL(script.href.replace(/\.([cm]?)ts$/, ".$1js"));
}

let shared: "shareable" | "unshareable" | undefined | null = null;

/**
 * Whether this runtime makes a shared WebAssembly.Memory: "shareable" with worker threads,
 * "unshareable" where it makes one that no worker may receive (a browser page that is not
 * cross-origin isolated), undefined where it makes none.
 */
export function sharedMemory(): "shareable" | "unshareable" | undefined {
  if (shared === null) {
    try {
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
      const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
      shared = isolated === false || typeof SharedArrayBuffer === "undefined"
        ? "unshareable"
        : "shareable";
    } catch {
      shared = undefined;
    }
  }
  return shared;
}

/** Where worker threads come from: Web Workers, node:worker_threads, or none. */
export type ThreadKind = "Web Workers" | "node:worker_threads";

/**
 * The kind of worker threads this runtime has that can share a WebAssembly memory, or undefined
 * when it has none (a browser page that is not cross-origin isolated has Workers, but no memory
 * they can share).
 */
export function threadKind(): ThreadKind | undefined {
  if (sharedMemory() !== "shareable") return undefined;
  if (WebWorker) return "Web Workers";
  if (nodeBuiltin<NodeWorkerThreads>("node:worker_threads")?.Worker) return "node:worker_threads";
  return undefined;
}

/** What a thread's owner hears from it. */
export interface ThreadListener {
  /** A message the thread posted (its data). */
  message(data: unknown): void;
  /** The thread failed outside any message handler, e.g. its script did not load. */
  error(message: string): void;
}

/** A started worker thread, the same for Web Workers and node:worker_threads. */
export interface Thread {
  /** Posts a message (structured clone; a shared memory and a WebAssembly.Module are shared). */
  post(message: unknown): void;
  /**
   * Whether the thread should keep the process alive: Node.js waits for a referenced worker, so a
   * pool references its threads only while a request is outstanding. A no-op for Web Workers.
   */
  hold(busy: boolean): void;
  /** Ends the thread. */
  terminate(): void;
}

/** Starts a module worker on `script` (see {@linkcode siblingScript}); throws where none exist. */
export function startThread(where: string, script: URL, listener: ThreadListener): Thread {
  if (WebWorker) {
    const worker = new WebWorker(script, { type: "module" });
    worker.onmessage = (event: MessageEvent) => listener.message(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      listener.error(event.message || `cannot run ${script}`);
    };
    return {
      post: (message) => worker.postMessage(message),
      hold: () => {},
      terminate: () => worker.terminate(),
    };
  }
  const threads = nodeBuiltin<NodeWorkerThreads>("node:worker_threads");
  if (!threads?.Worker) throw new Error(`${where}: this runtime has no worker threads`);
  const worker = new threads.Worker(script);
  worker.unref();
  worker.on("message", (data) => listener.message(data));
  worker.on("error", (error) => listener.error(error?.message ?? String(error)));
  return {
    post: (message) => worker.postMessage(message),
    hold: (busy) => busy ? worker.ref() : worker.unref(),
    terminate: () => void worker.terminate(),
  };
}

/** The worker's side: receives its owner's messages and posts replies. */
export interface ThreadScope {
  /** Calls `handler` with the data of each message from the owner. */
  listen(handler: (data: unknown) => void): void;
  /** Posts a message to the owner. */
  post(message: unknown): void;
}

/** Inside a worker started by {@linkcode startThread}: the channel to its owner. */
export function threadScope(): ThreadScope {
  const scope = globalThis as unknown as {
    postMessage?: (message: unknown) => void;
    onmessage?: ((event: MessageEvent) => void) | null;
  };
  // A Web Worker (Deno, browsers, Bun) has a global postMessage; Node's worker has parentPort.
  if (typeof scope.postMessage === "function" && !("document" in globalThis)) {
    return {
      listen: (handler) => void (scope.onmessage = (event: MessageEvent) => handler(event.data)),
      post: (message) => scope.postMessage!(message),
    };
  }
  const port = nodeBuiltin<NodeWorkerThreads>("node:worker_threads")?.parentPort;
  if (!port) throw new Error("threadScope: not inside a worker thread");
  return {
    listen: (handler) => port.on("message", handler),
    post: (message) => port.postMessage(message),
  };
}

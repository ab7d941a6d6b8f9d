// The library in Node.js (≥ 20), through its bundle (node/dist/, `deno task bundle`): the float64
// losses, engine-wasm on node:worker_threads, engine-webgpu and engine-native reported unavailable
// with their reasons, and the parity cases of the page (site/parity.ts) against the fixtures.
//
// Run: `deno task bundle && node --test node/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";

const bundle = new URL("./dist/mod.js", import.meta.url);
if (!existsSync(bundle)) {
  throw new Error(`${bundle.pathname} is missing: run \`deno task bundle\` first`);
}
const lib = await import(bundle.href);

// The page's parity cases, and testing/tolerances.ts's tolerances.
const CASES = [
  "softmax/small/bias/mean",
  "sphereFace/small/exact/mean",
  "cosFace/small/exact/sum",
  "arcFace/small/exact/none",
  "combinedMargin/small/exact/mean",
  "arcFace/large/exact/mean",
];
const TOLERANCE = { float64: 1e-10, float32: 1e-4 };
const OUTPUTS = ["loss", "losses", "gradFeatures", "gradWeights", "gradBias"];

const fixtures = new URL("../fixtures/", import.meta.url);
const manifest = JSON.parse(readFileSync(new URL("manifest.json", fixtures), "utf8"));
const cases = manifest.cases.filter((c) => CASES.includes(c.name));
const files = new Map();

function array(c, name) {
  const ref = c.arrays[name];
  if (!files.has(ref.file)) {
    const bytes = readFileSync(new URL(ref.file, fixtures));
    files.set(ref.file, new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8));
  }
  const size = ref.shape.reduce((a, b) => a * b, 1);
  return files.get(ref.file).subarray(ref.offset, ref.offset + size);
}

function caseInput(c) {
  const typed = (name) =>
    c.inputDtype === "float32" ? Float32Array.from(array(c, name)) : array(c, name).slice();
  const input = {
    features: lib.matrix(c.N, c.D, typed("features")),
    weights: lib.matrix(c.C, c.D, typed("weights")),
    labels: Array.from(array(c, "labels")),
  };
  if (c.arrays.bias) input.bias = typed("bias");
  return input;
}

const headOf = (c) => lib.HEAD_CATALOG.find((e) => e.name === c.loss).head(c.options);

/** The worst relative error over the outputs (max |a − e| / max |e| per output). */
function worstError(c, result) {
  let worst = 0;
  for (const name of OUTPUTS) {
    if (!c.arrays[name]) continue;
    const value = result[name];
    const actual = name === "loss" ? [value] : value.data ?? value;
    const expected = array(c, name);
    assert.equal(actual.length, expected.length, `${c.name} ${name}: length`);
    let scale = 0, error = 0;
    for (let k = 0; k < expected.length; k++) {
      scale = Math.max(scale, Math.abs(expected[k]));
      error = Math.max(error, Math.abs(actual[k] - expected[k]));
    }
    worst = Math.max(worst, Number.isFinite(error) ? error / (scale || 1) : Infinity);
  }
  return worst;
}

test("the fixture cases are there", () => {
  assert.equal(cases.length, CASES.length);
});

test("engines: wasm on worker_threads, webgpu and native unavailable with a reason", async () => {
  const wasm = await lib.ENGINES.wasm.availability();
  assert.equal(wasm.available, true, wasm.reason);
  assert.match(wasm.detail, /worker threads? by default \(node:worker_threads\)/);
  const webgpu = await lib.ENGINES.webgpu.availability();
  assert.deepEqual(webgpu, {
    available: false,
    reason: "this runtime has no WebGPU (navigator.gpu is missing)",
  });
  const native = await lib.ENGINES.native.availability();
  assert.equal(native.available, false);
  assert.match(native.reason, /Deno's FFI/);
  console.log(
    `engine-wasm: ${wasm.detail}; engine-webgpu: ${webgpu.reason}; engine-native: ${native.reason}`,
  );
});

test("float64 losses match the fixtures (marginSoftmaxLoss)", () => {
  for (const c of cases) {
    const result = lib.marginSoftmaxLoss(caseInput(c), headOf(c), {
      reduction: c.options.reduction ?? "mean",
    });
    const error = worstError(c, result);
    assert.ok(error <= TOLERANCE.float64, `${c.name}: ${error}`);
  }
});

for (const engine of ["reference", "wasm"]) {
  test(`engine ${engine}: parity on the page's cases`, async () => {
    const precision = lib.ENGINES[engine].precision;
    for (const c of cases) {
      const result = await lib.headLoss(caseInput(c), headOf(c), {
        engine,
        reduction: c.options.reduction ?? "mean",
      });
      const error = worstError(c, result);
      console.log(`${engine.padEnd(9)} ${c.name.padEnd(32)} ${error.toExponential(2)}`);
      assert.ok(error <= TOLERANCE[precision], `${c.name}: ${error}`);
    }
  });
}

test("engine wasm: a prepared head on 2 worker threads, reused and disposed", async () => {
  const c = cases.find((k) => k.name === "arcFace/large/exact/mean");
  const head = await lib.prepareHead(headOf(c), { samples: c.N, dims: c.D, classes: c.C }, {
    engine: "wasm",
    threads: 2,
  });
  try {
    assert.equal(head.threads, 2);
    for (let k = 0; k < 3; k++) {
      assert.ok(worstError(c, await head.run(caseInput(c))) <= TOLERANCE.float32);
    }
  } finally {
    await head.dispose();
  }
});

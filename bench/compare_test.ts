import assert from "node:assert";
import { compareMain, compareRuns, ratioChange } from "./compare.ts";
import { MACHINE_PROBE, PARALLEL_PROBE } from "./_machine_probe.ts";
import { attachAnchors, type BenchResult, type BenchRow } from "./_results.ts";

/** A seeded generator (an LCG is plenty for test noise). */
function noise(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/**
 * Per-iteration times of work that takes `ms`, as a shared machine gives them: ±1 % jitter, and on
 * a share `load` of the iterations other work on the machine adds up to 3 times as much again
 * (load only ever adds time).
 */
function samples(ms: number, count: number, random: () => number, load = 0.2): number[] {
  return Array.from({ length: count }, () => {
    const jitter = 1 + (random() - 0.5) * 0.02;
    return ms * jitter * (random() < load ? 1 + 3 * random() : 1);
  });
}

const BACKENDS = [
  { backend: "reference", ms: 21, ours: true, threads: null },
  { backend: "engine-wasm", ms: 1.6, ours: true, threads: 2 },
  { backend: "engine-webgpu", ms: 21, ours: true, threads: null },
  { backend: "ort-wasm", ms: 4, ours: false, threads: null },
];
const LOSSES = ["softmax", "cosFace", "arcFace"];

/**
 * One synthetic run at S. `machine` scales every time (a slower machine), `load` is the share of
 * iterations a busy machine slows down, `coreTaken` has another process hold a core for the whole
 * run (work on every core, the threaded engine's and the parallel probe's, takes 1.8 times as
 * long); `slow` makes the named backend's every iteration `factor` times as long, as a
 * deliberately slowed engine would be.
 */
function run(
  seed: number,
  { machine = 1, load = 0.2, coreTaken = false, slow }: {
    machine?: number;
    load?: number;
    coreTaken?: boolean;
    slow?: { backend: string; factor: number };
  } = {},
): BenchResult {
  const random = noise(seed);
  const shared = coreTaken ? 1.8 : 1;
  const rows: BenchRow[] = [];
  for (const loss of LOSSES) {
    for (const { backend, ms, ours, threads } of BACKENDS) {
      const factor = (slow?.backend === backend ? slow.factor : 1) * (threads ? shared : 1);
      rows.push({
        backend,
        ours,
        engine: "test",
        precision: "float32",
        threads,
        loss,
        size: "S",
        N: 64,
        D: 128,
        C: 1000,
        samplesMs: samples(ms * machine * factor, 32, random, load),
      });
    }
  }
  const probe = samples(2.6 * machine, 60, random, load);
  const result: BenchResult = {
    timestamp: `run ${seed}`,
    machineProbe: {
      samplesMs: probe,
      medianMs: 2.6 * machine,
      parallelSamplesMs: samples(2.8 * machine * shared, 60, random, load),
    },
    rows,
  };
  attachAnchors(result);
  return result;
}

Deno.test("bench:compare: an unchanged engine passes, on a slower or busier machine too", () => {
  for (const changed of [{ machine: 1 }, { machine: 1.4 }, { load: 0.7 }, { coreTaken: true }]) {
    const comparison = compareRuns(run(1), run(2, changed), { threshold: 1.1 });
    assert.deepStrictEqual(comparison.regressions, []);
    for (const row of comparison.rows) {
      assert.equal(row.anchor, row.backend === "engine-wasm" ? PARALLEL_PROBE : MACHINE_PROBE);
      assert.ok(row.verdict === "within noise", `${row.backend} ${row.loss}: ${row.verdict}`);
    }
  }
});

Deno.test("bench:compare: an engine slowed down 2× is flagged, on a busy machine too", () => {
  const cases = [
    { threshold: 1.1, load: 0.2, coreTaken: false },
    { threshold: 1.5, load: 0.2, coreTaken: false },
    { threshold: 1.5, load: 0.7, coreTaken: false },
    { threshold: 1.5, load: 0.2, coreTaken: true },
  ];
  for (const { threshold, load, coreTaken } of cases) {
    const slowed = run(2, { load, coreTaken, slow: { backend: "engine-wasm", factor: 2 } });
    const comparison = compareRuns(run(1), slowed, { threshold });
    assert.deepStrictEqual(
      comparison.regressions.map((r) => `${r.backend} ${r.loss}`),
      LOSSES.map((loss) => `engine-wasm ${loss}`),
    );
    for (const r of comparison.regressions) {
      assert.ok(r.change! > 1.9 && r.change! < 2.1, `change ${r.change}`);
      assert.ok(r.low! > threshold, `band ${r.low}–${r.high}`);
    }
    assert.ok(
      comparison.rows.filter((r) => r.backend !== "engine-wasm").every((r) =>
        r.verdict === "within noise"
      ),
    );
  }
});

Deno.test("bench:compare: a slower peer is reported and never fails; --all makes it fail", () => {
  const slowPeer = run(2, { slow: { backend: "ort-wasm", factor: 2 } });
  const peer = compareRuns(run(1), slowPeer);
  assert.deepStrictEqual(peer.regressions, []);
  assert.ok(peer.rows.some((r) => r.backend === "ort-wasm" && r.verdict === "regression"));
  const all = compareRuns(run(1), slowPeer, { failsOn: () => true });
  assert.equal(all.regressions.length, LOSSES.length);
  // A faster reference is an improvement of its own rows and moves no other row.
  const faster = compareRuns(run(1), run(2, { slow: { backend: "reference", factor: 0.5 } }));
  assert.deepStrictEqual(faster.regressions, []);
  for (const r of faster.rows) {
    assert.equal(r.verdict, r.backend === "reference" ? "improvement" : "within noise");
  }
});

Deno.test("bench:compare: rows that are new, gone, or have no anchor are reported, not failed", () => {
  const old = run(1);
  const neu = run(2);
  neu.rows = neu.rows.filter((r) => !(r.backend === "ort-wasm" && r.loss === "arcFace"));
  old.rows = old.rows.filter((r) => !(r.backend === "engine-webgpu" && r.loss === "softmax"));
  delete old.machineProbe;
  const comparison = compareRuns(old, neu);
  const verdict = (backend: string, loss: string) =>
    comparison.rows.find((r) => r.backend === backend && r.loss === loss)?.verdict;
  assert.deepStrictEqual(verdict("ort-wasm", "arcFace"), "gone");
  assert.deepStrictEqual(verdict("engine-webgpu", "softmax"), "new");
  assert.deepStrictEqual(verdict("reference", "cosFace"), "not comparable"); // no probe in OLD
  assert.deepStrictEqual(comparison.regressions, []);
});

Deno.test("bench:compare: the band is the bootstrap's, reproducible, and holds the change", () => {
  const random = noise(7);
  const [a, b, c, d] = [10, 20, 10, 20].map((ms) => samples(ms, 16, random));
  const first = ratioChange(a, b, c, d, { seed: 3 });
  assert.deepStrictEqual(ratioChange(a, b, c, d, { seed: 3 }), first);
  assert.ok(first.low <= first.change && first.change <= first.high);
  assert.ok(first.high - first.low < 0.3, `band ${first.low}–${first.high}`);
  // Identical sets: no change, and a band around 1.
  const same = ratioChange(a, b, a, b);
  assert.deepStrictEqual(same.change, 1);
});

Deno.test("bench:compare: the command exits 1 on a regression, 0 without, 2 on bad arguments", async () => {
  const files: Record<string, BenchResult> = {
    "old.json": run(1),
    "same.json": run(2),
    "slow.json": run(2, { slow: { backend: "engine-wasm", factor: 2 } }),
  };
  const read = (path: string) => Promise.resolve(JSON.stringify(files[path]));
  const printed: string[] = [];
  const print = (text: string) => void printed.push(text);
  assert.deepStrictEqual(await compareMain(["old.json", "same.json"], read, print), 0);
  assert.ok(printed.pop()!.includes("OK: no row of ours is slower"));
  assert.deepStrictEqual(
    await compareMain(["old.json", "slow.json", "--threshold", "1.5"], read, print),
    1,
  );
  assert.ok(printed.pop()!.includes("FAIL: 3 regression(s) beyond noise: engine-wasm softmax S"));
  assert.deepStrictEqual(await compareMain(["old.json"], read, print), 2);
  assert.deepStrictEqual(await compareMain(["old.json", "same.json", "--bogus"], read, print), 2);
});

// The pure layout, with made-up adapter limits: no GPU needed.
import assert from "node:assert";
import {
  dispatches,
  type GpuLimits,
  layoutProblem,
  MAX_LOOP_ITERATIONS,
  planLayout,
  SLICE_CLASSES,
} from "./_layout.ts";

/** lavapipe's limits. */
const LAVAPIPE: GpuLimits = {
  maxStorageBufferBindingSize: 2 ** 27,
  maxBufferSize: 2 ** 31 - 1,
  maxComputeWorkgroupsPerDimension: 65535,
};

const shape = (samples: number, dims: number, classes: number) => ({ samples, dims, classes });

Deno.test("layout: pads rows to 16 and D to 32, one chunk under the binding limit", () => {
  const layout = planLayout(shape(19, 37, 83), LAVAPIPE, { angular: true });
  assert.deepStrictEqual(
    [layout.Np, layout.Cp, layout.Dp, layout.chunks.length, layout.slices],
    [32, 96, 64, 1, 1],
  );
  assert.deepStrictEqual(layout.chunks[0], { c0: 0, cC: 83, cCp: 96, slice0: 0, slices: 1 });
  assert.equal(layoutProblem(layout, LAVAPIPE, true), undefined);
});

Deno.test("layout: size M (128 × 512 × 10 000) is one chunk of 10 slices", () => {
  const layout = planLayout(shape(128, 512, 10_000), LAVAPIPE, { angular: true });
  assert.equal(layout.chunks.length, 1);
  assert.equal(layout.slice, SLICE_CLASSES);
  assert.equal(layout.slices, 10);
  assert.equal(layout.readBytes, 8 * 128 + 4 * 128 * 512 + 4 * 10_000 * 512);
  assert.deepStrictEqual(layout.read.map((p) => p.name), ["rows", "gradFeatures", "gradWeights"]);
  const linear = planLayout(shape(128, 512, 10_000), LAVAPIPE, { angular: false });
  assert.deepStrictEqual(linear.read.map((p) => p.name).at(-1), "gradBias");
});

Deno.test("layout: chunks of W tile the classes, each within one binding, slices inside them", () => {
  const limits = { ...LAVAPIPE, maxStorageBufferBindingSize: 256 * 1024 };
  for (const [N, D, C] of [[3, 37, 4000], [40, 100, 1300], [1, 512, 300]]) {
    const layout = planLayout(shape(N, D, C), limits, { angular: true, sliceClasses: 32 });
    assert.equal(layoutProblem(layout, limits, false), undefined, `${N}×${D}×${C}`);
    let next = 0, slice = 0;
    for (const chunk of layout.chunks) {
      assert.equal(chunk.c0, next);
      assert.ok(4 * chunk.cCp * layout.Dp <= limits.maxStorageBufferBindingSize);
      assert.equal(chunk.c0 % layout.slice, 0, "a slice straddles two chunks");
      assert.equal(chunk.slice0, slice);
      assert.equal(chunk.slices, Math.ceil(chunk.cCp / layout.slice));
      assert.equal(chunk.cC, Math.min(chunk.cCp, C - chunk.c0));
      next += chunk.cCp;
      slice += chunk.slices;
    }
    assert.equal(next, layout.Cp);
    assert.equal(slice, layout.slices);
    assert.ok(layout.chunks.length > 1);
  }
});

Deno.test("layout: the dispatches in order, the logits pass only when asked for", () => {
  const layout = planLayout(shape(19, 37, 83), LAVAPIPE, { angular: true, chunkClasses: 48 });
  const stages = (logits: boolean) => dispatches(layout, logits).map((d) => d.stage);
  assert.deepStrictEqual(stages(false), [
    "targets",
    "targets",
    "forward",
    "forward",
    "row",
    "column",
    "gradFeatures",
    "gradFeatures",
    "reduceFeatures",
    "gradWeights",
    "gradWeights",
  ]);
  assert.ok(stages(true).includes("logits"));
  const linear = planLayout(shape(19, 37, 83), LAVAPIPE, { angular: false });
  assert.ok(!dispatches(linear, false).some((d) => d.stage === "targets"));
  // A successor head's targets come from the host: no targets pass.
  const host = planLayout(shape(19, 37, 83), LAVAPIPE, { angular: true, hostTargets: true });
  assert.ok(host.hostTargets);
  assert.ok(!dispatches(host, false).some((d) => d.stage === "targets"));
  // Sub-center ArcFace: S and W by rows (C·K = 84), the logits by class (28).
  const sub = planLayout(shape(19, 37, 84), LAVAPIPE, {
    angular: true,
    hostTargets: true,
    subCenters: 3,
  });
  assert.equal(sub.bytes.scores, 4 * sub.Np * sub.Cp);
  assert.equal(sub.logitsBytes, 4 * 19 * 28);
  assert.deepStrictEqual(dispatches(sub, true).find((d) => d.stage === "logits")!.groups, [1, 19]);
});

Deno.test("layout: each limit is named with the sizes that pass it", () => {
  const cases: [GpuLimits, [number, number, number], boolean, RegExp][] = [
    [
      LAVAPIPE,
      [128, 512, 1_048_000],
      false,
      /the N×C score buffer \(128 × 1,048,000 floats\) take 536,576,000 bytes \(511\.7 MiB\), past this adapter's maxStorageBufferBindingSize of 134,217,728 bytes/,
    ],
    [
      LAVAPIPE,
      [16, 512, 1_048_600],
      false,
      /the read-back of 2,147,565,696 bytes \(2048\.1 MiB: losses, ∂features 16 × 512, ∂weights 1,048,600 × 512\) is past this adapter's maxBufferSize of 2,147,483,647 bytes/,
    ],
    [
      { ...LAVAPIPE, maxComputeWorkgroupsPerDimension: 100 },
      [200, 8, 10],
      false,
      /the row pass needs 200 workgroups along one dimension \(N = 200, C = 10, D = 8\), past this adapter's maxComputeWorkgroupsPerDimension of 100/,
    ],
    [
      { ...LAVAPIPE, maxStorageBufferBindingSize: 2 ** 40, maxBufferSize: 2 ** 45 },
      [1, 4, 6_000_000],
      false,
      /the row pass would loop 70,354 times per invocation \(N = 1, C = 6,000,000, D = 4\), past the 65,535 that lavapipe runs/,
    ],
    [
      LAVAPIPE,
      [16, 512, 1_040_000],
      true,
      /the read-back of 2,196,512,896 bytes \(2094\.8 MiB: .*, logits 16 × 1,040,000\) is past/,
    ],
  ];
  for (const [limits, [N, D, C], logits, message] of cases) {
    const layout = planLayout(shape(N, D, C), limits, { angular: true });
    const problem = layoutProblem(layout, limits, logits);
    assert.match(problem ?? "no problem", message);
    if (logits) assert.equal(layoutProblem(layout, limits, false), undefined);
  }
});

Deno.test("layout: no dispatch of a valid layout loops past lavapipe's limit", () => {
  for (const [N, D, C] of [[65_535, 4, 16], [8, 128, 100_000], [2, 60_000, 40]]) {
    const layout = planLayout(shape(N, D, C), LAVAPIPE, { angular: true });
    if (layoutProblem(layout, LAVAPIPE, false)) continue;
    for (const d of dispatches(layout, true)) {
      assert.ok(d.loops <= MAX_LOOP_ITERATIONS, `${d.stage} at ${N}×${D}×${C}: ${d.loops}`);
    }
  }
});

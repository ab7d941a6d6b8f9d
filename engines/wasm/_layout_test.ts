import assert from "node:assert";
import { arcFaceHead, lSoftmaxHead } from "../../mod.ts";
import * as L from "./assembly/layout.ts";
import { CONTROL, PARAMS, wasmLayout } from "./_layout.ts";

Deno.test("wasmLayout: padded sizes, threads at most one per tile", () => {
  const layout = wasmLayout("test", arcFaceHead(), { samples: 11, dims: 37, classes: 29 }, {
    tile: 8,
    threads: 16,
  });
  assert.deepStrictEqual(
    [layout.Np, layout.Dp, layout.Cp, layout.tile, layout.threads],
    [16, 40, 32, 8, 4],
  );
  assert.equal(layout.thread.length, 4);
});

Deno.test("wasmLayout: arrays 64-byte aligned, disjoint, inside the memory", () => {
  const layout = wasmLayout("test", lSoftmaxHead(), { samples: 5, dims: 9, classes: 130 }, {
    tile: 64,
    threads: 2,
  });
  const { Np, Dp, Cp, offsets: o } = layout;
  const bytes: Record<string, number> = {
    xpack: Np * Dp * 4,
    xpackk: Np * Dp * 4,
    w: Cp * Dp * 4,
    gw: Cp * Dp * 4,
    cos: Cp * Np * 4,
    labels: Np * 4,
    a: Np * 4,
    zy: Np * 8,
    weight: Np * 4,
    bias: Cp * 4,
    nw: Cp * 4,
    invcw: Cp * 4,
    gb: Cp * 4,
    stats: Np * 16,
    thr: Np * 4,
  };
  const spans = Object.entries(o).map(([name, at]) => [at, at + bytes[name], name] as const);
  for (const t of layout.thread) {
    spans.push([t.sumx, t.sumx + Np * 8, "sumx"], [t.grada, t.grada + Np * 8, "grada"]);
    spans.push([t.gx, t.gx + Np * Dp * 8, "gx"]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  assert.ok(spans[0][0] >= PARAMS + L.PARAM_SLOTS * 4 && CONTROL + 8 <= PARAMS);
  for (const [at, , name] of spans) assert.equal(at % 8, 0, `${name} at ${at}`);
  for (const [at, , name] of Object.entries(o).map(([n, a]) => [a, 0, n] as const)) {
    assert.equal(at % 64, 0, `${name} at ${at}`);
  }
  for (let k = 1; k < spans.length; k++) {
    assert.ok(spans[k][0] >= spans[k - 1][1], `${spans[k - 1][2]} overlaps ${spans[k][2]}`);
  }
  assert.ok(spans.at(-1)![1] <= layout.pages * 65536);
});

Deno.test("wasmLayout: the parameter slots hold the sizes, kinds and offsets", () => {
  const layout = wasmLayout("test", lSoftmaxHead(), { samples: 3, dims: 4, classes: 5 }, {
    tile: 4,
    threads: 1,
  });
  const slots = new Map(layout.slots);
  assert.equal(slots.get(L.SLOT_N), 3);
  assert.equal(slots.get(L.SLOT_C), 5);
  assert.equal(slots.get(L.SLOT_CP), 8);
  assert.equal(slots.get(L.SLOT_ANGULAR), 1);
  assert.equal(slots.get(L.SLOT_RADIUS), 2, "lSoftmax: normProduct");
  assert.equal(slots.get(L.SLOT_W), layout.offsets.w);
  assert.equal(slots.get(L.SLOT_THREADS), 1);
  const linear = wasmLayout("test", { name: "softmax", logits: "linear" }, {
    samples: 3,
    dims: 4,
    classes: 5,
  }, { tile: 4, threads: 1 });
  assert.equal(new Map(linear.slots).get(L.SLOT_ANGULAR), 0);
  // The non-targets' step: plain, a clamp (AdaFace), hard negatives (CurricularFace).
  assert.equal(slots.get(L.SLOT_MODE), L.MODE_PLAIN);
  const shape = { samples: 3, dims: 4, classes: 5 };
  const clamped = wasmLayout("test", arcFaceHead(), shape, {
    tile: 4,
    threads: 1,
    clamp: [-0.9, 0.9],
  });
  assert.equal(new Map(clamped.slots).get(L.SLOT_MODE), L.MODE_CLAMP);
  const hard = wasmLayout("test", arcFaceHead(), shape, { tile: 4, threads: 1, hard: true });
  assert.equal(new Map(hard.slots).get(L.SLOT_MODE), L.MODE_HARD);
  assert.equal(new Map(hard.slots).get(L.SLOT_THR), hard.offsets.thr);
});

Deno.test("wasmLayout: refuses heads past WebAssembly's 4 GiB", () => {
  assert.throws(
    () =>
      wasmLayout("here", arcFaceHead(), { samples: 128, dims: 4096, classes: 200_000 }, {
        tile: 64,
        threads: 2,
      }),
    /here: this head needs 6\.\d GiB, more than WebAssembly's 4 GiB/,
  );
});

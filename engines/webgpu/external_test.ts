// engine-webgpu on a caller's device and buffers (prepareExternalHead / createExternalHead), against
// the float64 reference: one buffer or shards of W, one chunk or several, every catalog head, the
// reductions; a label out of range makes the loss NaN; dispose frees the head's buffers.
import assert from "node:assert";
import { HEAD_CATALOG, type HeadInput, type HeadSpec, marginSoftmaxLoss } from "../../mod.ts";
import type { Reduction } from "../../losses/types.ts";
import { closeness } from "../../testing/assert_close.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import {
  createExternalHead,
  type ExternalHead,
  prepareExternalHead,
  webgpuEngine,
  type WebgpuEngineOptions,
} from "./engine.ts";
import { liveBufferCount } from "./_runtime.ts";

const availability = await webgpuEngine.availability();
const skip = availability.available ? "" : availability.reason;
const gpuTest = (name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
  Deno.test({ name: `engine-webgpu external: ${name}`, ignore: skip !== "", fn });

/** A device of the test's own, standing for tfjs's. */
async function device(): Promise<GPUDevice> {
  const adapter = (await navigator.gpu.requestAdapter())!;
  return await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
    },
  });
}

const U = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

function buffer(
  gpu: GPUDevice,
  data: Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer> | number,
): GPUBuffer {
  const bytes = typeof data === "number" ? data : data.byteLength;
  const made = gpu.createBuffer({ size: Math.max(16, bytes), usage: U() });
  if (typeof data !== "number") gpu.queue.writeBuffer(made, 0, data);
  return made;
}

async function read(gpu: GPUDevice, from: GPUBuffer, floats: number): Promise<Float32Array> {
  const staging = gpu.createBuffer({
    size: Math.max(16, 4 * floats),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = gpu.createCommandEncoder();
  encoder.copyBufferToBuffer(from, 0, staging, 0, 4 * floats);
  gpu.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return out;
}

/** One run of `head` on `input`, W in shards of `rows` (one buffer when omitted); read back. */
async function runExternal(
  gpu: GPUDevice,
  prepared: ExternalHead,
  head: HeadSpec,
  input: HeadInput,
  options: { rows?: number[]; reduction?: Reduction } = {},
) {
  const { rows: N, cols: D } = input.features, C = input.weights.rows;
  const w = Float32Array.from(input.weights.data);
  const sizes = options.rows ?? [C];
  let at = 0;
  const shards = sizes.map((rows) => {
    const part = { buffer: buffer(gpu, w.slice(at * D, (at + rows) * D)), rows };
    at += rows;
    return part;
  });
  const grads = sizes.map((rows) => buffer(gpu, 4 * rows * D));
  const io = {
    features: buffer(gpu, Float32Array.from(input.features.data)),
    weights: options.rows ? shards : shards[0].buffer,
    labels: buffer(gpu, Int32Array.from(input.labels)),
    loss: buffer(gpu, 4),
    gradFeatures: buffer(gpu, 4 * N * D),
    gradWeights: options.rows ? grads : grads[0],
  };
  prepared.run(head, io, options.reduction);
  const loss = (await read(gpu, io.loss, 1))[0];
  const gradFeatures = await read(gpu, io.gradFeatures, N * D);
  const parts = await Promise.all(grads.map((g, k) => read(gpu, g, sizes[k] * D)));
  const gradWeights = new Float32Array(C * D);
  at = 0;
  for (const part of parts) {
    gradWeights.set(part.subarray(0, part.length), at);
    at += part.length;
  }
  for (const b of [io.features, io.labels, io.loss, io.gradFeatures, ...grads]) b.destroy();
  for (const s of shards) s.buffer.destroy();
  return { loss, gradFeatures, gradWeights };
}

function assertReference(
  found: Awaited<ReturnType<typeof runExternal>>,
  head: HeadSpec,
  input: HeadInput,
  reduction: Reduction = "mean",
  what = head.name,
) {
  const expected = marginSoftmaxLoss(input, head, { reduction });
  const rtol = 1e-4;
  assert.ok(Math.abs(found.loss - expected.loss) <= rtol * Math.abs(expected.loss), what);
  const gx = closeness(found.gradFeatures, expected.gradFeatures.data).relError;
  const gw = closeness(found.gradWeights, expected.gradWeights.data).relError;
  assert.ok(gx <= rtol && gw <= rtol, `${what}: ∂x ${gx}, ∂W ${gw}`);
}

gpuTest("every catalog head, W in one buffer, agrees with the reference", async () => {
  const gpu = await device();
  const input = randomHeadInput({ N: 9, D: 7, C: 23 }, 4);
  for (const entry of HEAD_CATALOG) {
    const head = entry.head();
    const prepared = await prepareExternalHead(gpu, head, { samples: 9, dims: 7, classes: 23 });
    for (const reduction of ["mean", "sum"] as const) {
      assertReference(
        await runExternal(gpu, prepared, head, input, { reduction }),
        head,
        input,
        reduction,
      );
    }
    prepared.dispose();
  }
  gpu.destroy();
});

gpuTest(
  "W in shards, in several chunks (segments of both), agrees with the reference",
  async () => {
    const gpu = await device();
    const input = randomHeadInput({ N: 20, D: 13, C: 70 }, 8);
    const shape = { samples: 20, dims: 13, classes: 70 };
    const options: WebgpuEngineOptions = { chunkClasses: 32, sliceClasses: 16 };
    for (const head of [HEAD_CATALOG[0].head(), HEAD_CATALOG.at(-2)!.head()]) {
      const chunked = createExternalHead(gpu, head, shape, options);
      const whole = createExternalHead(gpu, head, shape);
      for (const rows of [undefined, [70], [5, 30, 1, 34], [33, 37]]) {
        const what = `${head.name}, shards ${rows ?? "none"}`;
        assertReference(
          await runExternal(gpu, chunked, head, input, { rows }),
          head,
          input,
          "mean",
          `${what}, chunks of 32`,
        );
        assertReference(
          await runExternal(gpu, whole, head, input, { rows }),
          head,
          input,
          "mean",
          what,
        );
      }
      chunked.dispose();
      whole.dispose();
    }
    gpu.destroy();
  },
);

gpuTest(
  "a head's numbers change from run to run; a label out of range makes the loss NaN",
  async () => {
    const gpu = await device();
    const input = randomHeadInput({ N: 6, D: 5, C: 8 }, 2);
    const make = HEAD_CATALOG.find((e) => e.name === "sphereFace")!.head;
    const prepared = createExternalHead(gpu, make({ lambda: 100 }), {
      samples: 6,
      dims: 5,
      classes: 8,
    });
    for (const lambda of [100, 3, 0]) {
      const head = make({ lambda });
      assertReference(await runExternal(gpu, prepared, head, input), head, input);
    }
    const bad = { ...input, labels: [...Array.from(input.labels).slice(0, 5), 8] };
    assert.ok(Number.isNaN((await runExternal(gpu, prepared, make(), bad)).loss));
    prepared.dispose();
    gpu.destroy();
  },
);

gpuTest(
  "buffers too small or shards that do not add up to C are clear errors; dispose frees",
  async () => {
    const gpu = await device();
    const before = liveBufferCount();
    const head = HEAD_CATALOG[0].head();
    const prepared = createExternalHead(gpu, head, { samples: 4, dims: 3, classes: 5 });
    assert.ok(liveBufferCount() > before);
    const io = {
      features: buffer(gpu, 48),
      weights: buffer(gpu, 60),
      labels: buffer(gpu, 16),
      loss: buffer(gpu, 4),
      gradFeatures: buffer(gpu, 48),
      gradWeights: buffer(gpu, 60),
    };
    assert.throws(
      () => prepared.run(head, { ...io, features: buffer(gpu, 16) }),
      /^RangeError: webgpu external run: buffers\.features must be a GPUBuffer of at least 48 bytes, got 16 bytes$/,
    );
    assert.throws(
      () =>
        prepared.run(head, {
          ...io,
          weights: [{ buffer: io.weights, rows: 4 }],
          gradWeights: [io.gradWeights],
        }),
      /the weights' shards must hold C = 5 rows in all, with one ∂weights buffer each; got 4 rows/,
    );
    prepared.dispose();
    prepared.dispose();
    assert.equal(liveBufferCount(), before);
    assert.throws(() => prepared.run(head, io), /the head was disposed/);
    gpu.destroy();
  },
);

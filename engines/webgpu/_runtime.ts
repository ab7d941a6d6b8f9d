// The WebGPU side: one device per process with its compiled pipelines, a prepared head's buffers,
// its program (pipelines and bind groups of every dispatch), the upload, one submission and its
// read-back, and disposal. WebGPU globals (GPUBufferUsage…) are read here only when called, never
// at module load, so runtimes without WebGPU still import the library.
import type { HeadSpec } from "../../losses/head_spec.ts";
import { dispatches, type GpuLimits, type Layout, type Passes, ROW_STATS } from "./_layout.ts";
import { type BufferName, type Shader, stageShader } from "./_shaders.ts";
import type { Staged } from "./_stage.ts";
import { UNIFORM_BYTES } from "./_uniforms.ts";

/** A compiled shader: its pipeline and bind group layout. */
export interface Compiled {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** The device shared by every prepared head, with its pipelines (lavapipe compiles in ~50 ms). */
export interface Gpu {
  device: GPUDevice;
  limits: GpuLimits;
  pipelines: Map<string, Compiled>;
  /** Set once {@linkcode releaseWebgpuDevice} destroyed it or it was lost. */
  released: boolean;
}

let shared: Promise<Gpu> | undefined;
let liveBuffers = 0;

/** Requests an adapter; undefined when this runtime has none. */
export async function requestAdapter(): Promise<GPUAdapter | undefined> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) return undefined;
  return (await navigator.gpu.requestAdapter()) ?? undefined;
}

async function openDevice(where: string): Promise<Gpu> {
  const adapter = await requestAdapter();
  if (!adapter) throw new Error(`${where}: no WebGPU adapter (navigator.gpu.requestAdapter())`);
  const { maxStorageBufferBindingSize, maxBufferSize, maxComputeWorkgroupsPerDimension } =
    adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize,
      maxBufferSize,
      maxComputeWorkgroupsPerDimension,
    },
  });
  const gpu: Gpu = {
    device,
    limits: { maxStorageBufferBindingSize, maxBufferSize, maxComputeWorkgroupsPerDimension },
    pipelines: new Map(),
    released: false,
  };
  device.lost.then(() => {
    gpu.released = true;
    if (shared && gpu.device === device) shared = undefined;
  });
  return gpu;
}

/** The shared device, opened on first use. */
export function sharedDevice(where: string): Promise<Gpu> {
  const opening = shared ?? openDevice(where);
  shared = opening;
  opening.catch(() => {
    if (shared === opening) shared = undefined;
  });
  return opening;
}

/**
 * Destroys the WebGPU engine's shared device and its compiled pipelines; the next prepared head
 * opens a new one. Heads prepared before stop working: their runs throw.
 */
export async function releaseWebgpuDevice(): Promise<void> {
  const current = shared;
  shared = undefined;
  const gpu = await current?.catch(() => undefined);
  if (gpu) {
    gpu.released = true;
    gpu.device.destroy();
  }
}

/** GPU buffers created by prepared heads and not yet destroyed (for tests). */
export function liveBufferCount(): number {
  return liveBuffers;
}

/** The buffers of one prepared head. */
export interface HeadBuffers {
  named: Partial<Record<BufferName, GPUBuffer>>;
  chunks: { uniform: GPUBuffer; w: GPUBuffer; gw: GPUBuffer }[];
  read: GPUBuffer;
  /** The read-back buffer of runs with logits, made by the first such run. */
  readWithLogits?: GPUBuffer;
  /** The read-back buffer of forward-only runs (the losses' rows), made by the first one. */
  readRows?: GPUBuffer;
  all: GPUBuffer[];
}

/** Creates a buffer of at least `bytes` (a multiple of 4, ≥ 16), counted and listed in `all`. */
export function makeBuffer(gpu: Gpu, all: GPUBuffer[], bytes: number, usage: number): GPUBuffer {
  const buffer = gpu.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage });
  all.push(buffer);
  liveBuffers++;
  return buffer;
}

/** Creates every buffer of a run without the logits. */
export function createHeadBuffers(gpu: Gpu, layout: Layout): HeadBuffers {
  const U = GPUBufferUsage;
  const { N, Np, Cp, Dp, bytes } = layout;
  const all: GPUBuffer[] = [];
  const make = (size: number, usage: number) => makeBuffer(gpu, all, size, usage);
  const input = U.STORAGE | U.COPY_DST, output = U.STORAGE | U.COPY_SRC;
  const named: HeadBuffers["named"] = {
    x: make(bytes.x, input),
    labels: make(4 * Np, input),
    bias: make(4 * Cp, input),
    nx: make(4 * Np, input),
    nw: make(4 * Cp, input),
    scores: make(bytes.scores, U.STORAGE),
    stats: make(4 * ROW_STATS * Np, U.STORAGE),
    halves: make(8 * Np, U.STORAGE),
    wFactor: make(8 * Cp, U.STORAGE),
    partials: make(bytes.partials, U.STORAGE),
    rows: make(8 * N, output),
    gx: make(bytes.gradFeatures, output),
    gradBias: make(4 * Cp, output),
    // A successor head's f(c_iy), from the host.
    ...(layout.hostTargets ? { targets: make(4 * Np, input) } : {}),
    // CurricularFace's thresholds of the hard negatives, from the host.
    ...(layout.hard ? { thresholds: make(4 * Np, input) } : {}),
  };
  const chunks = layout.chunks.map((c) => ({
    uniform: make(UNIFORM_BYTES, U.UNIFORM | U.COPY_DST),
    w: make(4 * c.cCp * Dp, input),
    gw: make(4 * c.cC * layout.D, output),
  }));
  const read = make(layout.readBytes, U.MAP_READ | U.COPY_DST);
  return { named, chunks, read, all };
}

/** Adds the logits buffer and a read-back buffer with room for them. */
export function addLogitsBuffers(gpu: Gpu, layout: Layout, buffers: HeadBuffers): void {
  const U = GPUBufferUsage;
  buffers.named.logits ??= makeBuffer(gpu, buffers.all, layout.logitsBytes, U.STORAGE | U.COPY_SRC);
  buffers.readWithLogits ??= makeBuffer(
    gpu,
    buffers.all,
    layout.readBytes + layout.logitsBytes,
    U.MAP_READ | U.COPY_DST,
  );
}

/** Destroys a head's buffers; idempotent. */
export function destroyHeadBuffers(buffers: Pick<HeadBuffers, "all">): void {
  for (const buffer of buffers.all.splice(0)) {
    buffer.destroy();
    liveBuffers--;
  }
}

/** The pipeline of `shader` on the device, compiled once (cached by its code). */
export function compile(gpu: Gpu, shader: Shader, label: string): Compiled {
  const cached = gpu.pipelines.get(shader.code);
  if (cached) return cached;
  const { device } = gpu;
  const visibility = GPUShaderStage.COMPUTE;
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility, buffer: { type: "uniform" } },
      ...shader.bindings.map((b, k): GPUBindGroupLayoutEntry => ({
        binding: k + 1,
        visibility,
        buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
      })),
    ],
  });
  const pipeline = device.createComputePipeline({
    label,
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: {
      module: device.createShaderModule({ label, code: shader.code }),
      entryPoint: "main",
    },
  });
  const compiled = { pipeline, layout };
  gpu.pipelines.set(shader.code, compiled);
  return compiled;
}

/** One dispatch, ready to encode. */
export interface Step {
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  groups: number[];
}

/** The dispatches of a run, ready to encode, and what its read-back copies. */
export interface Program {
  steps: Step[];
  copies: { src: GPUBuffer; bytes: number }[];
  read: GPUBuffer;
}

/** Compiles (or reuses) the pipelines of every dispatch and binds the head's buffers. */
export function buildProgram(
  gpu: Gpu,
  head: HeadSpec,
  layout: Layout,
  buffers: HeadBuffers,
  logits: boolean,
  passes: Passes = "both",
): Program {
  const steps = bindSteps(gpu, head, layout, buffers, logits, passes);
  if (passes === "forward") {
    // The losses alone: the rows part, into a read-back buffer of its own size.
    const bytes = 8 * layout.N;
    const usage = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
    buffers.readRows ??= makeBuffer(gpu, buffers.all, bytes, usage);
    return { steps, copies: [{ src: buffers.named.rows!, bytes }], read: buffers.readRows };
  }
  const source = { rows: "rows", gradFeatures: "gx", gradBias: "gradBias" } as const;
  let chunk = 0;
  const copies = layout.read.map((part) => ({
    src: part.name === "gradWeights"
      ? buffers.chunks[chunk++].gw
      : buffers.named[source[part.name as keyof typeof source]]!,
    bytes: part.bytes,
  }));
  if (logits) copies.push({ src: buffers.named.logits!, bytes: layout.logitsBytes });
  const read = logits ? buffers.readWithLogits! : buffers.read;
  return { steps, copies, read };
}

/** The pipelines of every dispatch of a run (compiled or reused), bound to `buffers`. */
export function bindSteps(
  gpu: Gpu,
  head: HeadSpec,
  layout: Layout,
  buffers: Pick<HeadBuffers, "named" | "chunks">,
  logits: boolean,
  passes: Passes = "both",
): Step[] {
  return dispatches(layout, logits, passes).map((d) => {
    const shader = stageShader(d.stage, head, layout);
    const compiled = compile(gpu, shader, `engine-webgpu ${d.stage} (${head.name})`);
    const chunk = buffers.chunks[d.chunk ?? 0];
    const resolve = (name: BufferName): GPUBuffer => {
      const buffer = name === "w" || name === "gw" ? chunk[name] : buffers.named[name];
      if (!buffer) throw new Error(`engine-webgpu: no buffer "${name}" for the ${d.stage} pass`);
      return buffer;
    };
    const group = gpu.device.createBindGroup({
      layout: compiled.layout,
      entries: [chunk.uniform, ...shader.bindings.map((b) => resolve(b.name))].map((buffer, k) => ({
        binding: k,
        resource: { buffer },
      })),
    });
    return { pipeline: compiled.pipeline, group, groups: d.groups };
  });
}

/**
 * Pops the `scopes` error scopes pushed last, at once (the scope stack is the device's, shared by
 * every head: nothing may push or pop in between), and throws their errors as one message.
 */
function popErrors(gpu: Gpu, scopes: number, what: string): Promise<void> {
  const pops = Array.from({ length: scopes }, () => gpu.device.popErrorScope());
  return Promise.all(pops).then((found) => {
    const errors = found.filter((e) => e !== null).map((e) => e!.message);
    if (errors.length) throw new Error(`engine-webgpu: ${what} failed: ${errors.join("; ")}`);
  });
}

/**
 * Runs the synchronous `work` inside out-of-memory and validation error scopes, popped before
 * anything else can push one; rejects with their errors, named `what`.
 */
export async function scoped<T>(gpu: Gpu, what: string, work: () => T): Promise<T> {
  gpu.device.pushErrorScope("out-of-memory");
  gpu.device.pushErrorScope("validation");
  let errors: Promise<void> | undefined;
  try {
    const result = work();
    errors = popErrors(gpu, 2, what);
    await errors;
    return result;
  } finally {
    if (!errors) popErrors(gpu, 2, what).catch(() => {});
  }
}

/** Writes each chunk's uniforms (a run on the inputs already uploaded needs only these). */
export function uploadUniforms(gpu: Gpu, buffers: HeadBuffers, uniforms: ArrayBuffer[]): void {
  buffers.chunks.forEach((c, k) => gpu.device.queue.writeBuffer(c.uniform, 0, uniforms[k]));
}

/** Queues the writes of a run's inputs and of each chunk's uniforms. */
export function upload(
  gpu: Gpu,
  layout: Layout,
  buffers: HeadBuffers,
  staged: Staged,
  uniforms: ArrayBuffer[],
): void {
  const queue = gpu.device.queue;
  const { named } = buffers;
  uploadUniforms(gpu, buffers, uniforms);
  layout.chunks.forEach((c, k) => {
    queue.writeBuffer(buffers.chunks[k].w, 0, staged.w, c.c0 * layout.Dp, c.cCp * layout.Dp);
  });
  queue.writeBuffer(named.x!, 0, staged.x);
  queue.writeBuffer(named.nx!, 0, staged.nx);
  queue.writeBuffer(named.nw!, 0, staged.nw);
  queue.writeBuffer(named.labels!, 0, staged.labels);
  queue.writeBuffer(named.bias!, 0, staged.bias);
  if (named.targets) queue.writeBuffer(named.targets, 0, staged.targets);
  if (named.thresholds) queue.writeBuffer(named.thresholds, 0, staged.thresholds);
}

/**
 * Encodes and submits every dispatch and the read-back copies in one submission, then maps the
 * read-back buffer and hands its contents to `consume` before unmapping.
 */
export async function submitAndRead<T>(
  gpu: Gpu,
  program: Program,
  consume: (range: ArrayBuffer) => T,
): Promise<T> {
  const { device } = gpu;
  let mapped: Promise<undefined> | undefined;
  const bytes = await scoped(gpu, "the run", () => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const { pipeline, group, groups } of program.steps) {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
    }
    pass.end();
    let offset = 0;
    for (const { src, bytes } of program.copies) {
      encoder.copyBufferToBuffer(src, 0, program.read, offset, bytes);
      offset += bytes;
    }
    device.queue.submit([encoder.finish()]);
    mapped = program.read.mapAsync(GPUMapMode.READ);
    return offset;
  }).catch(async (error) => {
    await mapped?.then(() => program.read.unmap(), () => {});
    throw error;
  });
  await mapped;
  try {
    return consume(program.read.getMappedRange(0, Math.max(16, bytes)));
  } finally {
    program.read.unmap();
  }
}

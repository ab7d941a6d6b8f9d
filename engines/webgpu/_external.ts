// engine-webgpu on someone else's device and buffers (TensorFlow.js's, train/tfjs_loss.ts): the
// inputs are GPU buffers holding N×D features, C×D weights (float32, unpadded, row-major) and N
// int32 labels; the outputs are GPU buffers that receive the reduced loss, ∂features and ∂weights.
// Nothing is read back: a run encodes and submits its passes on the device's queue and returns.
//
// The engine's own passes (_shaders.ts, bound by _runtime.ts's bindSteps) run unchanged. Two
// passes of this file stand in for the host's halves of a run: a staging pass per matrix that
// copies rows into the engine's padded buffers, normalised for an angular head (the norm scaled by
// the row's largest magnitude, so no float32 square overflows), with each row's norm; and a loss
// pass that finishes softplus(m − z_y + log R) per sample (log1p without cancellation, as
// _finish.ts does in float64) and reduces it. The weights are staged by segments (the rows of one
// engine chunk within one of the caller's shards), each bound from an offset rounded down to 256
// bytes, so W may exceed the binding limit, and may come in shards (W larger than one binding,
// which tfjs-webgpu's own ops on W need it to be).
//
// What a read-back would have checked is left to the values: a label outside [0, C) makes the loss
// NaN, and so does a non-finite input.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import { NORM_EPS } from "../../losses/checks.ts";
import type { HeadShape } from "../engine.ts";
import {
  dispatches,
  type GpuLimits,
  type Layout,
  layoutProblem,
  planLayout,
  ROW_STATS,
} from "./_layout.ts";
import { type Binding, type BufferName, type Shader, stageShader } from "./_shaders.ts";
import {
  headUniforms,
  packUniforms,
  structText,
  UNIFORM_BYTES,
  UNIFORM_FIELDS,
  type UniformField,
} from "./_uniforms.ts";
import {
  bindSteps,
  compile,
  destroyHeadBuffers,
  type Gpu,
  type HeadBuffers,
  makeBuffer,
  scoped,
  type Step,
} from "./_runtime.ts";

/** Consecutive rows of the weights in a buffer of their own. */
export interface WeightShard {
  /** rows×D float32, row-major. */
  buffer: GPUBuffer;
  /** How many rows of W it holds. */
  rows: number;
}

/** The buffers of one external run: three inputs, three outputs, all on the head's device. */
export interface ExternalBuffers {
  /** N×D float32 features, row-major (read). */
  features: GPUBuffer;
  /**
   * C×D float32 weights, row-major (read): one buffer, or shards of consecutive rows whose rows
   * add up to C (W larger than a storage binding may be, which tfjs's own ops on W need).
   */
  weights: GPUBuffer | WeightShard[];
  /** N int32 labels in [0, C) (read). */
  labels: GPUBuffer;
  /** Receives the reduced loss: one float32 (the mean, or the sum for "sum" and "none"). */
  loss: GPUBuffer;
  /** Receives ∂loss/∂features, N×D float32. */
  gradFeatures: GPUBuffer;
  /** Receives ∂loss/∂weights, C×D float32: one buffer, or one per shard of `weights`. */
  gradWeights: GPUBuffer | GPUBuffer[];
  /**
   * A head prepared with `targets` (a successor head's target terms computed outside): each
   * sample's target value f(c_iy), N float32 (read); the target logit is s·f(c_iy).
   */
  targets?: GPUBuffer;
  /** With `targets`: receives ∂loss/∂z_iy for each sample, N float32 (the targets' part is the caller's). */
  targetGrads?: GPUBuffer;
}

/** A head prepared on a device that the caller owns, run on the caller's GPU buffers. */
export interface ExternalHead {
  /** The sizes every run's buffers must have. */
  readonly shape: Readonly<HeadShape>;
  /**
   * Encodes one forward and backward pass of `head` (whose numbers, and even structure, may
   * change from run to run) on `buffers` and submits it to the device's queue. Returns at once:
   * work the caller submits afterwards sees the results.
   */
  run(head: HeadSpec, buffers: ExternalBuffers, reduction?: Reduction): void;
  /** Destroys the head's own buffers; idempotent. */
  dispose(): void;
}

const PREPARE = "prepareExternalHead (webgpu)";
const RUN = "webgpu external run";
/** Binding offsets of storage buffers are rounded down to this (the largest alignment allowed). */
const OFFSET_ALIGN = 256;
const LINE = 64;
const LOSS_THREADS = 256;

const gpus = new WeakMap<GPUDevice, Gpu>();

/** The engine's view of a device it did not open, with its own pipeline cache. */
function gpuOf(device: GPUDevice): Gpu {
  let gpu = gpus.get(device);
  if (!gpu) {
    const { maxStorageBufferBindingSize, maxBufferSize, maxComputeWorkgroupsPerDimension } =
      device.limits;
    gpu = {
      device,
      limits: { maxStorageBufferBindingSize, maxBufferSize, maxComputeWorkgroupsPerDimension },
      pipelines: new Map(),
      released: false,
    };
    const mine = gpu;
    device.lost.then(() => void (mine.released = true));
    gpus.set(device, gpu);
  }
  return gpu;
}

const PRELUDE = `${structText("Params", UNIFORM_FIELDS)}
@group(0) @binding(0) var<uniform> p: Params;`;

function declare(bindings: Binding[]): string {
  return bindings.map((b, k) =>
    `@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`
  ).join("\n");
}

const bind = (name: BufferName, access: Binding["access"], type: Binding["type"] = "f32") => ({
  name,
  type,
  access,
});

/** The staging pass's uniforms: one segment of rows. */
const STAGE_FIELDS = [
  { name: "rows", type: "u32" },
  { name: "D", type: "u32" },
  { name: "Dp", type: "u32" },
  /** The segment's first float in the bound source, its first row in `out`, in `norms`. */
  { name: "src0", type: "u32" },
  { name: "dst0", type: "u32" },
  { name: "norm0", type: "u32" },
] as const satisfies readonly UniformField[];
/** Uniform binding offsets are multiples of this (the largest alignment allowed). */
const UNIFORM_STRIDE = 256;

/**
 * Copies `rows` rows of `src` (unpadded, row-major, from float src0 of the binding) into `out`
 * (from row dst0, rows Dp apart), divided by their norm for an angular head, and stores each
 * row's norm in `norms` (from norm0): the features, or one segment of the weights.
 */
export function stagingShader(angular: boolean): Shader {
  const bindings = [bind("src", "read"), bind("out", "read_write"), bind("norms", "read_write")];
  const code = `${structText("Stage", STAGE_FIELDS)}
@group(0) @binding(0) var<uniform> s: Stage;
${declare(bindings)}
@compute @workgroup_size(${LINE})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= s.rows) { return; }
  let first = s.src0 + r * s.D;
  var top = 0.0;
  for (var k = 0u; k < s.D; k++) { top = max(top, abs(src[first + k])); }
  let inverse = select(0.0, 1.0 / top, top > 1e-30);
  var sum = 0.0;
  for (var k = 0u; k < s.D; k++) { let v = src[first + k] * inverse; sum += v * v; }
  let norm = top * sqrt(sum);
  let scale = ${angular ? `1.0 / max(norm, ${NORM_EPS})` : "1.0"};
  let to = (s.dst0 + r) * s.Dp;
  for (var k = 0u; k < s.D; k++) { out[to + k] = src[first + k] * scale; }
  norms[s.norm0 + r] = norm;
}`;
  return { code, bindings };
}

/**
 * The reduced loss from the row pass's (m − z_y, R) of each sample: Σ_i softplus(m − z_y + log R),
 * times the reduction's weight; NaN where a label is outside [0, C).
 */
export function lossShader(): Shader {
  const bindings = [
    bind("rows", "read", "vec2f"),
    bind("labels", "read", "u32"),
    bind("loss", "read_write"),
  ];
  const code = `${PRELUDE}
${declare(bindings)}
var<workgroup> red: array<f32, ${LOSS_THREADS}>;
// log(1 + u) without cancellation (Goldberg); p.one keeps the compiler from folding w − 1 into u.
fn log1pAccurate(u: f32) -> f32 {
  let w = (1.0 + u) * p.one;
  if (w == 1.0) { return u; }
  return log(w) * u / (w - 1.0);
}
fn sampleLoss(d: f32, R: f32) -> f32 {
  if (R == 0.0) { return 0.0; }
  let t = d + log(R);
  if (t > 0.0) { return t + log1pAccurate(exp(-t)); }
  return log1pAccurate(exp(t));
}
@compute @workgroup_size(${LOSS_THREADS})
fn main(@builtin(local_invocation_index) t: u32) {
  var acc = vec2f(0.0);
  var bad = false;
  for (var i = t; i < p.N; i += ${LOSS_THREADS}u) {
    bad = bad || labels[i] >= p.C;
    let v = sampleLoss(rows[i].x, rows[i].y) - acc.y;
    let s = (acc.x + v) * p.one;
    acc = vec2f(s, (s - acc.x) - v);
  }
  red[t] = select(acc.x - acc.y, bitcast<f32>(0x7fc00000u | (p.N & 0u)), bad);
  workgroupBarrier();
  for (var s = ${LOSS_THREADS / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) { loss[0] = red[0] * p.weight; }
}`;
  return { code, bindings };
}

/** Each sample's ∂loss/∂z_iy, from the row pass's stats, into the caller's N floats. */
export function targetGradShader(): Shader {
  const bindings = [bind("stats", "read"), bind("out", "read_write")];
  const code = `${PRELUDE}
${declare(bindings)}
@compute @workgroup_size(${LINE})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.N) { return; }
  out[i] = stats[i * ${ROW_STATS}u + 6u];
}`;
  return { code, bindings };
}

/** The head's own buffers: everything but the caller's inputs, labels and outputs. */
interface OwnBuffers {
  named: HeadBuffers["named"];
  /**
   * Each chunk's uniforms and staged W; its own ∂W only where ∂W cannot go straight into the
   * caller's buffer (several chunks or shards), made by the first run that needs it.
   */
  chunks: { uniform: GPUBuffer; w: GPUBuffer; gw?: GPUBuffer }[];
  /** The staging passes' uniforms, one segment per 256 bytes (grown as a run needs). */
  stage?: GPUBuffer;
  all: GPUBuffer[];
}

function createOwnBuffers(gpu: Gpu, layout: Layout): OwnBuffers {
  const U = GPUBufferUsage;
  const { N, Np, Cp, bytes } = layout;
  const all: GPUBuffer[] = [];
  const make = (size: number, usage: number = U.STORAGE) => makeBuffer(gpu, all, size, usage);
  const named: HeadBuffers["named"] = {
    x: make(bytes.x),
    bias: make(4 * Cp),
    nx: make(4 * Np),
    nw: make(4 * Cp),
    scores: make(bytes.scores),
    stats: make(4 * ROW_STATS * Np),
    halves: make(8 * Np),
    wFactor: make(8 * Cp),
    partials: make(bytes.partials),
    rows: make(8 * N),
    gradBias: make(4 * Cp),
  };
  const chunks = layout.chunks.map((c) => ({
    uniform: make(UNIFORM_BYTES, U.UNIFORM | U.COPY_DST),
    w: make(4 * c.cCp * layout.Dp),
  }));
  return { named, chunks, all };
}

/** Sizes that tests force small, as engine-webgpu's options do. */
export interface ExternalOptions {
  /** Most classes per chunk of W (a multiple of 16); the binding limit decides otherwise. */
  chunkClasses?: number;
  /** Classes per slice of the ∂X sum (a multiple of 16). */
  sliceClasses?: number;
  /**
   * Each run's target values come from `buffers.targets` and ∂loss/∂z_iy goes to
   * `buffers.targetGrads`: a successor head (its scale-s head without margin runs here) whose
   * target terms the caller computes, and differentiates, itself. @default {false}
   */
  targets?: boolean;
  /**
   * Sub-center ArcFace's K, with `targets`: W's C rows are C/K classes of K adjacent rows, each
   * class's cosine the largest of them. @default {0}
   */
  subCenters?: number;
}

/** Plans the head's layout with room for the weights' binding offsets; throws past a limit. */
function planExternal(
  gpu: Gpu,
  head: HeadSpec,
  shape: HeadShape,
  options: ExternalOptions,
): Layout {
  const limits: GpuLimits = {
    ...gpu.limits,
    maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize - OFFSET_ALIGN,
  };
  const layout = planLayout(shape, limits, {
    angular: head.logits === "angular",
    chunkClasses: options.chunkClasses,
    sliceClasses: options.sliceClasses,
    hostTargets: options.targets === true && head.logits === "angular",
    subCenters: options.targets ? options.subCenters ?? 0 : 0,
  });
  const K = layout.subCenters;
  if (K && !(Number.isInteger(K) && K >= 1 && shape.classes % K === 0)) {
    throw new RangeError(
      `${PREPARE}: subCenters must be an integer ≥ 1 dividing W's ${shape.classes} rows, got ${K}`,
    );
  }
  if (options.targets && !layout.hostTargets) {
    throw new RangeError(
      `${PREPARE}: targets from a buffer need an angular head, got ${head.name}`,
    );
  }
  const problem = layoutProblem(layout, limits, false);
  if (problem) throw new RangeError(`${PREPARE}: ${problem}`);
  if (3 * shape.dims > 65535) {
    throw new RangeError(
      `${PREPARE}: the staging pass would loop ${3 * shape.dims} times per row (D = ` +
        `${shape.dims}), past the 65,535 that lavapipe runs`,
    );
  }
  return layout;
}

/** Compiles every pipeline a run of `head` needs, so that errors surface here. */
function compileAll(gpu: Gpu, head: HeadSpec, layout: Layout): void {
  const angular = head.logits === "angular";
  for (const d of dispatches(layout, false)) {
    compile(gpu, stageShader(d.stage, head, layout), `engine-webgpu ${d.stage} (${head.name})`);
  }
  compile(gpu, stagingShader(angular), "engine-webgpu staging");
  compile(gpu, lossShader(), "engine-webgpu loss");
  if (layout.hostTargets) compile(gpu, targetGradShader(), "engine-webgpu target gradients");
}

/**
 * Prepares `head` for `shape` on `device`, a device the caller opened (tfjs-webgpu's): plans the
 * layout against the device's limits, creates the head's own buffers and compiles its pipelines,
 * inside error scopes (a failure rejects).
 */
export async function prepareExternal(
  device: GPUDevice,
  head: HeadSpec,
  shape: HeadShape,
  options: ExternalOptions = {},
): Promise<ExternalHead> {
  const gpu = gpuOf(device);
  let made: ExternalHead | undefined;
  try {
    return await scoped(
      gpu,
      "preparing the head",
      () => made = createExternal(device, head, shape, options),
    );
  } catch (error) {
    made?.dispose();
    gpu.pipelines.clear(); // one of them may be invalid
    throw error;
  }
}

/**
 * {@linkcode prepareExternal} at once, for a caller that cannot await: a device error (out of
 * memory, say) is not seen here but reported by the device as uncaptured.
 */
export function createExternal(
  device: GPUDevice,
  head: HeadSpec,
  shape: HeadShape,
  options: ExternalOptions = {},
): ExternalHead {
  const gpu = gpuOf(device);
  const layout = planExternal(gpu, head, shape, options);
  const buffers = createOwnBuffers(gpu, layout);
  compileAll(gpu, head, layout);
  let disposed = false;
  return {
    shape: Object.freeze({ ...shape }),
    run(next, io, reduction = "mean") {
      if (disposed) throw new Error(`${RUN}: the head was disposed`);
      if (gpu.released) throw new Error(`${RUN}: the device was lost or destroyed`);
      if ((next.logits === "angular") !== layout.angular) {
        throw new RangeError(
          `${RUN}: this head was prepared for a ${layout.angular ? "angular" : "linear"} head, ` +
            `got a ${next.logits} one; prepare another`,
        );
      }
      encodeRun(gpu, next, layout, buffers, io, reduction);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      destroyHeadBuffers(buffers);
    },
  };
}

/** The caller's weights and ∂weights as shards, checked against the head's sizes. */
interface Shards {
  weights: WeightShard[];
  grads: GPUBuffer[];
}

function tooSmall(what: string, bytes: number, buffer: GPUBuffer | undefined): RangeError {
  return new RangeError(
    `${RUN}: ${what} must be a GPUBuffer of at least ${bytes} bytes, got ${
      buffer?.size === undefined ? String(buffer) : `${buffer.size} bytes`
    }`,
  );
}

/** Refuses buffers smaller than the head's sizes need (a wrong buffer would be read past its end). */
function checkBuffers(layout: Layout, io: ExternalBuffers): Shards {
  const { N, C, D } = layout;
  const need: [keyof ExternalBuffers, number][] = [
    ["features", 4 * N * D],
    ["labels", 4 * N],
    ["loss", 4],
    ["gradFeatures", 4 * N * D],
  ];
  if (layout.hostTargets) need.push(["targets", 4 * N], ["targetGrads", 4 * N]);
  for (const [name, bytes] of need) {
    const buffer = io[name] as GPUBuffer;
    if (!(buffer?.size >= bytes)) throw tooSmall(`buffers.${name}`, bytes, buffer);
  }
  const weights = Array.isArray(io.weights) ? io.weights : [{ buffer: io.weights, rows: C }];
  const grads = Array.isArray(io.gradWeights) ? io.gradWeights : [io.gradWeights];
  const rows = weights.reduce((sum, shard) => sum + shard.rows, 0);
  if (rows !== C || grads.length !== weights.length) {
    throw new RangeError(
      `${RUN}: the weights' shards must hold C = ${C} rows in all, with one ∂weights buffer ` +
        `each; got ${rows} rows in ${weights.length} shards and ${grads.length} ∂weights buffers`,
    );
  }
  weights.forEach((shard, k) => {
    const bytes = 4 * shard.rows * D;
    if (!(shard.buffer?.size >= bytes)) throw tooSmall(`weights shard ${k}`, bytes, shard.buffer);
    if (!(grads[k]?.size >= bytes)) throw tooSmall(`∂weights buffer ${k}`, bytes, grads[k]);
  });
  return { weights, grads };
}

/** The rows of one engine chunk within one of the caller's shards. */
interface Segment {
  chunk: number;
  shard: number;
  rows: number;
  /** Its first row in the shard, in the chunk, and in W. */
  inShard: number;
  inChunk: number;
  row: number;
}

/** The segments of W: every non-empty overlap of an engine chunk and a shard, in row order. */
function segmentsOf(layout: Layout, shards: WeightShard[]): Segment[] {
  const out: Segment[] = [];
  let s0 = 0;
  shards.forEach((shard, s) => {
    layout.chunks.forEach((c, k) => {
      const from = Math.max(s0, c.c0), to = Math.min(s0 + shard.rows, c.c0 + c.cC);
      if (from < to) {
        out.push({
          chunk: k,
          shard: s,
          rows: to - from,
          inShard: from - s0,
          inChunk: from - c.c0,
          row: from,
        });
      }
    });
    s0 += shard.rows;
  });
  return out;
}

/** A bind group of `shader`'s pipeline: the uniform, then each binding's resource. */
function group(
  gpu: Gpu,
  shader: Shader,
  label: string,
  resources: GPUBufferBinding[],
): Step["group"] {
  const { layout } = compile(gpu, shader, label);
  return gpu.device.createBindGroup({
    layout,
    entries: resources.map((resource, binding) => ({ binding, resource })),
  });
}

/** The staging uniforms of a run (the features, then each segment), written to `own.stage`. */
function writeStaging(gpu: Gpu, layout: Layout, own: OwnBuffers, segments: Segment[]): number[] {
  const { N, D, Dp } = layout;
  const slots = [
    { rows: N, D, Dp, src0: 0, dst0: 0, norm0: 0 },
    ...segments.map((g) => ({
      rows: g.rows,
      D,
      Dp,
      src0: ((4 * g.inShard * D) % OFFSET_ALIGN) / 4,
      dst0: g.inChunk,
      norm0: g.row,
    })),
  ];
  const bytes = slots.length * UNIFORM_STRIDE;
  if (!own.stage || own.stage.size < bytes) {
    own.stage = makeBuffer(gpu, own.all, bytes, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  }
  const data = new Uint8Array(bytes);
  slots.forEach((slot, k) =>
    data.set(new Uint8Array(packUniforms(STAGE_FIELDS, slot)), k * UNIFORM_STRIDE)
  );
  gpu.device.queue.writeBuffer(own.stage, 0, data);
  return slots.map((_, k) => k * UNIFORM_STRIDE);
}

/** The staging passes: the features, then each segment of the weights. */
function stagingSteps(
  gpu: Gpu,
  angular: boolean,
  layout: Layout,
  own: OwnBuffers,
  io: { features: GPUBuffer; shards: WeightShard[]; segments: Segment[] },
): Step[] {
  const { named, chunks } = own, D = layout.D;
  const offsets = writeStaging(gpu, layout, own, io.segments);
  const shader = stagingShader(angular), label = "engine-webgpu staging";
  const pipeline = compile(gpu, shader, label).pipeline;
  const uniform = (k: number) => ({ buffer: own.stage!, offset: offsets[k], size: UNIFORM_STRIDE });
  const steps: Step[] = [{
    pipeline,
    group: group(gpu, shader, label, [
      uniform(0),
      { buffer: io.features, size: 4 * layout.N * D },
      { buffer: named.x! },
      { buffer: named.nx! },
    ]),
    groups: [Math.ceil(layout.N / LINE)],
  }];
  io.segments.forEach((g, k) => {
    const first = 4 * g.inShard * D, offset = first - (first % OFFSET_ALIGN);
    steps.push({
      pipeline,
      group: group(gpu, shader, label, [
        uniform(k + 1),
        { buffer: io.shards[g.shard].buffer, offset, size: first + 4 * g.rows * D - offset },
        { buffer: chunks[g.chunk].w },
        { buffer: named.nw! },
      ]),
      groups: [Math.ceil(g.rows / LINE)],
    });
  });
  return steps;
}

/** Where each chunk writes ∂W: the caller's buffer when W is one chunk in one shard, else its own. */
function gradTargets(gpu: Gpu, layout: Layout, own: OwnBuffers, shards: Shards): GPUBuffer[] {
  if (layout.chunks.length === 1 && shards.grads.length === 1) return [shards.grads[0]];
  return own.chunks.map((c, k) =>
    c.gw ??= makeBuffer(
      gpu,
      own.all,
      4 * layout.chunks[k].cC * layout.D,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    )
  );
}

/** The pass that copies each sample's ∂loss/∂z_iy out of the row pass's stats. */
function targetGradStep(gpu: Gpu, layout: Layout, own: OwnBuffers, out: GPUBuffer): Step {
  const shader = targetGradShader(), label = "engine-webgpu target gradients";
  return {
    pipeline: compile(gpu, shader, label).pipeline,
    group: group(gpu, shader, label, [
      { buffer: own.chunks[0].uniform },
      { buffer: own.named.stats! },
      { buffer: out, size: 4 * layout.N },
    ]),
    groups: [Math.ceil(layout.N / LINE)],
  };
}

/** Encodes and submits one run: staging, the engine's passes, the loss, ∂W's copies. */
function encodeRun(
  gpu: Gpu,
  head: HeadSpec,
  layout: Layout,
  own: OwnBuffers,
  io: ExternalBuffers,
  reduction: Reduction,
): void {
  const { device } = gpu, D = layout.D;
  const shards = checkBuffers(layout, io), segments = segmentsOf(layout, shards.weights);
  layout.chunks.forEach((c, k) => {
    device.queue.writeBuffer(own.chunks[k].uniform, 0, headUniforms(head, layout, c, reduction));
  });
  const targets = gradTargets(gpu, layout, own, shards);
  const bound = {
    named: {
      ...own.named,
      labels: io.labels,
      gx: io.gradFeatures,
      ...(layout.hostTargets ? { targets: io.targets } : {}),
    },
    chunks: own.chunks.map((c, k) => ({ ...c, gw: targets[k] })),
  };
  const staging = { features: io.features, shards: shards.weights, segments };
  const loss = lossShader();
  const steps = [
    ...stagingSteps(gpu, head.logits === "angular", layout, own, staging),
    ...bindSteps(gpu, head, layout, bound, false),
    {
      pipeline: compile(gpu, loss, "engine-webgpu loss").pipeline,
      group: group(gpu, loss, "engine-webgpu loss", [
        { buffer: own.chunks[0].uniform },
        { buffer: own.named.rows! },
        { buffer: io.labels, size: 4 * layout.N },
        { buffer: io.loss, size: 4 },
      ]),
      groups: [1],
    },
    ...(layout.hostTargets ? [targetGradStep(gpu, layout, own, io.targetGrads!)] : []),
  ];
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const { pipeline, group, groups } of steps) {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
  }
  pass.end();
  if (targets[0] !== shards.grads[0]) {
    for (const g of segments) {
      const bytes = 4 * g.rows * D;
      encoder.copyBufferToBuffer(
        targets[g.chunk],
        4 * g.inChunk * D,
        shards.grads[g.shard],
        4 * g.inShard * D,
        bytes,
      );
    }
  }
  device.queue.submit([encoder.finish()]);
}

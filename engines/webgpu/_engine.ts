// The fused WebGPU engine: uploads a head's inputs once, then each run is one submission of seven
// dispatches (norms, target half-angles, cosines, per-sample softmax, per-class gradient, the two
// gradient products) and one read-back.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { HeadInput, Reduction } from "../../losses/types.ts";
import { reductionOption, viewHeadInput } from "../../losses/_validate.ts";
import {
  columnShader,
  D_ALIGN,
  forwardShader,
  gradFeaturesShader,
  gradWeightsShader,
  LINE_THREADS,
  logitsShader,
  normsShader,
  PARAMS_FLOATS,
  ROW_ALIGN,
  ROW_STATS,
  rowShader,
  shaderKey,
  SHAPES,
  targetsShader,
  TILE,
} from "./_shaders.ts";

/** What one run returns, in float32. */
export interface EngineResult {
  loss: number;
  losses: Float32Array;
  gradFeatures: Float32Array;
  gradWeights: Float32Array;
  gradBias?: Float32Array;
  /** The N×C logits, when asked for. */
  logits?: Float32Array;
}

/** A head ready to run on the GPU. */
export interface PreparedEngine {
  run(): Promise<EngineResult>;
  /** Milliseconds of each dispatch run alone (after a run), for tuning. */
  profile(): Promise<{ stage: string; ms: number; cpuMs?: number }[]>;
  dispose(): void;
}

const WHERE = "engine-webgpu";

/** CPU time of this process in ms where the runtime tells it (lavapipe runs on these threads). */
function cpuMs(): number | undefined {
  const usage = (globalThis as { Deno?: { cpuUsage?: () => { user: number } } }).Deno?.cpuUsage?.();
  return usage ? usage.user / 1000 : undefined;
}

/** Binding kinds of a shader, in binding order after the uniform at 0: r = read, w = read_write. */
type Access = "r" | "w";

function layoutOf(device: GPUDevice, access: Access[]): GPUBindGroupLayout {
  return device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
      ...access.map((a, k) => ({
        binding: k + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: a === "r" ? "read-only-storage" as const : "storage" as const },
      })),
    ],
  });
}

const ceil = (n: number, m: number) => Math.ceil(n / m) * m;

/** Requests an adapter; undefined when this runtime has none. */
export async function requestAdapter(): Promise<GPUAdapter | undefined> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) return undefined;
  return (await navigator.gpu.requestAdapter()) ?? undefined;
}

/** One device per process, with its compiled pipelines: lavapipe compiles a shader in ~50 ms. */
interface Shared {
  device: GPUDevice;
  limits: { storage: number; groups: number };
  pipelines: Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>;
}
let shared: Promise<Shared> | undefined;

function sharedDevice(): Promise<Shared> {
  shared ??= (async () => {
    const adapter = await requestAdapter();
    if (!adapter) throw new Error(`${WHERE}: no WebGPU adapter (navigator.gpu.requestAdapter())`);
    const { maxStorageBufferBindingSize, maxBufferSize } = adapter.limits;
    const device = await adapter.requestDevice({
      requiredLimits: { maxStorageBufferBindingSize, maxBufferSize },
    });
    const entry: Shared = {
      device,
      limits: {
        storage: maxStorageBufferBindingSize,
        groups: adapter.limits.maxComputeWorkgroupsPerDimension,
      },
      pipelines: new Map(),
    };
    device.lost.then(() => {
      if (shared && entry.device === device) shared = undefined;
    });
    return entry;
  })();
  shared.catch(() => (shared = undefined));
  return shared;
}

/**
 * Destroys the engine's shared device and its compiled pipelines; the next run makes new ones.
 * Heads prepared before stop working.
 */
export async function releaseWebgpuDevice(): Promise<void> {
  const current = shared;
  shared = undefined;
  if (current) (await current.catch(() => undefined))?.device.destroy();
}

/** Errors found while creating pipelines or running: turned into one thrown message. */
async function checkErrors(device: GPUDevice, scopes: number, what: string) {
  const errors: string[] = [];
  for (let k = 0; k < scopes; k++) {
    const error = await device.popErrorScope();
    if (error) errors.push(error.message);
  }
  if (errors.length) throw new Error(`${WHERE}: ${what} failed: ${errors.join("; ")}`);
}

/**
 * Validates and uploads a head's inputs and builds its pipelines. Inputs are converted to float32
 * and padded (rows of X and W to multiples of 4, D to a multiple of 16) in new arrays: the caller's
 * arrays are never touched.
 */
export async function prepareEngine(
  head: HeadSpec,
  input: HeadInput,
  options: {
    reduction: Reduction;
    where?: string;
    logits?: boolean;
    /** Most classes per chunk of W (tests force small chunks); the binding limit decides otherwise. */
    chunkClasses?: number;
  },
): Promise<PreparedEngine> {
  const where = options.where ?? WHERE;
  const reduction = reductionOption(where, options.reduction);
  // Read here, not at module load: runtimes without WebGPU have no GPUBufferUsage global, and
  // mod.ts (through headLoss) must still import there.
  const U = GPUBufferUsage;
  if (head.logits === "angular" && head.margin.kind === "psi") {
    const m = head.margin.margin;
    if (!Number.isInteger(m) || m < 0) {
      throw new RangeError(`${where}: a psi margin must be a non-negative integer, got ${m}`);
    }
  }
  // The caller's arrays themselves (read only): they are converted to float32 below anyway.
  const { N, D, C, x, w, labels, bias } = viewHeadInput(where, input, {
    classes: "weights",
    allowBias: head.logits === "linear",
  });
  const { FI, FJ, GI, GQ, WJ, WQ } = SHAPES;
  const rowAlign = Math.max(ROW_ALIGN, FI, FJ, GI, WJ);
  const Np = ceil(N, rowAlign), Cp = ceil(C, rowAlign);
  const Dp = ceil(D, Math.max(D_ALIGN, 4 * GQ, 4 * WQ));
  const { device, limits, pipelines: cache } = await sharedDevice();
  // W and ∂W are split into chunks of classes that each fit one binding; S and X must fit whole.
  const chunk = Math.min(
    Cp,
    Math.floor(Math.min(options.chunkClasses ?? Infinity, limits.storage / (4 * Dp)) / rowAlign) *
      rowAlign,
  );
  const largest = 4 * Math.max(Np * Cp, Np * Dp, rowAlign * Dp);
  if (largest > limits.storage || chunk < rowAlign) {
    throw new RangeError(
      `${where}: a ${largest}-byte buffer exceeds this adapter's storage binding limit of ${limits.storage} bytes`,
    );
  }
  // The row pass runs one workgroup per sample.
  if (N > limits.groups) {
    throw new RangeError(
      `${where}: N = ${N} samples exceed this adapter's ${limits.groups} workgroups per dispatch`,
    );
  }
  const buffers: GPUBuffer[] = [];
  const buffer = (size: number, usage: number, data?: ArrayBufferView) => {
    const b = device.createBuffer({ size: Math.max(16, ceil(size, 4)), usage });
    buffers.push(b);
    if (data) device.queue.writeBuffer(b, 0, data as BufferSource);
    return b;
  };
  const padded = (src: Float64Array | Float32Array, rows: number, rowsP: number) => {
    const out = new Float32Array(rowsP * Dp);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < D; k++) out[r * Dp + k] = src[r * D + k];
    }
    return out;
  };
  const xs = padded(x, N, Np);
  const ws = padded(w, C, Cp);
  for (const [name, a] of [["features", xs], ["weights", ws]] as const) {
    for (let k = 0; k < a.length; k++) {
      if (!Number.isFinite(a[k])) {
        throw new RangeError(`${where}: ${name} overflow float32 at ${k}`);
      }
    }
  }
  const params = new ArrayBuffer(PARAMS_FLOATS * 4);
  const pu = new Uint32Array(params), pf = new Float32Array(params);
  pu.set([N, C, D, Np, Cp, Dp, 0, 0]);
  pf[8] = 1;
  pf[9] = reduction === "mean" ? 1 / N : 1;
  if (head.logits === "angular") {
    if (head.radius.kind === "scale") pf[8] = head.radius.scale;
    const m = head.margin;
    if (m.kind === "angular") {
      pf.set([m.m1, m.m2, m.m3, Math.cos(m.m2), Math.sin(m.m2)], 10);
      pf[16] = Math.cos(Math.PI - m.m2);
      pf[17] = Math.sin(Math.PI - m.m2) * m.m2 + m.m3;
    } else if (m.kind === "psi") {
      pu[6] = m.margin;
      pf[15] = m.lambda;
    }
  }
  const labelData = new Uint32Array(Np);
  labelData.set(labels);
  const biasData = new Float32Array(Cp);
  if (bias) biasData.set(bias);

  const uniformOf = (c0: number, cC: number, cCp: number) => {
    pu.set([c0], 7);
    pu.set([cC, cCp, c0 === 0 ? 1 : 0, 0], 20);
    return buffer(params.byteLength, U.UNIFORM | U.COPY_DST, new Uint8Array(params.slice(0)));
  };
  const uniform = uniformOf(0, C, Cp);
  const X = buffer(xs.byteLength, U.STORAGE | U.COPY_DST, xs);
  const chunks: { cC: number; cCp: number; uniform: GPUBuffer; W: GPUBuffer; gw: GPUBuffer }[] = [];
  for (let c0 = 0; c0 < Cp; c0 += chunk) {
    const cCp = Math.min(chunk, Cp - c0), cC = Math.min(cCp, C - c0);
    chunks.push({
      cC,
      cCp,
      uniform: c0 === 0 && cCp === Cp ? uniform : uniformOf(c0, cC, cCp),
      W: buffer(4 * cCp * Dp, U.STORAGE | U.COPY_DST, ws.subarray(c0 * Dp, (c0 + cCp) * Dp)),
      gw: buffer(4 * cC * D, U.STORAGE | U.COPY_SRC),
    });
  }
  const L = buffer(labelData.byteLength, U.STORAGE | U.COPY_DST, labelData);
  const B = buffer(biasData.byteLength, U.STORAGE | U.COPY_DST, biasData);
  const nx = buffer(4 * Np, U.STORAGE);
  const nw = buffer(4 * Cp, U.STORAGE);
  const S = buffer(4 * Np * Cp, U.STORAGE);
  const stats = buffer(4 * ROW_STATS * Np, U.STORAGE);
  const halves = buffer(8 * Np, U.STORAGE);
  const losses = buffer(4 * Np, U.STORAGE | U.COPY_SRC);
  const wFactor = buffer(4 * Cp, U.STORAGE);
  const gradBias = buffer(4 * Cp, U.STORAGE | U.COPY_SRC);
  const gx = buffer(4 * N * D, U.STORAGE | U.COPY_SRC);
  const Z = options.logits ? buffer(4 * N * C, U.STORAGE | U.COPY_SRC) : undefined;
  const parts = [
    { src: losses, size: 4 * N },
    { src: gx, size: 4 * N * D },
    ...chunks.map((c) => ({ src: c.gw, size: 4 * c.cC * D })),
    ...(bias ? [{ src: gradBias, size: 4 * C }] : []),
    ...(Z ? [{ src: Z, size: 4 * N * C }] : []),
  ];
  const readSize = parts.reduce((s, q) => s + q.size, 0);
  const read = buffer(readSize, U.MAP_READ | U.COPY_DST);

  const D4 = Dp / 4;
  const angular = head.logits === "angular";
  type Stage = {
    name: string;
    code: string;
    access: Access[];
    bind: GPUBuffer[];
    groups: number[];
    uniform?: GPUBuffer;
  };
  const perChunk = (stage: (c: typeof chunks[number]) => Stage) =>
    chunks.map((c) => ({ ...stage(c), uniform: c.uniform }));
  const stages: Stage[] = [
    ...(angular
      ? perChunk((c) => ({
        name: "norms",
        code: normsShader(),
        access: ["r", "r", "w", "w"],
        bind: [X, c.W, nx, nw],
        groups: [Math.ceil((Np + c.cCp) / LINE_THREADS)],
      }))
      : []),
    ...(angular
      ? perChunk((c) => ({
        name: "targets",
        code: targetsShader(),
        access: ["r", "r", "r", "r", "r", "w"],
        bind: [X, c.W, L, nx, nw, halves],
        groups: [Math.ceil(N / LINE_THREADS)],
      }))
      : []),
    ...perChunk((c) => ({
      name: "forward",
      code: forwardShader(head),
      access: ["r", "r", "r", "r", "r", "w"],
      bind: [X, c.W, nx, nw, B, S],
      groups: [Math.ceil(Np / SHAPES.FI / TILE), Math.ceil(c.cCp / SHAPES.FJ / SHAPES.TY)],
    })),
    {
      name: "row",
      code: rowShader(head),
      access: ["r", "r", "r", "r", "w", "w", "r"],
      bind: [S, L, nx, nw, stats, losses, halves],
      groups: [N],
    },
    ...(Z
      ? [{
        name: "logits",
        code: logitsShader(head),
        access: ["r", "r", "r", "r", "r", "w"] as Access[],
        bind: [S, L, nx, nw, stats, Z],
        groups: [Math.ceil(C / LINE_THREADS), N],
      }]
      : []),
    {
      name: "column",
      code: columnShader(head),
      access: ["w", "r", "r", "r", "r", "w", "w"],
      bind: [S, L, nx, nw, stats, wFactor, gradBias],
      groups: [Math.ceil(Cp / LINE_THREADS)],
    },
    ...perChunk((c) => ({
      name: "gradFeatures",
      code: gradFeaturesShader(),
      access: ["r", "r", "r", "r", "w"],
      bind: [S, c.W, X, stats, gx],
      groups: [Math.ceil(Np / SHAPES.GI / TILE), Math.ceil(D4 / SHAPES.GQ / SHAPES.TY)],
    })),
    ...perChunk((c) => ({
      name: "gradWeights",
      code: gradWeightsShader(),
      access: ["r", "r", "r", "r", "w"],
      bind: [S, X, c.W, wFactor, c.gw],
      groups: [Math.ceil(c.cCp / SHAPES.WJ / TILE), Math.ceil(D4 / SHAPES.WQ / SHAPES.TY)],
    })),
  ];
  device.pushErrorScope("validation");
  const pipelines = stages.map((stage) => {
    let compiled = cache.get(stage.code);
    if (!compiled) {
      const layout = layoutOf(device, stage.access);
      const pipeline = device.createComputePipeline({
        label: `${WHERE} ${stage.name} ${shaderKey(head)}`,
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module: device.createShaderModule({ code: stage.code }), entryPoint: "main" },
      });
      compiled = { pipeline, layout };
      cache.set(stage.code, compiled);
    }
    const group = device.createBindGroup({
      layout: compiled.layout,
      entries: [stage.uniform ?? uniform, ...stage.bind].map((b, k) => ({
        binding: k,
        resource: { buffer: b },
      })),
    });
    return { pipeline: compiled.pipeline, group, groups: stage.groups };
  });
  try {
    await checkErrors(device, 1, "pipeline creation");
  } catch (error) {
    for (const b of buffers) b.destroy();
    for (const stage of stages) cache.delete(stage.code);
    throw error;
  }

  const weight = reduction === "mean" ? 1 / N : 1;
  const runOnce = async (): Promise<EngineResult> => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const { pipeline, group, groups } of pipelines) {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(groups[0], groups[1] ?? 1);
    }
    pass.end();
    let offset = 0;
    for (const part of parts) {
      encoder.copyBufferToBuffer(part.src, 0, read, offset, part.size);
      offset += part.size;
    }
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const range = read.getMappedRange();
    const out: Float32Array[] = [];
    offset = 0;
    for (const part of parts) {
      out.push(new Float32Array(range, offset, part.size / 4).slice());
      offset += part.size;
    }
    read.unmap();
    for (const data of out) {
      for (let k = 0; k < data.length; k++) {
        if (!Number.isFinite(data[k])) {
          throw new RangeError(
            `${where}: a result is not finite in float32 (inputs too large for this loss)`,
          );
        }
      }
    }
    let total = 0;
    for (const v of out[0]) total += v;
    const gwParts = out.slice(2, 2 + chunks.length);
    let gradWeights = gwParts[0];
    if (gwParts.length > 1) {
      gradWeights = new Float32Array(C * D);
      let at = 0;
      for (const part of gwParts) {
        gradWeights.set(part, at);
        at += part.length;
      }
    }
    const rest = out.slice(2 + chunks.length);
    const result: EngineResult = {
      loss: total * weight,
      losses: out[0],
      gradFeatures: out[1],
      gradWeights,
    };
    if (bias) result.gradBias = rest[0];
    if (Z) result.logits = rest[bias ? 1 : 0];
    return result;
  };
  // Runs share the read-back buffer, so a run waits for the one before it.
  let previous: Promise<unknown> = Promise.resolve();
  return {
    run(): Promise<EngineResult> {
      const next = previous.then(runOnce, runOnce);
      previous = next.catch(() => {});
      return next;
    },
    async profile() {
      const times = [];
      for (const [k, { pipeline, group, groups }] of pipelines.entries()) {
        const started = performance.now();
        const cpu = cpuMs();
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(groups[0], groups[1] ?? 1);
        pass.end();
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
        times.push({
          stage: stages[k].name,
          ms: performance.now() - started,
          cpuMs: cpu === undefined ? undefined : cpuMs()! - cpu,
        });
      }
      return times;
    },
    dispose() {
      for (const b of buffers) b.destroy();
    },
  };
}

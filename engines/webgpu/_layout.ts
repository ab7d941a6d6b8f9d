// The pure plan of a prepared head: sizes → padded sizes, chunks of W under the binding limit,
// slices of classes for ∂X, every buffer's size, every dispatch's workgroups and loop lengths, the
// read-back parts; and the check of all of them against the adapter's limits, before anything is
// allocated. No WebGPU here: the tests run it with made-up limits.
import type { HeadShape } from "../engine.ts";

/** Register blocks and workgroup shapes of the shaders (see _shaders.ts). */
export const SHAPES = {
  // Measured on lavapipe (min CPU time of 5, 128 × 512 × 10 000): 16×16 / 16×8 / 16×8 beat 8×8 by
  // ~25 %; lavapipe loads storage buffers lane by lane, so fewer loads per FMA win until register
  // spills and LLVM's compile time (32×32 does not finish in minutes) take over.
  /** S = X·Wᵀ: FI samples × FJ classes per invocation. */
  FI: 16,
  FJ: 16,
  /** ∂X = G·W: GI samples × GQ vec4 features. */
  GI: 16,
  GQ: 8,
  /** ∂W = Gᵀ·X: WJ classes × WQ vec4 features. */
  WJ: 16,
  WQ: 8,
  /** Invocations per matmul workgroup: TILE × TY. */
  TILE: 8,
  TY: 8,
  /** Invocations of the row pass (one workgroup per sample). */
  ROW_THREADS: 256,
  /** Invocations per workgroup of the elementwise passes. */
  LINE_THREADS: 64,
} as const;

/** Rows of X and W are padded to a multiple of this, so register blocks never run over. */
export const ROW_ALIGN = 16;
/** D is padded to a multiple of this, so register blocks of vec4 columns never run over. */
export const D_ALIGN = 32;
/** Float32 slots of per-sample statistics that the row pass leaves for later passes. */
export const ROW_STATS = 8;
/** Classes per slice of the ∂X product: each slice's partial sum is summed (compensated) after. */
export const SLICE_CLASSES = 1024;
/**
 * Mesa's llvmpipe (lavapipe) silently ends loops after 65 535 iterations in all per invocation
 * (LP_MAX_TGSI_LOOP_ITERATIONS), so every shader's loops stay under it.
 */
export const MAX_LOOP_ITERATIONS = 65535;

/** The adapter limits a layout must respect. */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
}

/** A run of W rows bound at once: classes [c0, c0 + cC), cCp with padding; its ∂X slices. */
export interface Chunk {
  c0: number;
  cC: number;
  cCp: number;
  /** The first ∂X slice of the chunk and how many it has. */
  slice0: number;
  slices: number;
}

/** One part of the read-back buffer, in bytes. */
export interface ReadPart {
  name: "rows" | "gradFeatures" | "gradWeights" | "gradBias" | "logits";
  bytes: number;
}

/** The passes of a run, in order. */
export type StageName =
  | "targets"
  | "forward"
  | "row"
  | "logits"
  | "column"
  | "gradFeatures"
  | "reduceFeatures"
  | "gradWeights";

/** One dispatch of a run: its workgroups and the loop iterations of each invocation in all. */
export interface Dispatch {
  stage: StageName;
  chunk?: number;
  groups: number[];
  loops: number;
}

/** The plan of one head and shape. */
export interface Layout {
  N: number;
  C: number;
  D: number;
  Np: number;
  Cp: number;
  Dp: number;
  /** Whether the head is angular (cosines; a targets pass) or linear (a bias). */
  angular: boolean;
  /**
   * Whether each sample's f(c_iy) comes from the host (a per-sample successor head,
   * engines/host/samples.ts) in a `targets` buffer, instead of the GPU's targets pass, and the
   * target's gradient through c_iy is left to the host.
   */
  hostTargets: boolean;
  /** The range the non-target cosines are clamped to (slope 0 outside it), where the head has one. */
  clamp?: readonly [number, number];
  /**
   * Whether the non-targets above each sample's threshold are CurricularFace's hard negatives
   * (thresholds in a `thresholds` buffer, t in the uniforms).
   */
  hard: boolean;
  /**
   * Sub-center ArcFace's K: C counts W's rows, C/K classes of K adjacent rows each, whose cosine is
   * the largest of them; 0 for every other head.
   */
  subCenters: number;
  /** Classes per ∂X slice, and slices in all. */
  slice: number;
  slices: number;
  chunks: Chunk[];
  /** Bytes of the storage buffers bound whole. */
  bytes: {
    x: number;
    scores: number;
    partials: number;
    gradFeatures: number;
    logits: number;
  };
  /** The read-back parts of a run without, and the extra part with, the logits. */
  read: ReadPart[];
  readBytes: number;
  logitsBytes: number;
}

const ceil = (n: number, m: number) => Math.ceil(n / m) * m;
const floor = (n: number, m: number) => Math.floor(n / m) * m;

/** Options of {@linkcode planLayout}; tests force small chunks and slices. */
export interface LayoutOptions {
  angular: boolean;
  /** Most classes per chunk of W; the binding limit decides otherwise. */
  chunkClasses?: number;
  /** Classes per ∂X slice. @default {SLICE_CLASSES} */
  sliceClasses?: number;
  /** See {@linkcode Layout.hostTargets}. @default {false} */
  hostTargets?: boolean;
  /** See {@linkcode Layout.clamp}. */
  clamp?: readonly [number, number];
  /** See {@linkcode Layout.hard}. @default {false} */
  hard?: boolean;
  /** See {@linkcode Layout.subCenters}. @default {0} */
  subCenters?: number;
}

/** Plans the buffers and dispatches of a head of `shape`; check it with {@linkcode layoutProblem}. */
export function planLayout(shape: HeadShape, limits: GpuLimits, options: LayoutOptions): Layout {
  const { samples: N, dims: D, classes: C } = shape;
  const { FI, FJ, GI, GQ, WJ, WQ } = SHAPES;
  const rowAlign = Math.max(ROW_ALIGN, FI, FJ, GI, WJ);
  const Np = ceil(N, rowAlign), Cp = ceil(C, rowAlign);
  const Dp = ceil(D, Math.max(D_ALIGN, 4 * GQ, 4 * WQ));
  const binding = limits.maxStorageBufferBindingSize;
  // W rows per chunk: one binding's worth; ∂X slices: as many as the partials' binding holds.
  const chunkRows = Math.max(
    rowAlign,
    floor(Math.min(options.chunkClasses ?? Infinity, binding / (4 * Dp), Cp), rowAlign),
  );
  const mostSlices = Math.max(1, Math.floor(binding / (4 * Np * Dp)));
  const slice = Math.min(
    chunkRows,
    Math.max(options.sliceClasses ?? SLICE_CLASSES, ceil(Math.ceil(Cp / mostSlices), rowAlign)),
  );
  // Slices never straddle two chunks; a single chunk may end in a shorter slice.
  const chunk = chunkRows >= Cp ? Cp : floor(chunkRows, slice);
  const chunks: Chunk[] = [];
  for (let c0 = 0; c0 < Cp; c0 += chunk) {
    const cCp = Math.min(chunk, Cp - c0);
    chunks.push({
      c0,
      cC: Math.min(cCp, C - c0),
      cCp,
      slice0: c0 / slice,
      slices: Math.ceil(cCp / slice),
    });
  }
  const slices = chunks.reduce((s, c) => s + c.slices, 0);
  const subCenters = options.subCenters ?? 0;
  const logitsBytes = 4 * N * (C / Math.max(subCenters, 1)); // per class
  const read: ReadPart[] = [
    { name: "rows", bytes: 8 * N },
    { name: "gradFeatures", bytes: 4 * N * D },
    ...chunks.map((c): ReadPart => ({ name: "gradWeights", bytes: 4 * c.cC * D })),
    ...(options.angular ? [] : [{ name: "gradBias", bytes: 4 * C } as ReadPart]),
  ];
  return {
    N,
    C,
    D,
    Np,
    Cp,
    Dp,
    angular: options.angular,
    hostTargets: options.hostTargets ?? false,
    ...(options.clamp ? { clamp: options.clamp } : {}),
    hard: options.hard ?? false,
    subCenters,
    slice,
    slices,
    chunks,
    bytes: {
      x: 4 * Np * Dp,
      scores: 4 * Np * Cp,
      partials: 4 * slices * Np * Dp,
      gradFeatures: 4 * N * D,
      logits: logitsBytes,
    },
    read,
    readBytes: read.reduce((s, p) => s + p.bytes, 0),
    logitsBytes,
  };
}

/** Every dispatch of a run, in order (the logits pass only when asked for). */
/**
 * Which dispatches a run makes: `"both"` passes; `"forward"`, the passes up to the row statistics
 * (the losses; the scores keep the cosines); `"afterForward"`, the row pass and the backward on the
 * scores a `"forward"` run left (the same input again, only the uniforms changed: AdaCos's second
 * run at its new scale).
 */
export type Passes = "both" | "forward" | "afterForward";

/** The stages of a forward-only run. */
const FORWARD_STAGES: readonly StageName[] = ["targets", "forward", "row"];

/** The dispatches of a run of `layout`, in order, as {@linkcode Passes} selects them. */
export function dispatches(layout: Layout, logits: boolean, passes: Passes = "both"): Dispatch[] {
  const all = allDispatches(layout, logits && passes !== "forward");
  if (passes === "both") return all;
  if (passes === "forward") return all.filter((d) => FORWARD_STAGES.includes(d.stage));
  return all.filter((d) => d.stage !== "targets" && d.stage !== "forward");
}

function allDispatches(layout: Layout, logits: boolean): Dispatch[] {
  const { N, C, D, Np, Dp, chunks, slice, slices } = layout;
  const { FI, FJ, GI, GQ, WJ, WQ, TILE, TY, ROW_THREADS, LINE_THREADS } = SHAPES;
  const D4 = Dp / 4, line = (n: number) => Math.ceil(n / LINE_THREADS);
  const perChunk = (stage: StageName, of: (c: Chunk) => Omit<Dispatch, "stage" | "chunk">) =>
    chunks.map((c, chunk): Dispatch => ({ stage, chunk, ...of(c) }));
  // The row pass: three loops over its share of the classes (a sub-center head's loop over each
  // class's K rows, twice more to claim its largest), five tree reductions of 8 steps.
  const K = Math.max(layout.subCenters, 1), classes = C / K;
  const perClass = layout.subCenters ? 3 + 4 * K : 3;
  const rowLoops = perClass * Math.ceil(classes / ROW_THREADS) + 5 * Math.log2(ROW_THREADS);
  return [
    ...(layout.angular && !layout.hostTargets
      ? perChunk("targets", () => ({ groups: [line(N)], loops: D4 }))
      : []),
    ...perChunk("forward", (c) => ({
      groups: [Math.ceil(Np / FI / TILE), Math.ceil(c.cCp / FJ / TY)],
      loops: D4,
    })),
    { stage: "row", groups: [N], loops: rowLoops },
    ...(logits ? [{ stage: "logits" as const, groups: [line(classes), N], loops: K }] : []),
    { stage: "column", groups: [line(C)], loops: N },
    ...perChunk("gradFeatures", (c) => ({
      groups: [Math.ceil(Np / GI / TILE), Math.ceil(D4 / GQ / TY), c.slices],
      loops: slice,
    })),
    { stage: "reduceFeatures", groups: [line(D), N], loops: slices },
    ...perChunk("gradWeights", (c) => ({
      groups: [Math.ceil(c.cCp / WJ / TILE), Math.ceil(D4 / WQ / TY)],
      loops: N,
    })),
  ];
}

const count = (n: number) => n.toLocaleString("en-US");
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * The first limit that a run of `layout` (with or without the logits) would pass, as a sentence
 * naming the limit, its value and the sizes that pass it; undefined when everything fits.
 */
export function layoutProblem(
  layout: Layout,
  limits: GpuLimits,
  logits: boolean,
): string | undefined {
  const { N, C, D, Np, Cp, Dp } = layout;
  const binding = limits.maxStorageBufferBindingSize;
  const classes = C / Math.max(layout.subCenters, 1);
  const bound: [string, number][] = [
    [`the N×C score buffer (${count(Np)} × ${count(Cp)} floats)`, layout.bytes.scores],
    [`the features (${count(Np)} × ${count(Dp)} floats)`, layout.bytes.x],
    [`one chunk of ${count(layout.slice)} weight rows (D padded to ${Dp})`, 4 * layout.slice * Dp],
    [
      `the ∂X partial sums (${layout.slices} slices × ${count(Np)} × ${count(Dp)} floats)`,
      layout.bytes.partials,
    ],
    [`∂features (${count(N)} × ${count(D)} floats)`, layout.bytes.gradFeatures],
    ...(logits
      ? [[`the logits (${count(N)} × ${count(classes)} floats)`, layout.logitsBytes]]
      : []),
  ] as [string, number][];
  for (const [what, bytes] of bound) {
    if (bytes > binding) {
      return `${what} take ${count(bytes)} bytes (${mib(bytes)}), past this adapter's ` +
        `maxStorageBufferBindingSize of ${count(binding)} bytes (${mib(binding)})`;
    }
  }
  const readBytes = layout.readBytes + (logits ? layout.logitsBytes : 0);
  if (readBytes > limits.maxBufferSize) {
    return `the read-back of ${count(readBytes)} bytes (${mib(readBytes)}: losses, ∂features ` +
      `${count(N)} × ${count(D)}, ∂weights ${count(C)} × ${count(D)}` +
      `${logits ? `, logits ${count(N)} × ${count(classes)}` : ""}) is past this adapter's ` +
      `maxBufferSize of ${count(limits.maxBufferSize)} bytes (${mib(limits.maxBufferSize)})`;
  }
  for (const d of dispatches(layout, logits)) {
    const most = Math.max(...d.groups);
    if (most > limits.maxComputeWorkgroupsPerDimension) {
      return `the ${d.stage} pass needs ${count(most)} workgroups along one dimension ` +
        `(N = ${count(N)}, C = ${count(C)}, D = ${count(D)}), past this adapter's ` +
        `maxComputeWorkgroupsPerDimension of ${count(limits.maxComputeWorkgroupsPerDimension)}`;
    }
    if (d.loops > MAX_LOOP_ITERATIONS) {
      return `the ${d.stage} pass would loop ${count(d.loops)} times per invocation ` +
        `(N = ${count(N)}, C = ${count(C)}, D = ${count(D)}), past the ` +
        `${count(MAX_LOOP_ITERATIONS)} that lavapipe runs`;
    }
  }
  return undefined;
}

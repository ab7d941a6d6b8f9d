// Where everything lives in a head's shared memory: sizes in, byte offsets and parameter slots out.
// Pure: no memory is touched here.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { HeadShape } from "../engine.ts";
import * as L from "./assembly/layout.ts";
import { subCenterTile } from "../host/samples.ts";

/** Where the barrier words live; AssemblyScript's static data ends well below. */
export const CONTROL = 32768;
/** Where the parameter block starts. */
export const PARAMS = 65536;
const PAGE = 65536;
const MAX_PAGES = 65536;

/** The shared arrays of a head, by name: byte offsets (see assembly/layout.ts for each). */
export interface Offsets {
  xpack: number;
  xpackk: number;
  w: number;
  gw: number;
  cos: number;
  labels: number;
  a: number;
  zy: number;
  weight: number;
  bias: number;
  nw: number;
  invcw: number;
  gb: number;
  stats: number;
  /** Np f32: CurricularFace's hard-negative thresholds. */
  thr: number;
}

/** One thread's private arrays that the host reads after a run: byte offsets. */
export interface ThreadOffsets {
  /** Np f64: Σ_j gc_ij·c_ij. */
  sumx: number;
  /** Np f64: the radius gradient Σ_j gz_ij·b_j·c_ij. */
  grada: number;
  /** Np×Dp f64: the partial Σ_j g_ij·w_j. */
  gx: number;
}

/** A head's memory layout. */
export interface WasmLayout {
  N: number;
  D: number;
  C: number;
  /** N padded to 8, D to 8, C to 4. */
  Np: number;
  Dp: number;
  Cp: number;
  /** Classes per tile, a multiple of 4. */
  tile: number;
  /** Threads: at most one per tile. */
  threads: number;
  offsets: Offsets;
  /** Each thread's arrays that the host reads. */
  thread: ThreadOffsets[];
  /** 64 KiB pages of the memory. */
  pages: number;
  /** The non-target cosines' clamp [lo, hi] in float32 (−∞ and +∞: none). */
  clamp: readonly [number, number];
  /** Sub-center ArcFace's K (C counts the C·K rows of W), 0 for every other head. */
  subCenters: number;
  /** Whether the kernels change the hard negatives (CurricularFace; thresholds and t per run). */
  hard: boolean;
  /** The parameter block: [slot, value] pairs. */
  slots: [number, number][];
}

const up = (n: number, k: number) => Math.ceil(n / k) * k;

/**
 * Lays out a head of `shape` for `threads` threads (fewer when there are fewer class tiles):
 * parameters, shared arrays, then one private region per thread, 64-byte aligned. Throws when the
 * memory would pass WebAssembly's 4 GiB. `clamp`: the range of the non-target cosines (none by
 * default); `subCenters`: sub-center ArcFace's K (0, the default, for every other head), the tile
 * then rounded up to a multiple of K, so that no class spans two tiles; `hard`: CurricularFace's
 * hard negatives (none by default).
 */
export function wasmLayout(
  where: string,
  head: HeadSpec,
  shape: HeadShape,
  options: {
    tile: number;
    threads: number;
    clamp?: readonly [number, number];
    subCenters?: number;
    hard?: boolean;
  },
): WasmLayout {
  const { samples: N, dims: D, classes: C } = shape, subCenters = options.subCenters ?? 0;
  const tile = subCenterTile(options.tile, subCenters);
  const Np = up(N, 8), Dp = up(D, 8), Cp = up(C, 4);
  const threads = Math.min(options.threads, Math.ceil(Cp / tile));
  let top = PARAMS + L.PARAM_SLOTS * 4;
  const alloc = (bytes: number) => {
    const at = up(top, 64);
    top = at + bytes;
    return at;
  };
  const offsets = sharedArrays(alloc, Np, Dp, Cp);
  const unit = Np * 4;
  const threadBytes = up((L.T_TILE + 2 * tile) * unit + Np * Dp * 8 + tile * Dp * 4, 64);
  const threadBase = alloc(threads * threadBytes);
  const pages = Math.ceil(top / PAGE);
  if (pages > MAX_PAGES) {
    throw new RangeError(
      `${where}: this head needs ${(top / 2 ** 30).toFixed(1)} GiB, more than WebAssembly's 4 GiB`,
    );
  }
  const thread = Array.from({ length: threads }, (_, t) => {
    const base = threadBase + t * threadBytes;
    return {
      sumx: base + L.T_SUMX * unit,
      grada: base + L.T_GRADA * unit,
      gx: base + (L.T_TILE + 2 * tile) * unit,
    };
  });
  const [lo, hi] = options.clamp ?? [-Infinity, Infinity];
  const clamp = [Math.fround(lo), Math.fround(hi)] as const;
  const hard = options.hard ?? false;
  const layout = {
    N,
    D,
    C,
    Np,
    Dp,
    Cp,
    tile,
    threads,
    offsets,
    thread,
    pages,
    clamp,
    subCenters,
    hard,
  };
  return { ...layout, slots: slotsOf(head, layout, threadBase, threadBytes) };
}

function sharedArrays(alloc: (bytes: number) => number, Np: number, Dp: number, Cp: number) {
  return {
    xpack: alloc(Np * Dp * 4),
    xpackk: alloc(Np * Dp * 4),
    w: alloc(Cp * Dp * 4),
    gw: alloc(Cp * Dp * 4),
    cos: alloc(Cp * Np * 4),
    labels: alloc(Np * 4),
    a: alloc(Np * 4),
    zy: alloc(Np * 8),
    weight: alloc(Np * 4),
    bias: alloc(Cp * 4),
    nw: alloc(Cp * 4),
    invcw: alloc(Cp * 4),
    gb: alloc(Cp * 4),
    stats: alloc(Np * 16),
    thr: alloc(Np * 4),
  };
}

/** The bits of a float32, as the i32 of a slot. */
const float32Bits = (v: number) => new Int32Array(Float32Array.of(v).buffer)[0];

/**
 * The parameter block: sizes, the head's kinds, the non-targets' step (hard negatives, a clamp or
 * neither), the arrays' offsets.
 */
function slotsOf(
  head: HeadSpec,
  l: Omit<WasmLayout, "slots">,
  threadBase: number,
  threadBytes: number,
): [number, number][] {
  const angular = head.logits === "angular";
  const radius = angular ? ["scale", "featureNorm", "normProduct"].indexOf(head.radius.kind) : 0;
  const o = l.offsets;
  const mode = l.hard ? L.MODE_HARD : Number.isFinite(l.clamp[0]) ? L.MODE_CLAMP : L.MODE_PLAIN;
  return [
    [L.SLOT_N, l.N],
    [L.SLOT_NP, l.Np],
    [L.SLOT_DP, l.Dp],
    [L.SLOT_C, l.C],
    [L.SLOT_CP, l.Cp],
    [L.SLOT_ANGULAR, angular ? 1 : 0],
    [L.SLOT_RADIUS, radius],
    [L.SLOT_TILE, l.tile],
    [L.SLOT_THREADS, l.threads],
    [L.SLOT_COS_LO, float32Bits(l.clamp[0])],
    [L.SLOT_COS_HI, float32Bits(l.clamp[1])],
    [L.SLOT_SUBCENTERS, l.subCenters],
    [L.SLOT_MODE, mode],
    [L.SLOT_THR, o.thr],
    [L.SLOT_XPACK, o.xpack],
    [L.SLOT_XPACKK, o.xpackk],
    [L.SLOT_W, o.w],
    [L.SLOT_GW, o.gw],
    [L.SLOT_COS, o.cos],
    [L.SLOT_LABELS, o.labels],
    [L.SLOT_A, o.a],
    [L.SLOT_ZY, o.zy],
    [L.SLOT_WEIGHT, o.weight],
    [L.SLOT_BIAS, o.bias],
    [L.SLOT_NW, o.nw],
    [L.SLOT_INVCW, o.invcw],
    [L.SLOT_GB, o.gb],
    [L.SLOT_STATS, o.stats],
    [L.SLOT_THREAD_BASE, threadBase],
    [L.SLOT_THREAD_BYTES, threadBytes],
  ];
}

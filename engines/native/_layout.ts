// Where everything of one prepared head lives in engine-native's shared memory (pure: sizes in,
// byte offsets out), and how classes are cut into tiles and shared among threads.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { HeadShape } from "../engine.ts";
import { CONTROL_BYTES, type NativeLayout } from "./_tiles.ts";
import { subCenterTile } from "../host/samples.ts";

const PAGE = 65536;
const MAX_PAGES = 65536;
const up = (n: number, k: number) => Math.ceil(n / k) * k;

/** A cosine clamp [lo, hi] as the logits' bounds s·lo, s·hi (z = s·c for a scale-s head). */
function logitClamp(head: HeadSpec, clamp?: readonly [number, number]) {
  if (!clamp) return { zlo: -Infinity, zhi: Infinity };
  if (head.logits !== "angular" || head.radius.kind !== "scale") {
    throw new RangeError("engine-native: a cosine clamp needs an angular head of scale radius");
  }
  const s = head.radius.scale;
  return { zlo: s * clamp[0], zhi: s * clamp[1] };
}

/** The default tile: about 2 MiB of W rows (one core's cache), a multiple of 16 in [64, 4096]. */
export function defaultTile(D: number): number {
  const rows = Math.floor((2 * 1024 * 1024) / (4 * up(D, 4)) / 16) * 16;
  return Math.min(4096, Math.max(64, rows));
}

/**
 * The tile and thread count for `wanted` threads: the given tile, or the default one made small
 * enough that every thread gets eight tiles (of at least 256 classes, or 64 for small heads), so
 * the last tiles of a pass leave little idle time; never more threads than tiles. With
 * `subCenters` K > 1 (sub-center ArcFace, C·K rows), the tile is rounded up to a multiple of K, so
 * that no class spans two tiles.
 */
export function tiling(
  C: number,
  D: number,
  wanted: number,
  tile?: number,
  subCenters = 0,
): { tile: number; tiles: number; threads: number } {
  let t = Math.min(tile ?? defaultTile(D), up(C, 4));
  if (tile === undefined && wanted > 1) {
    const least = C >= 2 * 256 * wanted ? 256 : 64;
    t = Math.min(t, Math.max(least, up(Math.ceil(C / (8 * wanted)), 16)));
  }
  t = subCenterTile(t, subCenters);
  const tiles = Math.ceil(C / t);
  return { tile: t, tiles, threads: Math.min(wanted, tiles) };
}

/**
 * The layout of one head (64-byte aligned regions above the first 64 KiB) and its page count;
 * `clamp`: the range of the non-target cosines (a scale-radius head only; none by default);
 * `subCenters`: sub-center ArcFace's K (0, the default, for every other head); `hard`: room for
 * CurricularFace's hard-negative numbers (none by default).
 */
export function nativeLayout(
  head: HeadSpec,
  shape: HeadShape,
  split: { tile: number; tiles: number; threads: number },
  clamp?: readonly [number, number],
  subCenters = 0,
  hard = false,
): { layout: NativeLayout; pages: number } {
  const { samples: N, dims: D, classes: C } = shape;
  const { tile, tiles, threads } = split;
  const Dp = up(D, 4), Cp = up(C, 4);
  let top = PAGE;
  const alloc = (bytes: number) => {
    const at = up(top, 64);
    top = at + bytes;
    return at;
  };
  const angular = head.logits === "angular";
  const threadBytes = up(2 * tile * Dp * 4 + N * up(tile, 4) * 4 + N * D * 4, 64);
  const layout: NativeLayout = {
    N,
    D,
    C,
    Dp,
    tile,
    tiles,
    threads,
    angular,
    normProduct: head.logits === "angular" && head.radius.kind === "normProduct",
    ...logitClamp(head, clamp),
    subCenters,
    control: alloc(CONTROL_BYTES),
    labels: alloc(N * 4),
    xt: alloc(N * D * 4),
    bias: alloc(Cp * 4),
    colf: alloc(Cp * 4),
    nw: alloc(Cp * 4),
    gb: alloc(Cp * 4),
    m: alloc(tiles * N * 4),
    s: alloc(tiles * N * 4),
    f: alloc(tiles * N * 4),
    S: alloc(4 * N * ((tiles - 1) * tile + up(C - (tiles - 1) * tile, 4))),
    hard: hard ? alloc(4 * (N + 2)) : 0,
    threadBytes,
    threadBase: 0,
  };
  layout.threadBase = alloc(threads * threadBytes);
  const pages = Math.ceil(top / PAGE);
  if (pages > MAX_PAGES) {
    throw new RangeError(
      `engine-native: this head needs ${(top / 2 ** 30).toFixed(2)} GiB (the N×C products stay ` +
        `between the passes), more than WebAssembly's 4 GiB; split the batch or the classes`,
    );
  }
  return { layout, pages };
}

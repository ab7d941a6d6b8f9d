// One thread of engine-native (the calling thread, or a worker): takes class tiles from a shared
// counter and runs, per tile, the BLAS products through FFI and the WebAssembly epilogue, both on
// the one shared WebAssembly.Memory. ./engine.ts describes the algorithm.
import {
  type BlasLibrary,
  blasThreadsOf,
  NO_TRANS,
  ROW_MAJOR,
  setBlasThreads,
  TRANS,
} from "./blas.ts";

/** Words of the control block (Int32 at `layout.control`). */
export const GEN = 0, PHASE = 1, NEXT = 2, DONE = 3, BAD = 4, ERROR = 5, LOGITS = 6, W_BYTES = 7;
/** Whether this run of a linear head has a bias. */
export const HAS_BIAS = 8;
/**
 * How the FORWARD phase treats the products ({@linkcode KEEP_PRODUCTS}, {@linkcode ON_PRODUCTS};
 * 0: as usual, the epilogue writes e over them) and, for ON_PRODUCTS, the float32 ratio of this
 * run's scale to the one they were made at, in word {@linkcode RATIO}.
 */
export const PRODUCTS = 9, RATIO = 10;
/**
 * Whether the BACKWARD phase writes ∂W straight into the caller's array (a linear head, whose ∂W
 * needs no normalisation backward, where the host has bounded it below float32's range).
 */
export const DIRECT_GW = 11;
/** A forward-only run of a plain head: the row statistics only, the products left as they are. */
export const KEEP_PRODUCTS = 1;
/** A run on the products a KEEP_PRODUCTS run left (the same inputs): no forward product, no norms. */
export const ON_PRODUCTS = 2;
/** Phases. */
export const FORWARD = 1, BACKWARD = 2, QUIT = 3;
/** Flags of `BAD`. */
export const BAD_LOGITS = 1, BAD_WEIGHTS = 2, BAD_GRAD = 4;
/** BigInt64 slots at `layout.control + 64`: the caller's W, the new ∂/∂W, the new logits. */
export const SLOT_W = 0, SLOT_GW = 1, SLOT_LOGITS = 2;
/** A worker's error message (UTF-8, NUL-terminated) at `layout.control + 128`. */
export const MESSAGE_AT = 128, MESSAGE_BYTES = 896;
export const CONTROL_BYTES = 1024;

/** Where everything lives in the shared memory (byte offsets) and the sizes of one head. */
export interface NativeLayout {
  N: number;
  D: number;
  C: number;
  /** W and ∂/∂W tile rows are Dp = D rounded up to 4 floats apart. */
  Dp: number;
  /** Classes per tile (a multiple of 4) and the number of tiles. */
  tile: number;
  tiles: number;
  /** Threads that take tiles (the calling thread is thread 0). */
  threads: number;
  angular: boolean;
  normProduct: boolean;
  /**
   * The non-target logits are clamped to [zlo, zhi] with slope 0 outside: a·[c_lo, c_hi] for a
   * cosine clamp of a scale-a head (AdaFace's ±(1 − 1e-3)), −∞ and +∞ for none.
   */
  zlo: number;
  zhi: number;
  /**
   * Sub-center ArcFace's K (C counts the C·K rows of W; tiles are multiples of K), 0 for every
   * other head.
   */
  subCenters: number;
  control: number;
  labels: number; // N i32
  xt: number; // N×D f32: x̃_i = a_i·x̂_i (angular) or x_i (linear)
  bias: number; // Cp f32
  colf: number; // Cp f32: b_j / max(‖w_j‖, ε) (angular) or 1
  nw: number; // Cp f32: ‖w_j‖
  gb: number; // Cp f32: ∂loss/∂b_j over the non-targets (linear)
  m: number; // tiles×N f32: each tile's row max of the non-target logits
  s: number; // tiles×N f32: each tile's row Σ exp(z − m) over the non-targets
  f: number; // tiles×N f32: weight·exp(m − log Σ_j exp z_ij), from the host
  S: number; // the products, tile t at S + 4·t·tile·N: N rows of up(width, 4) floats
  hard: number; // CurricularFace (else 0): t, 1/s, then N thresholds cos(θ_iy + m), f32
  threadBase: number;
  threadBytes: number; // per thread: W, ∂W tiles (tile×Dp), H tile (N×tile), partial ∂x̃ (N×D)
}

/** The exports of build/epilogue.wasm (see assembly/epilogue.ts). */
interface Epilogue {
  tileNorms(w: number, stride: number, count: number, nw: number, colf: number, np: number): number;
  forwardTile(
    s: number,
    ld: number,
    rows: number,
    width: number,
    colf: number,
    bias: number,
    withBias: number,
    labels: number,
    j0: number,
    m: number,
    sum: number,
    phase: number,
    lo: number,
    hi: number,
    hard: number,
    ratio: number,
  ): number;
  forwardTileSub(
    s: number,
    ld: number,
    rows: number,
    width: number,
    colf: number,
    labels: number,
    c0: number,
    K: number,
    m: number,
    sum: number,
    phase: number,
  ): number;
  backwardTile(
    s: number,
    h: number,
    ld: number,
    rows: number,
    width: number,
    colf: number,
    f: number,
    gb: number,
  ): void;
  fixupTile(gw: number, w: number, stride: number, count: number, nw: number, mode: number): number;
}

const up4 = (n: number) => Math.ceil(n / 4) * 4;

/** The runner of one thread. */
export class TileRunner {
  readonly #k: Epilogue;
  readonly #sgemm: BlasLibrary["symbols"]["cblas_sgemm"];
  readonly #lib: BlasLibrary;
  readonly #L: NativeLayout;
  readonly #base: bigint;
  readonly #buffer: ArrayBufferLike;
  readonly #ctl: Int32Array;
  readonly #slots: BigInt64Array;
  /** Word RATIO of the control block, as a float. */
  readonly #ratio: Float32Array;
  /** This thread's W tile, ∂W tile (tile×Dp each), H tile (N×up(tile, 4)), partial ∂x̃ (N×D). */
  readonly #wt: number;
  readonly #gwt: number;
  readonly #ht: number;
  readonly #gx: number;
  #bias = false;
  /** The caller's W: its address, and a view of it for the copies into the W tile. */
  #wAddress = 0n;
  #w: Float32Array | Float64Array = new Float32Array(0);

  constructor(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    layout: NativeLayout,
    tid: number,
    lib: BlasLibrary,
  ) {
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    this.#k = instance.exports as unknown as Epilogue;
    this.#lib = lib;
    this.#sgemm = lib.symbols.cblas_sgemm;
    this.#L = layout;
    this.#buffer = memory.buffer;
    this.#base = Deno.UnsafePointer.value(
      Deno.UnsafePointer.of(new Uint8Array(memory.buffer, 0, 16)),
    ) as bigint;
    this.#ctl = new Int32Array(memory.buffer, layout.control, 16);
    this.#slots = new BigInt64Array(memory.buffer, layout.control + 64, 4);
    this.#ratio = new Float32Array(memory.buffer, layout.control + 4 * RATIO, 1);
    const at = threadRegions(layout, tid);
    this.#wt = at.wt;
    this.#gwt = at.gwt;
    this.#ht = at.ht;
    this.#gx = at.gx;
  }

  /** A pointer to byte `offset` of the shared memory, or to an absolute address. */
  #p(offset: number | bigint): Deno.PointerValue {
    return Deno.UnsafePointer.create(
      typeof offset === "bigint" ? offset : this.#base + BigInt(offset),
    );
  }

  /** C = A·B (+ C when `accumulate`), row-major, with op(A), op(B) as the flags say. */
  #gemm(
    ta: boolean,
    tb: boolean,
    M: number,
    N: number,
    K: number,
    A: [number | bigint, number],
    B: [number | bigint, number],
    C: [number | bigint, number],
    accumulate = false,
  ): void {
    this.#sgemm(
      ROW_MAJOR,
      ta ? TRANS : NO_TRANS,
      tb ? TRANS : NO_TRANS,
      M,
      N,
      K,
      1,
      this.#p(A[0]),
      A[1],
      this.#p(B[0]),
      B[1],
      accumulate ? 1 : 0,
      this.#p(C[0]),
      C[1],
    );
  }

  /**
   * Sets the BLAS's own threads (process-wide) for a run; returns what restores the count found,
   * for other users of the library in the process.
   */
  blasThreads(threads: number): () => void {
    const before = blasThreadsOf(this.#lib);
    if (before === threads) return () => {};
    setBlasThreads(this.#lib, threads);
    return () => {
      if (before !== undefined) setBlasThreads(this.#lib, before);
    };
  }

  /** Takes tiles until none is left; errors go to the control block, for the calling thread. */
  runPhase(phase: number): void {
    const L = this.#L;
    const external = (slot: number, bytes: number) =>
      new Deno.UnsafePointerView(Deno.UnsafePointer.create(this.#slots[slot])!).getArrayBuffer(
        bytes,
      );
    this.#bias = Atomics.load(this.#ctl, HAS_BIAS) !== 0;
    this.#wAddress = this.#slots[SLOT_W];
    this.#w = Atomics.load(this.#ctl, W_BYTES) === 8
      ? new Float64Array(external(SLOT_W, L.C * L.D * 8))
      : new Float32Array(external(SLOT_W, L.C * L.D * 4));
    const next = () => Atomics.add(this.#ctl, NEXT, 1);
    if (phase === FORWARD) {
      const classes = L.subCenters ? L.C / L.subCenters : L.C;
      const logits = Atomics.load(this.#ctl, LOGITS)
        ? new Float32Array(external(SLOT_LOGITS, L.N * classes * 4))
        : undefined;
      for (let t = next(); t < L.tiles; t = next()) this.#forward(t, logits);
    } else {
      const gw = new Float32Array(external(SLOT_GW, L.C * L.D * 4));
      new Float32Array(this.#buffer, this.#gx, L.N * L.D).fill(0);
      for (let t = next(); t < L.tiles; t = next()) this.#backward(t, gw);
    }
  }

  /** Copies W's rows j0…j0+width into this thread's tile (float32, rows Dp apart). */
  #stage(j0: number, width: number): void {
    const { D, Dp } = this.#L, w = this.#w;
    const tile = new Float32Array(this.#buffer, this.#wt, width * Dp);
    if (Dp === D) {
      tile.set(w.subarray(j0 * D, (j0 + width) * D));
    } else {
      for (let j = 0; j < width; j++) {
        tile.set(w.subarray((j0 + j) * D, (j0 + j + 1) * D), j * Dp);
      }
    }
  }

  /**
   * W's tile as a product operand: the caller's float32 rows where they are (the product reads
   * them from memory while it computes, and leaves them in cache for the copy after it), else
   * this thread's float32 tile, staged first.
   */
  #wOperand(j0: number, width: number): [number | bigint, number] {
    if (this.#w instanceof Float32Array) {
      return [this.#wAddress + BigInt(4 * j0 * this.#L.D), this.#L.D];
    }
    this.#stage(j0, width);
    return [this.#wt, this.#L.Dp];
  }

  #tileS(t: number): number {
    return this.#L.S + 4 * t * this.#L.tile * this.#L.N;
  }

  #forward(t: number, logits?: Float32Array): void {
    const L = this.#L, k = this.#k;
    const j0 = t * L.tile, width = Math.min(L.tile, L.C - j0), ld = up4(width);
    const S = this.#tileS(t), products = Atomics.load(this.#ctl, PRODUCTS);
    if (products !== ON_PRODUCTS) this.#product(j0, width, S);
    if (L.subCenters) return this.#forwardSub(t, S, logits);
    const args = [
      S,
      ld,
      L.N,
      width,
      L.colf + 4 * j0,
      L.bias + 4 * j0,
      this.#bias ? 1 : 0,
      L.labels,
      j0,
      L.m + 4 * t * L.N,
      L.s + 4 * t * L.N,
    ] as const;
    const ratio = products === ON_PRODUCTS ? this.#ratio[0] : 1;
    let bad: number;
    if (products === KEEP_PRODUCTS) {
      bad = k.forwardTile(...args, 4, L.zlo, L.zhi, L.hard, 1);
    } else if (logits) {
      bad = k.forwardTile(...args, 1, L.zlo, L.zhi, L.hard, ratio);
      const z = new Float32Array(this.#buffer, S, L.N * ld);
      for (let i = 0; i < L.N; i++) logits.set(z.subarray(i * ld, i * ld + width), i * L.C + j0);
      bad |= k.forwardTile(...args, 2, L.zlo, L.zhi, L.hard, ratio);
    } else {
      bad = k.forwardTile(...args, 3, L.zlo, L.zhi, L.hard, ratio);
    }
    if (bad) Atomics.or(this.#ctl, BAD, BAD_LOGITS);
  }

  /** S_t = X̃ · W_tᵀ (N×width), then W's tile (now in cache) copied for its norms. */
  #product(j0: number, width: number, S: number): void {
    const L = this.#L;
    this.#gemm(false, true, L.N, width, L.D, [L.xt, L.D], this.#wOperand(j0, width), [
      S,
      up4(width),
    ]);
    if (L.angular) {
      if (this.#w instanceof Float32Array) this.#stage(j0, width);
      const np = L.normProduct ? 1 : 0;
      if (this.#k.tileNorms(this.#wt, L.Dp, width, L.nw + 4 * j0, L.colf + 4 * j0, np)) {
        Atomics.or(this.#ctl, BAD, BAD_WEIGHTS);
      }
    }
  }

  /**
   * The forward epilogue of a sub-center tile (forwardTileSub): each class's largest sub-center
   * logit at its arg-max column, the others masked; the logits, when asked for, each class's
   * largest of its K columns after the first pass.
   */
  #forwardSub(t: number, S: number, logits?: Float32Array): void {
    const L = this.#L, K = L.subCenters, classes = L.C / K;
    const j0 = t * L.tile, width = Math.min(L.tile, L.C - j0), ld = up4(width);
    const run = (phase: number) =>
      this.#k.forwardTileSub(
        S,
        ld,
        L.N,
        width,
        L.colf + 4 * j0,
        L.labels,
        j0 / K,
        K,
        L.m + 4 * t * L.N,
        L.s + 4 * t * L.N,
        phase,
      );
    let bad = run(logits ? 1 : 3);
    if (logits) {
      const z = new Float32Array(this.#buffer, S, L.N * ld);
      for (let i = 0; i < L.N; i++) {
        for (let g = 0; g < width / K; g++) {
          let best = -Infinity;
          for (let k = 0; k < K; k++) best = Math.max(best, z[i * ld + g * K + k]);
          logits[i * classes + j0 / K + g] = best; // the target's: the host's z_iy after
        }
      }
      bad |= run(2);
    }
    if (bad) Atomics.or(this.#ctl, BAD, BAD_LOGITS);
  }

  #backward(t: number, gw: Float32Array): void {
    const L = this.#L, k = this.#k;
    const j0 = t * L.tile, width = Math.min(L.tile, L.C - j0), ld = up4(width);
    const H = this.#ht, gb = this.#bias ? L.gb + 4 * j0 : 0;
    // H_t = e·F·colf into this thread's tile (it stays in cache; the products' S is only read).
    k.backwardTile(this.#tileS(t), H, ld, L.N, width, L.colf + 4 * j0, L.f + 4 * t * L.N, gb);
    // ∂x̃ += H_t · W_t (N×D); W's tile copied after it (from cache) for the normalisation.
    this.#gemm(
      false,
      false,
      L.N,
      L.D,
      width,
      [H, ld],
      this.#wOperand(j0, width),
      [this.#gx, L.D],
      true,
    );
    if (L.angular && this.#w instanceof Float32Array) this.#stage(j0, width);
    // ∂W_t = H_tᵀ · X̃ (width×D): into the caller's ∂W where the host allows it, else into this
    // thread's tile, normalised (angular), checked and copied.
    if (Atomics.load(this.#ctl, DIRECT_GW)) {
      const at = this.#slots[SLOT_GW] + BigInt(4 * j0 * L.D);
      return this.#gemm(true, false, width, L.D, L.N, [H, ld], [L.xt, L.D], [at, L.D]);
    }
    this.#gemm(true, false, width, L.D, L.N, [H, ld], [L.xt, L.D], [this.#gwt, L.Dp]);
    const mode = !L.angular ? 0 : L.normProduct ? 2 : 1;
    if (k.fixupTile(this.#gwt, this.#wt, L.Dp, width, L.nw + 4 * j0, mode)) {
      Atomics.or(this.#ctl, BAD, BAD_GRAD);
    }
    const tile = new Float32Array(this.#buffer, this.#gwt, width * L.Dp);
    if (L.Dp === L.D) {
      gw.set(tile, j0 * L.D);
    } else {
      for (let j = 0; j < width; j++) {
        gw.set(tile.subarray(j * L.Dp, j * L.Dp + L.D), (j0 + j) * L.D);
      }
    }
  }

  /** This thread's partial ∂loss/∂x̃ (before the row factors), N×D. */
  gradPart(): Float32Array {
    return new Float32Array(this.#buffer, this.#gx, this.#L.N * this.#L.D);
  }
}

/** The byte offsets of thread `tid`'s regions. */
export function threadRegions(
  L: NativeLayout,
  tid: number,
): { wt: number; gwt: number; ht: number; gx: number } {
  const wt = L.threadBase + tid * L.threadBytes;
  const gwt = wt + L.tile * L.Dp * 4;
  const ht = gwt + L.tile * L.Dp * 4;
  const gx = ht + L.N * up4(L.tile) * 4;
  return { wt, gwt, ht, gx };
}

/** Writes an error message into the control block (first one wins). */
export function recordError(buffer: ArrayBufferLike, layout: NativeLayout, message: string): void {
  const ctl = new Int32Array(buffer, layout.control, 16);
  if (Atomics.add(ctl, ERROR, 1) !== 0) return;
  const bytes = new TextEncoder().encode(message).subarray(0, MESSAGE_BYTES - 1);
  const out = new Uint8Array(buffer, layout.control + MESSAGE_AT, MESSAGE_BYTES);
  out.fill(0);
  out.set(bytes);
}

/** The error message of the control block. */
export function readError(buffer: ArrayBufferLike, layout: NativeLayout): string {
  const bytes = new Uint8Array(buffer, layout.control + MESSAGE_AT, MESSAGE_BYTES).slice();
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end));
}

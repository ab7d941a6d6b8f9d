// The parameter block shared by the kernels (AssemblyScript) and the host (TypeScript): slot k is
// the i32 at params + 4·k. Plain constants, so the file compiles as both languages.

/** Real sizes and their padded strides (Np, Cp multiples of 8 and 4; Dp of 8). */
export const SLOT_N = 0;
export const SLOT_NP = 1;
export const SLOT_DP = 2;
export const SLOT_C = 3;
export const SLOT_CP = 4;
/** 0: linear head, 1: angular head. */
export const SLOT_ANGULAR = 5;
/** Radius kind: 0 scale (a_i = s), 1 featureNorm (a_i = ‖x_i‖), 2 normProduct (also b_j = ‖w_j‖). */
export const SLOT_RADIUS = 6;
/** Classes per tile. */
export const SLOT_TILE = 7;
export const SLOT_THREADS = 8;
/**
 * The range [lo, hi] of the non-target cosines, as float32 bits (−∞ and +∞: no clamp): z uses
 * min(max(c, lo), hi) and ∂z/∂c is 0 where c lies outside (AdaFace's ±(1 − 1e-3)).
 */
export const SLOT_COS_LO = 9;
export const SLOT_COS_HI = 31;
/** Byte offsets of the shared arrays. */
export const SLOT_XPACK = 10; // (Np/8)×Dp×8 f32: x̂ (angular) or x (linear), by blocks of 8 samples
export const SLOT_W = 11; // Cp×Dp f32, as the caller gave it (the host copies it every run)
export const SLOT_GW = 12; // Cp×Dp f32
export const SLOT_COS = 13; // Cp×Np f32: cosines (or logits of a linear head), class-major
export const SLOT_LABELS = 14; // Np i32, −1 for padding
export const SLOT_A = 15; // Np f32: row radius factor a_i
export const SLOT_ZY = 16; // Np f64: the target logit z_iy, from the host
export const SLOT_WEIGHT = 17; // Np f32: reduction weight, 0 for padding
export const SLOT_BIAS = 18; // Cp f32
export const SLOT_NW = 19; // Cp f32: ‖w_j‖ (from a float64 sum where float32 would be inexact)
export const SLOT_INVCW = 20; // Cp f32: 1 / max(‖w_j‖, 1e-12); 1 for a linear head
export const SLOT_GB = 21; // Cp f32: ∂loss/∂b_j (linear) or the factor of w_j in ∂loss/∂w_j
export const SLOT_STATS = 22; // Np×2 f64: max and Σ exp(z − max) over non-targets, by thread 0
export const SLOT_THREAD_BASE = 23; // first thread's private region
export const SLOT_THREAD_BYTES = 24; // bytes per thread's region
/** Set by a thread whose gradient of the weights is not finite. */
export const SLOT_BAD = 25;
export const SLOT_XPACKK = 26; // (Dp/8)×Np×8 f32: x̂ packed by blocks of 8 features

/** Counters of the next class tile to take, in the forward and the backward pass. */
export const SLOT_NEXT_FORWARD = 27;
export const SLOT_NEXT_BACKWARD = 28;
/** Set when a row of W holds a non-finite value or has a norm beyond float32 (see SLOT_NW). */
export const SLOT_BAD_W = 29;
/** Set when a logit a_i·b_j·c_ij (or x·w + b) is not finite in float32. */
export const SLOT_BAD_Z = 30;
/**
 * The elementwise step of the non-targets, chosen once per tile (each has its own loops):
 * MODE_PLAIN z = a_i·b_j·c; MODE_CLAMP c clamped to [lo, hi] (SLOT_COS_LO/HI); MODE_HARD
 * CurricularFace's hard negatives, z = a_i·c·(t + c) with slope a_i·(t + 2c) where c > thr_i.
 */
export const SLOT_MODE = 32;
export const MODE_PLAIN = 0;
export const MODE_CLAMP = 1;
export const MODE_HARD = 2;
/** MODE_HARD: t as float32 bits, and the byte offset of the thresholds (Np f32, from the host). */
export const SLOT_HARD_T = 33;
export const SLOT_THR = 34;
/**
 * Sub-center ArcFace's K (0 for every other head): rows c·K … c·K + K − 1 are class c's, whose
 * cosine is their largest; tiles start at multiples of K.
 */
export const SLOT_SUBCENTERS = 35;
/** 1: a forward-only run (the losses alone: the backward pass returns at once); 0: a full run. */
export const SLOT_FORWARD_ONLY = 36;
/**
 * 1: the forward pass takes W's norms and the cosines from the head's last pass, a forward-only
 * pass on the same input (AdaCos's second run: only the scale changed); 0: computes them.
 */
export const SLOT_REUSE_COS = 37;
/** Most threads of one head, and of the whole process's worker pool. */
export const MAX_THREADS = 64;
export const PARAM_SLOTS = 38;

/** Offsets inside a thread's private region, in multiples of Np·4 bytes (see _layout.ts). */
export const T_MAX = 0; // Np f32 running max
export const T_SUM = 1; // Np f64 running sum (2 units)
export const T_LOGZ = 3; // Np f32
export const T_SUMX = 4; // Np f64: Σ_j gc_ij·c_ij over the thread's classes (2 units)
export const T_GRADA = 6; // Np f64: Σ_j gz_ij·b_j·v_ij (2 units)
export const T_TILE_SUMX = 8; // Np f32: the current tile's share of T_SUMX
export const T_TILE_GRADA = 9; // Np f32: the current tile's share of T_GRADA
// Tile×Np f32 gradient tile, the same transposed (Np×Tile), then Np×Dp f64 partial ∂/∂x, then the
// tile's rows ŵ_j packed by blocks of 8 features ((Dp/8)×Tile×8 f32).
export const T_TILE = 10;

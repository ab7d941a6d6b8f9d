// The machine's CBLAS through Deno's FFI: where to find it, how to load it (once per path and
// thread), and what it says about itself. Used by the engine's threads and by its bench.

/** The BLAS symbols engine-native calls; the thread controls are optional (OpenBLAS, MKL, BLIS). */
const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "pointer", // A
      "i32", // lda
      "pointer", // B
      "i32", // ldb
      "f32", // beta
      "pointer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
  openblas_get_config: { parameters: [], result: "pointer", optional: true },
  MKL_Set_Num_Threads: { parameters: ["i32"], result: "void", optional: true },
  MKL_Get_Max_Threads: { parameters: [], result: "i32", optional: true },
  bli_thread_set_num_threads: { parameters: ["i64"], result: "void", optional: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** A loaded CBLAS. */
export type BlasLibrary = Deno.DynamicLibrary<typeof SYMBOLS>;

export const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

/** What a loaded CBLAS says about itself, for availability and the bench's table. */
export interface BlasInfo {
  /** The path or soname that was loaded. */
  library: string;
  /** "OpenBLAS 0.3.21 (SkylakeX kernels)", "Accelerate", …. */
  summary: string;
  /** OpenBLAS's kernel family, when the library is OpenBLAS. */
  corename?: string;
  /** Whether the BLAS's own thread count can be set (so each engine thread runs one-thread GEMMs). */
  threadControl: boolean;
  /** A hint when the BLAS is slower than it could be (OpenBLAS's Haswell kernels on AVX-512). */
  note?: string;
}

/** Where a CBLAS is looked for, in order, when no path is given. */
export function candidateLibraries(): string[] {
  switch (Deno.build.os) {
    case "darwin":
      return [
        "/System/Library/Frameworks/Accelerate.framework/Accelerate",
        "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
        "/usr/local/opt/openblas/lib/libopenblas.dylib",
      ];
    case "windows":
      return ["libopenblas.dll", "openblas.dll", "mkl_rt.2.dll", "mkl_rt.dll"];
    default:
      return [
        "libopenblas.so.0",
        "libopenblas.so",
        "libmkl_rt.so.2",
        "libmkl_rt.so",
        "libblis.so.4",
        "libcblas.so.3",
        "libblas.so.3",
      ];
  }
}

const loaded = new Map<string, { lib: BlasLibrary; info: BlasInfo }>();

function cString(pointer: Deno.PointerValue): string | undefined {
  return pointer ? new Deno.UnsafePointerView(pointer).getCString() : undefined;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

/** Bits of libgcc's `__cpu_model.__cpu_features[0]` (GCC's enum processor_features). */
const GCC_FEATURE = { avx512f: 15, avx512vl: 20, avx512bw: 21, avx512dq: 22 } as const;

/**
 * The CPU's AVX-512 flags (F, BW, DQ, VL) as libgcc's CPU probe found them (`__cpu_model`, filled
 * by libgcc_s's constructor, with the OS's saving of the AVX-512 registers checked), read through
 * glibc's dlvsym: FFI alone, where Deno 2.9 reads /proc/cpuinfo only with --allow-all. Undefined
 * where either library is missing (musl, macOS).
 */
export function libgccAvx512(): boolean | undefined {
  const cString = (s: string) => new TextEncoder().encode(`${s}\0`);
  let libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
      dlvsym: { parameters: ["pointer", "buffer", "buffer"], result: "pointer" },
    });
  } catch {
    return undefined;
  }
  try {
    const RTLD_NOW = 2;
    const handle = libc.symbols.dlopen(cString("libgcc_s.so.1"), RTLD_NOW);
    if (!handle) return undefined;
    const model = libc.symbols.dlvsym(handle, cString("__cpu_model"), cString("GCC_4.8.0"));
    if (!model) return undefined;
    // struct { unsigned vendor, type, subtype; unsigned features[1]; }
    const features = new Deno.UnsafePointerView(model).getUint32(12);
    return Object.values(GCC_FEATURE).every((bit) => (features >>> bit) & 1);
  } finally {
    libc.close();
  }
}

/** The CPU's AVX-512 flags (F, BW, DQ, VL): libgcc's probe, else /proc/cpuinfo, else false. */
export function hasAvx512(): boolean {
  const probed = libgccAvx512();
  if (probed !== undefined) return probed;
  if (!granted("read", "/proc/cpuinfo")) return false;
  try {
    const flags = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m)?.[1] ?? "";
    const set = new Set(flags.trim().split(/\s+/));
    return Object.keys(GCC_FEATURE).every((f) => set.has(f));
  } catch {
    return false;
  }
}

/** Whether a permission is granted, without prompting. */
function granted(name: "env" | "read", what: string): boolean {
  try {
    const descriptor: Deno.PermissionDescriptor = name === "env"
      ? { name, variable: what }
      : { name, path: what };
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

function envGet(name: string): string | undefined {
  if (!granted("env", name)) return undefined;
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Opens `path` with Deno.dlopen (once per path and thread). OpenBLAS 0.3.21 (Debian 12) may not
 * know a recent AVX-512 processor and fall back to AVX2 kernels (its Haswell ones, about 1.8×
 * slower here, are what this machine's image sets OPENBLAS_CORETYPE to); it reads
 * OPENBLAS_CORETYPE when it loads, so where the variable is unset, the CPU has AVX-512 and
 * --allow-env permits, it is set to SkylakeX for the load and removed again. A variable the
 * environment sets is the user's choice, kept: the info's note says when it is weaker than the CPU.
 * Throws when the library cannot be opened or lacks cblas_sgemm.
 */
export function openBlas(path: string): { lib: BlasLibrary; info: BlasInfo } {
  const known = loaded.get(path);
  if (known) return known;
  let forced = false;
  const avx512 = Deno.build.os === "linux" && Deno.build.arch === "x86_64" && hasAvx512();
  if (avx512 && envGet("OPENBLAS_CORETYPE") === undefined && granted("env", "OPENBLAS_CORETYPE")) {
    try {
      Deno.env.set("OPENBLAS_CORETYPE", "SkylakeX");
      forced = true;
    } catch {
      // no --allow-env: OpenBLAS picks its kernels itself (see the note below)
    }
  }
  let lib: BlasLibrary;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } finally {
    if (forced) Deno.env.delete("OPENBLAS_CORETYPE");
  }
  const s = lib.symbols;
  const corename = s.openblas_get_corename ? cString(s.openblas_get_corename()) : undefined;
  const config = s.openblas_get_config ? cString(s.openblas_get_config()) : undefined;
  let summary: string;
  if (config !== undefined) {
    const version = config.startsWith("OpenBLAS") ? config.split(/\s+/)[1] : "?";
    summary = `OpenBLAS ${version} (${corename ?? "?"} kernels${
      forced ? ", OPENBLAS_CORETYPE=SkylakeX set for the load" : ""
    })`;
  } else if (/Accelerate/.test(path)) summary = "Accelerate";
  else if (s.MKL_Set_Num_Threads) summary = "Intel MKL";
  else if (s.bli_thread_set_num_threads) summary = "BLIS";
  else summary = `a CBLAS without thread control (${path})`;
  let note: string | undefined;
  if (avx512 && corename !== undefined && /haswell|zen/i.test(corename)) {
    note = `OpenBLAS uses its ${corename} kernels on an AVX-512 CPU: start the process with ` +
      "OPENBLAS_CORETYPE=SkylakeX (or allow --allow-env) for about 1.8× faster products";
  }
  const info: BlasInfo = {
    library: path,
    summary,
    corename,
    threadControl: Boolean(
      s.openblas_set_num_threads ?? s.MKL_Set_Num_Threads ?? s.bli_thread_set_num_threads,
    ),
    note,
  };
  const entry = { lib, info };
  loaded.set(path, entry);
  return entry;
}

/** The BLAS's own thread count, where it can be read (OpenBLAS, MKL). */
export function blasThreadsOf(lib: BlasLibrary): number | undefined {
  const s = lib.symbols;
  if (s.openblas_get_num_threads) return s.openblas_get_num_threads();
  if (s.MKL_Get_Max_Threads) return s.MKL_Get_Max_Threads();
  return undefined;
}

/** Sets the BLAS's own thread count, where it can be set (process-wide). */
export function setBlasThreads(lib: BlasLibrary, threads: number): void {
  const s = lib.symbols;
  if (s.openblas_set_num_threads) s.openblas_set_num_threads(threads);
  else if (s.MKL_Set_Num_Threads) s.MKL_Set_Num_Threads(threads);
  else if (s.bli_thread_set_num_threads) s.bli_thread_set_num_threads(BigInt(threads));
}

/** Why FFI cannot be used here, or undefined when it can. */
export function ffiUnavailable(): string | undefined {
  if (typeof Deno === "undefined" || typeof Deno.dlopen !== "function") {
    return "needs Deno's FFI (Deno.dlopen)";
  }
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return "needs --allow-ffi (FFI is how it calls the machine's BLAS)";
    }
  } catch {
    return "needs --allow-ffi (FFI is how it calls the machine's BLAS)";
  }
  return undefined;
}

/**
 * Finds and opens a CBLAS: `path` when given, else the first of {@linkcode candidateLibraries}
 * that opens and exports cblas_sgemm. Throws with a one-line reason when none does.
 */
export function findBlas(path?: string): { lib: BlasLibrary; info: BlasInfo } {
  const denied = ffiUnavailable();
  if (denied) throw new Error(denied);
  if (path !== undefined) {
    try {
      return openBlas(path);
    } catch (error) {
      throw new Error(`cannot use options.library ${path}: ${errorText(error)}`);
    }
  }
  const tried: string[] = [];
  for (const candidate of candidateLibraries()) {
    try {
      return openBlas(candidate);
    } catch (error) {
      tried.push(`${candidate}: ${errorText(error)}`);
    }
  }
  const hint = Deno.build.os === "darwin"
    ? "Accelerate should be there on macOS; pass options.library"
    : "install libopenblas0-pthread (Debian/Ubuntu) or openblas (Fedora, Homebrew), " +
      "or pass options.library";
  throw new Error(`no CBLAS found (${hint}); tried ${tried.length} libraries`);
}

// Compiles the AssemblyScript kernels: engine-wasm's into build/kernels.wasm (SIMD) and
// build/kernels_relaxed.wasm (SIMD + relaxed SIMD's fused multiply-add), engine-native's epilogue
// into native/build/epilogue.wasm. `deno task build:wasm`;
// the output is deterministic (CI rebuilds and diffs it). Another engine's kernels are one more
// entry of TARGETS, with paths relative to engines/.
import asc from "assemblyscript/asc";

/** One module to build: its entry file and output, relative to engines/, and its features. */
interface Target {
  entry: string;
  out: string;
  features: string;
}

const TARGETS: Target[] = [
  { entry: "wasm/assembly/kernels.ts", out: "wasm/build/kernels.wasm", features: "simd,threads" },
  {
    entry: "wasm/assembly/kernels.ts",
    out: "wasm/build/kernels_relaxed.wasm",
    features: "simd,relaxed-simd,threads",
  },
  {
    entry: "native/assembly/epilogue.ts",
    out: "native/build/epilogue.wasm",
    features: "simd,threads",
  },
];

const engines = new URL("../", import.meta.url).pathname;

for (const { entry, out, features } of TARGETS) {
  const { error, stderr } = await asc.main([
    entry,
    "-O3",
    "--runtime",
    "stub",
    "--noExportMemory",
    "--importMemory",
    "--sharedMemory",
    "--initialMemory",
    "1",
    "--maximumMemory",
    "65536",
    "--use",
    "abort=",
    "--baseDir",
    engines,
    "--enable",
    features,
    "-o",
    out,
  ]);
  if (error) {
    console.error(stderr.toString());
    throw error;
  }
  console.log(`built engines/${out}`);
}

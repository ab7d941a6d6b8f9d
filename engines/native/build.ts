// Compiles engine-native's elementwise kernels (assembly/epilogue.ts) into build/epilogue.wasm:
// WebAssembly SIMD on an imported shared memory. The output is deterministic and committed.
// deno run --allow-read --allow-write=engines/native/build --allow-env engines/native/build.ts
import asc from "assemblyscript/asc";

const here = new URL(".", import.meta.url).pathname;
const { error, stderr } = await asc.main([
  "assembly/epilogue.ts",
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
  "--enable",
  "simd,threads",
  "--baseDir",
  here,
  "-o",
  "build/epilogue.wasm",
]);
if (error) {
  console.error(stderr.toString());
  throw error;
}
console.log("built engines/native/build/epilogue.wasm");

// Compiles the AssemblyScript kernels into build/kernels.wasm (SIMD) and build/kernels_relaxed.wasm
// (SIMD + relaxed SIMD's fused multiply-add). `deno task build:wasm`; the output is deterministic.
import asc from "assemblyscript/asc";

const here = new URL(".", import.meta.url).pathname;
const common = [
  "assembly/kernels.ts",
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
  here,
];
for (
  const [name, features] of [["kernels", "simd,threads"], [
    "kernels_relaxed",
    "simd,relaxed-simd,threads",
  ]]
) {
  const { error, stderr } = await asc.main([
    ...common,
    "--enable",
    features,
    "-o",
    `build/${name}.wasm`,
  ]);
  if (error) {
    console.error(stderr.toString());
    throw error;
  }
  console.log(`built engines/wasm/build/${name}.wasm`);
}

// Worker body for engines/head_loss_test.ts: a runtime without WebGPU globals imports the library.
/// <reference lib="deno.worker" />
for (const name of ["GPUBufferUsage", "GPUShaderStage", "GPUMapMode", "GPUTextureUsage"]) {
  delete (globalThis as Record<string, unknown>)[name];
}
try {
  const mod = await import("../mod.ts");
  const { loss } = await mod.headLoss({
    features: mod.matrix(1, 2, [1, 0]),
    weights: mod.matrix(2, 2, [1, 0, 0, 1]),
    labels: [0],
  }, mod.arcFaceHead());
  self.postMessage({ ok: Number.isFinite(loss) });
} catch (error) {
  self.postMessage({ ok: false, error: String(error) });
}

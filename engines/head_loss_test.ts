import assert from "node:assert";
import { arcFaceHead, headLoss, matrix } from "../mod.ts";

const input = {
  features: matrix(2, 3, [1, 0, 0, 0, 1, 0]),
  weights: matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
  labels: [0, 1],
};

Deno.test("headLoss: rejects unknown engines and threads off the wasm engine", async () => {
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => headLoss(input, arcFaceHead(), { engine: "cuda" as any }),
    /headLoss: options\.engine must be one of "reference", "wasm", "webgpu".*, got "cuda"/,
  );
  await assert.rejects(
    () => headLoss(input, arcFaceHead(), { threads: 2 }),
    /options\.threads is not an option of reference, which has no threads/,
  );
});

Deno.test("mod.ts imports and computes where the runtime has no WebGPU globals", async () => {
  const worker = new Worker(new URL("../testing/_import_without_webgpu.ts", import.meta.url), {
    type: "module",
  });
  try {
    const reply = await new Promise<{ ok: boolean; error?: string }>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
    });
    assert.ok(reply.ok, reply.error);
  } finally {
    worker.terminate();
  }
});

// The tfjs backends' hygiene in tfjs's one global engine; their fixture parity is
// backends/parity_test.ts's, as for every backend.
import assert from "node:assert";
import { HEAD_CATALOG } from "../mod.ts";
import { assertClose } from "../testing/assert_close.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { tf } from "./_tfjs_setup.ts";
import { tfjsCpuBackend, tfjsWasmBackend } from "./tfjs.ts";

Deno.test({
  name: "tfjs backends: prepared heads survive backend switches and leak no tensors",
  ignore: !(await tfjsCpuBackend.availability()).available ||
    !(await tfjsWasmBackend.availability()).available,
  async fn() {
    const arcFace = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
    const input = randomHeadInput({ N: 4, D: 8, C: 6 }, 7);
    const before = tf.memory().numTensors;
    const onCpu = await tfjsCpuBackend.prepare(arcFace, input, "mean");
    const onWasm = await tfjsWasmBackend.prepare(arcFace, input, "mean");
    const first = await onCpu.run(); // switches back from wasm
    for (let k = 0; k < 3; k++) {
      const again = await onWasm.run();
      assertClose(again.gradWeights, first.gradWeights, { rtol: 1e-5, name: "cpu vs wasm" });
    }
    const during = tf.memory().numTensors;
    await onCpu.run();
    assert.equal(tf.memory().numTensors, during, "run() leaks tensors");
    await onCpu.dispose();
    await onWasm.dispose();
    assert.equal(tf.memory().numTensors, before, "dispose() leaves tensors behind");
  },
});

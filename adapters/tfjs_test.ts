// The tfjs adapters' hygiene in tfjs's one global engine; their fixture parity is
// adapters/parity_test.ts's, as for every engine.
import assert from "node:assert";
import { HEAD_CATALOG } from "../mod.ts";
import { assertClose } from "../testing/assert_close.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { tf } from "../train/tfjs_setup.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import { tfjsCpuEngine, tfjsWasmEngine } from "./tfjs.ts";

Deno.test({
  name: "tfjs adapters: prepared heads survive backend switches and leak no tensors",
  ignore: !(await tfjsCpuEngine.availability()).available ||
    !(await tfjsWasmEngine.availability()).available,
  async fn() {
    const arcFace = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
    const input = randomHeadInput({ N: 4, D: 8, C: 6 }, 7);
    const before = tf.memory().numTensors;
    const shape = { samples: 4, dims: 8, classes: 6 };
    const onCpu = await prepareOn(tfjsCpuEngine, arcFace, shape, {});
    const onWasm = await prepareOn(tfjsWasmEngine, arcFace, shape, {});
    const first = await onCpu.run(input); // switches back from wasm
    for (let k = 0; k < 3; k++) {
      const again = await onWasm.run(input);
      assertClose(again.gradWeights.data, first.gradWeights.data, {
        rtol: 1e-5,
        name: "cpu vs wasm",
      });
    }
    const during = tf.memory().numTensors;
    await onCpu.run(input);
    assert.equal(tf.memory().numTensors, during, "run() leaks tensors");
    await onCpu.dispose();
    await onWasm.dispose();
    assert.equal(tf.memory().numTensors, before, "dispose() leaves tensors behind");
  },
});

// The tfjs backends against the PyTorch float64 fixtures (judged by backends/_parity.ts, as the
// parity test of every backend is), and their hygiene in tfjs's one global engine.
import assert from "node:assert";
import { HEAD_CATALOG } from "../mod.ts";
import { assertClose } from "../testing/assert_close.ts";
import { fixtureCases } from "../testing/fixtures.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { checkCase } from "./_parity.ts";
import { tf } from "./_tfjs_setup.ts";
import { tfjsCpuBackend, tfjsWasmBackend, tfjsWebgpuBackend } from "./tfjs.ts";
import { toleranceOf } from "./tolerances.ts";

for (const backend of [tfjsCpuBackend, tfjsWasmBackend, tfjsWebgpuBackend]) {
  const availability = await backend.availability();
  if (!availability.available) console.log(`SKIPPED ${backend.name}: ${availability.reason}`);
  const tolerance = toleranceOf(backend);

  Deno.test({
    name: `${backend.name}: matches the PyTorch fixtures (rtol ${tolerance.rtol})`,
    ignore: !availability.available,
    async fn(t) {
      // Center loss has no head: it is not a backend's business.
      const cases = fixtureCases().filter((c) => HEAD_CATALOG.some((e) => e.name === c.loss));
      assert.ok(cases.length > 0, "no head-loss fixture cases");
      const worst = new Map<string, { rel: number; where: string }>();
      for (const c of cases) {
        await t.step(c.name, async () => {
          const parity = await checkCase(backend, c, tolerance);
          for (const [name, rel] of Object.entries(parity.errors)) {
            if (rel >= (worst.get(c.loss)?.rel ?? 0)) {
              worst.set(c.loss, { rel, where: `${c.name} ${name}` });
            }
          }
          if (parity.failures.length) throw new Error(parity.failures.join("\n"));
        });
      }
      for (const [loss, w] of worst) {
        console.log(
          `${backend.name} ${loss}: worst relative error ${w.rel.toExponential(2)} (${w.where})`,
        );
      }
    },
  });
}

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

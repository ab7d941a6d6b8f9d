// The onnxruntime-web backends against the float64 reference on every catalog head and reduction;
// their fixture parity is backends/parity_test.ts's, as for every backend.
import assert from "node:assert";
import { HEAD_CATALOG, type Reduction } from "../mod.ts";
import { closeness } from "../testing/assert_close.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { ortWasmBackend, ortWebgpuBackend } from "./onnxruntime.ts";
import { referenceBackend } from "./reference.ts";
import { toleranceOf } from "./tolerances.ts";

for (const backend of [ortWasmBackend, ortWebgpuBackend]) {
  const availability = await backend.availability();
  if (!availability.available) console.log(`SKIPPED ${backend.name}: ${availability.reason}`);
  const tolerance = toleranceOf(backend);

  Deno.test({
    name: `${backend.name}: agrees with the float64 reference on every catalog head and reduction`,
    ignore: !availability.available,
    async fn() {
      for (const entry of HEAD_CATALOG) {
        const head = entry.head();
        for (const reduction of ["mean", "sum", "none"] as Reduction[]) {
          const input = randomHeadInput({ N: 5, D: 6, C: 7, bias: entry.name === "softmax" }, 3);
          const expected = await (await referenceBackend.prepare(head, input, reduction)).run();
          const prepared = await backend.prepare(head, input, reduction);
          const actual = await prepared.run();
          await prepared.dispose();
          for (const name of ["losses", "gradFeatures", "gradWeights", "gradBias"] as const) {
            if (!expected[name]) continue;
            assert.ok(actual[name], `${entry.name} ${reduction}: no ${name}`);
            const { relError } = closeness(actual[name]!, expected[name]!);
            assert.ok(
              relError <= tolerance.rtol,
              `${entry.name} ${reduction} ${name}: relative error ${relError.toExponential(2)}`,
            );
          }
          const lossError = Math.abs(actual.loss - expected.loss) / Math.abs(expected.loss);
          assert.ok(lossError <= tolerance.rtol, `${entry.name} ${reduction} loss: ${lossError}`);
        }
      }
    },
  });
}

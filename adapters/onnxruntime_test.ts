// The onnxruntime-web adapters against the float64 reference on every catalog head and reduction;
// their fixture parity is adapters/parity_test.ts's, as for every engine.
import { HEAD_CATALOG, marginSoftmaxLoss, type Reduction } from "../mod.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import { assertMatchesReference } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { toleranceOf } from "../testing/tolerances.ts";
import { ortWasmEngine, ortWebgpuEngine } from "./onnxruntime.ts";

for (const engine of [ortWasmEngine, ortWebgpuEngine]) {
  const availability = await engine.availability();
  if (!availability.available) console.log(`SKIPPED ${engine.name}: ${availability.reason}`);
  const { rtol } = toleranceOf(engine);

  Deno.test({
    name: `${engine.name}: agrees with the float64 reference on every catalog head and reduction`,
    ignore: !availability.available,
    async fn() {
      for (const entry of HEAD_CATALOG) {
        const head = entry.head();
        await using prepared = await prepareOn(
          engine,
          head,
          { samples: 5, dims: 6, classes: 7 },
          {},
        );
        for (const reduction of ["mean", "sum", "none"] as Reduction[]) {
          const input = randomHeadInput({ N: 5, D: 6, C: 7, bias: entry.name === "softmax" }, 3);
          const expected = marginSoftmaxLoss(input, head, { reduction });
          const actual = await prepared.run(input, { reduction });
          assertMatchesReference(actual, expected, { name: `${entry.name} ${reduction}`, rtol });
        }
      }
    },
  });
}

// The onnxruntime-node adapter against the float64 reference on every catalog head, both margin
// gradients and every reduction; its fixture parity is adapters/parity_test.ts's once it is in
// the registry. Ignored, with the reason printed, without --allow-ffi or the package.
import { HEAD_CATALOG, type HeadSpec, marginSoftmaxLoss, type Reduction } from "../mod.ts";
import { prepareOn } from "../engines/prepare_head.ts";
import { assertMatchesReference } from "../testing/engine_checks.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { toleranceOf } from "../testing/tolerances.ts";
import { checkCase } from "../testing/parity.ts";
import { fixtureCases } from "../testing/fixtures.ts";
import { ortNodeEngine } from "./onnxruntime_node.ts";
import assert from "node:assert";

const availability = await ortNodeEngine.availability();
if (!availability.available) console.log(`SKIPPED ${ortNodeEngine.name}: ${availability.reason}`);
const { rtol } = toleranceOf(ortNodeEngine);

Deno.test({
  name:
    `${ortNodeEngine.name}: agrees with the float64 reference on every catalog head and reduction`,
  ignore: !availability.available,
  async fn() {
    let worst = 0;
    for (const entry of HEAD_CATALOG) {
      const base = entry.head();
      const heads: HeadSpec[] = base.logits === "angular"
        ? [base, {
          ...base,
          marginGradient: base.marginGradient === "exact" ? "detached" : "exact",
        }]
        : [base];
      for (const head of heads) {
        await using prepared = await prepareOn(
          ortNodeEngine,
          head,
          { samples: 5, dims: 6, classes: 7 },
          {},
        );
        for (const reduction of ["mean", "sum", "none"] as Reduction[]) {
          const input = randomHeadInput({ N: 5, D: 6, C: 7, bias: entry.name === "softmax" }, 3);
          const expected = marginSoftmaxLoss(input, head, { reduction });
          const actual = await prepared.run(input, { reduction });
          worst = Math.max(
            worst,
            assertMatchesReference(actual, expected, {
              name: `${entry.name} ${
                head.logits === "angular" ? head.marginGradient : ""
              } ${reduction}`,
              rtol,
            }),
          );
        }
      }
    }
    console.log(`worst relative error ${worst.toExponential(2)}`);
  },
});

Deno.test({
  name: `${ortNodeEngine.name}: the PyTorch fixtures within the float32 tolerance`,
  ignore: !availability.available,
  async fn() {
    let ran = 0, worst = 0;
    for (const c of fixtureCases()) {
      const parity = await checkCase(ortNodeEngine, c, toleranceOf(ortNodeEngine));
      if (parity.skipped) continue;
      ran++;
      assert.deepEqual(parity.failures, [], c.name);
      for (const rel of Object.values(parity.errors)) worst = Math.max(worst, rel!);
    }
    assert.ok(ran > 0, "no fixture case ran");
    console.log(`${ran} cases, worst relative error ${worst.toExponential(2)}`);
  },
});

// tfjsHeadLoss on engine-native (train/_native_step.ts): a head made at a call (the calling thread
// alone) gives way to one with its helper threads, prepared at once in the background, and every
// step's loss is the reference's either way.
import assert from "node:assert";
import { tf, useTfjsBackend } from "./tfjs_setup.ts";
import { NativePath } from "./_native_step.ts";
import { nativeEngine } from "../engines/native/engine.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";

const availability = await nativeEngine.availability();
if (!availability.available) console.log(`SKIPPED engine-native: ${availability.reason}`);

Deno.test({
  name: "tfjsHeadLoss (native): a head made at a call gives way to one with its helper threads",
  ignore: !availability.available,
  async fn() {
    assert.ok((await useTfjsBackend("cpu")).available);
    const spec = arcFaceHead({ scale: 16, margin: 0.3 }), N = 6, D = 8, C = 300;
    const input = randomHeadInput({ N, D, C }, 21);
    const expected = marginSoftmaxLoss(input, spec).loss;
    const features = tf.tensor2d(Float32Array.from(input.features.data), [N, D]);
    const weights = [tf.tensor2d(Float32Array.from(input.weights.data), [C, D])];
    const labels = tf.tensor1d(Int32Array.from(input.labels), "int32");
    const call = {
      where: "test",
      spec,
      features,
      weights,
      labels,
      N,
      D,
      C,
      reduction: "mean" as const,
    };
    const path = new NativePath({ threads: 2, tile: 64 });
    const key = path.make.key(spec, { samples: N, dims: D, classes: C });
    const headNow = () => path.heads.get(key, () => assert.fail("no head"));
    try {
      const threads: number[] = [];
      for (let step = 0; step < 40; step++) {
        const { value } = path.step(call);
        const loss = value.dataSync()[0];
        value.dispose();
        assert.ok(Math.abs(loss - expected) <= 1e-5 * expected, `step ${step}: ${loss}`);
        threads.push(headNow().native.threads);
        if (threads.at(-1) === 2) break;
        await new Promise((done) => setTimeout(done, 50));
      }
      assert.equal(threads[0], 1, "made at the call: the calling thread alone");
      assert.equal(threads.at(-1), 2, `never replaced: ${threads}`);
    } finally {
      path.dispose();
      tf.dispose([features, ...weights, labels]);
    }
  },
});

// tfjsHeadLoss on tfjs-wasm reuses a step's ∂W array once tfjs has copied it (train/_wasm_step.ts):
// every step's gradients stay its own, also when one tape holds several steps, and in multi-shard
// W; a gradient taken again after its array was reused is an error, never another step's values.
import assert from "node:assert";
import { tf, useTfjsBackend } from "./tfjs_setup.ts";
import { tfjsHeadLoss } from "./tfjs_loss.ts";
import { WasmPath } from "./_wasm_step.ts";
import { arcFaceHead } from "../losses/arcface.ts";
import { marginSoftmaxLoss } from "../losses/margin_softmax.ts";
import { matrix } from "../losses/matrix.ts";
import { randomHeadInput } from "../testing/loss_checks.ts";
import { assertClose } from "../testing/assert_close.ts";
import type { HeadInput } from "../losses/types.ts";

const HEAD = arcFaceHead({ scale: 16, margin: 0.3 });
const SIZE = { N: 6, D: 8, C: 40 };

function tensorsOf(input: HeadInput) {
  return {
    x: tf.tensor2d(Float32Array.from(input.features.data), [SIZE.N, SIZE.D]),
    w: tf.variable(tf.tensor2d(Float32Array.from(input.weights.data), [SIZE.C, SIZE.D])),
    y: tf.tensor1d(Int32Array.from(input.labels), "int32"),
  };
}

/** The reference's ∂W of `input`, summed over `inputs` (reduction "mean" each). */
function referenceGradW(inputs: HeadInput[]): Float64Array {
  const out = new Float64Array(SIZE.C * SIZE.D);
  for (const input of inputs) {
    const g = marginSoftmaxLoss(input, HEAD).gradWeights.data;
    for (let k = 0; k < out.length; k++) out[k] += g[k];
  }
  return out;
}

Deno.test("tfjsHeadLoss (wasm on tfjs-wasm): reused ∂W arrays keep every step's gradient its own", async (t) => {
  assert.ok((await useTfjsBackend("wasm")).available);
  const loss = tfjsHeadLoss(HEAD, { engine: "wasm", threads: 1 });
  try {
    const base = randomHeadInput(SIZE, 11);
    const other = { ...randomHeadInput(SIZE, 12), weights: base.weights };
    const { x, w, y } = tensorsOf(base);
    const x2 = tf.tensor2d(Float32Array.from(other.features.data), [SIZE.N, SIZE.D]);
    const y2 = tf.tensor1d(Int32Array.from(other.labels), "int32");
    await t.step("one step after another", () => {
      for (let k = 0; k < 4; k++) {
        const { grads, value } = tf.variableGrads(() => loss(x, w, y) as tf.Scalar, [w]);
        assertClose(grads[w.name].dataSync(), referenceGradW([base]), {
          rtol: 1e-5,
          name: `step ${k} ∂W`,
        });
        tf.dispose([value, grads[w.name]]);
      }
    });
    await t.step("two steps in one tape (the first reusing the last step's array)", () => {
      const { grads, value } = tf.variableGrads(
        () => tf.add(loss(x, w, y) as tf.Scalar, loss(x2, w, y2) as tf.Scalar) as tf.Scalar,
        [w],
      );
      assertClose(grads[w.name].dataSync(), referenceGradW([base, other]), {
        rtol: 1e-5,
        name: "two steps' ∂W",
      });
      tf.dispose([value, grads[w.name]]);
    });
    tf.dispose([x, w, y, x2, y2]);
  } finally {
    loss.dispose();
  }
});

Deno.test("tfjsHeadLoss (wasm on tfjs-wasm): a step's gradient taken after a later step reused its array is a clear error", async () => {
  assert.ok((await useTfjsBackend("wasm")).available);
  const path = new WasmPath({ threads: 1 });
  try {
    const input = randomHeadInput(SIZE, 13);
    const { x, w, y } = tensorsOf(input);
    const call = {
      where: "test",
      spec: HEAD,
      features: x,
      weights: [w as tf.Tensor2D],
      labels: y,
      ...SIZE,
      reduction: "mean" as const,
    };
    const one = tf.scalar(1);
    const first = path.step(call);
    tf.dispose(first.gradFunc(one, [])); // tfjs copied ∂W: its array is spare
    const second = path.step(call); // writes the first step's array
    assert.throws(() => first.gradFunc(one, []), /since reused by a later step/);
    const grads = second.gradFunc(one, []);
    const expected = marginSoftmaxLoss(
      { ...input, weights: matrix(SIZE.C, SIZE.D, input.weights.data) },
      HEAD,
    );
    assertClose(grads[2].dataSync(), expected.gradWeights.data, { rtol: 1e-5, name: "∂W" });
    tf.dispose([...grads, first.value, second.value, one, x, w, y]);
  } finally {
    path.dispose();
  }
});

Deno.test("tfjsHeadLoss on tfjs-wasm: a gradient that tfjs-wasm's full heap cannot hold is an error", async () => {
  assert.ok((await useTfjsBackend("wasm")).available);
  // tfjs's own tf.tensor writes a tensor's values at whatever its malloc returns: 0 when the heap
  // is full, over the start of the heap. A malloc that fails for ∂W's size stands in for a full heap.
  const module = (tf.backend() as unknown as { wasm: { _malloc: (bytes: number) => number } }).wasm;
  const malloc = module._malloc, gradBytes = 4 * SIZE.C * SIZE.D;
  const base = randomHeadInput(SIZE, 13);
  const { x, w, y } = tensorsOf(base);
  for (const engine of ["wasm", "reference"] as const) {
    const loss = tfjsHeadLoss(HEAD, { engine, threads: 1 });
    try {
      module._malloc = (bytes: number) => bytes === gradBytes ? 0 : malloc(bytes);
      assert.throws(
        () => tf.variableGrads(() => loss(x, w, y) as tf.Scalar, [w]),
        /tfjs-wasm could not allocate .* for a 40×8 gradient: its heap \(at most 4 GiB\) is full/,
        engine,
      );
      module._malloc = malloc;
      // Nothing was written at address 0: the next step is right.
      const { grads, value } = tf.variableGrads(() => loss(x, w, y) as tf.Scalar, [w]);
      assertClose(grads[w.name].dataSync(), referenceGradW([base]), {
        rtol: 1e-5,
        name: `${engine}: ∂W after the refused step`,
      });
      tf.dispose([value, grads[w.name]]);
    } finally {
      module._malloc = malloc;
      loss.dispose();
    }
  }
  tf.dispose([x, w, y]);
});

// engine-native against the float64 reference (every catalog head, both margin gradients, every
// reduction, odd sizes, one and several threads) and the PyTorch fixtures. Without a CBLAS or
// without --allow-ffi the tests are ignored, and the reason is printed.
import assert from "node:assert";
import {
  HEAD_CATALOG,
  type HeadInput,
  type HeadSpec,
  marginSoftmaxLoss,
  matrix,
  type Reduction,
} from "../../mod.ts";
import { prepareOn } from "../prepare_head.ts";
import { assertMatchesReference } from "../../testing/engine_checks.ts";
import { randomHeadInput } from "../../testing/loss_checks.ts";
import { toleranceOf } from "../../testing/tolerances.ts";
import { checkCase } from "../../testing/parity.ts";
import { fixtureCases } from "../../testing/fixtures.ts";
import { nativeBlasInfo, nativeEngine, type NativeEngineOptions } from "./engine.ts";
import { hasAvx512, libgccAvx512 } from "./blas.ts";

const availability = await nativeEngine.availability();
if (availability.available) {
  const blas = nativeBlasInfo();
  console.log(
    `engine-native: ${blas.summary} from ${blas.library}${blas.note ? `; ${blas.note}` : ""}`,
  );
} else {
  console.log(`SKIPPED engine-native tests: ${availability.reason}`);
}
const ignore = !availability.available;
const { rtol } = toleranceOf(nativeEngine);
const REDUCTIONS: Reduction[] = ["mean", "sum", "none"];

/** Every catalog head, with both margin gradients where the head has a margin. */
function heads(): { name: string; head: HeadSpec }[] {
  const out: { name: string; head: HeadSpec }[] = [];
  for (const entry of HEAD_CATALOG) {
    const head = entry.head();
    if (head.logits === "linear") {
      out.push({ name: entry.name, head });
      continue;
    }
    for (const marginGradient of ["exact", "detached"] as const) {
      out.push({ name: `${entry.name} ${marginGradient}`, head: { ...head, marginGradient } });
    }
  }
  return out;
}

async function agrees(
  size: { N: number; D: number; C: number },
  options: NativeEngineOptions,
  seed = 3,
): Promise<number> {
  let worst = 0;
  for (const { name, head } of heads()) {
    await using prepared = await prepareOn(
      nativeEngine,
      head,
      { samples: size.N, dims: size.D, classes: size.C },
      options,
    );
    for (const reduction of REDUCTIONS) {
      const input = randomHeadInput({ ...size, bias: head.logits === "linear" }, seed);
      const expected = marginSoftmaxLoss(input, head, { reduction });
      const actual = await prepared.run(input, { reduction, logits: true });
      worst = Math.max(
        worst,
        assertMatchesReference(actual, expected, {
          name: `${name} ${reduction} ${size.N}×${size.D}×${size.C} ${JSON.stringify(options)}`,
          rtol,
        }),
      );
    }
  }
  return worst;
}

Deno.test({
  name: "engine-native: every catalog head, margin gradient and reduction against the reference",
  ignore,
  async fn() {
    const worst = await agrees({ N: 5, D: 6, C: 7 }, {});
    console.log(`worst relative error ${worst.toExponential(2)}`);
  },
});

Deno.test({
  name: "engine-native: odd sizes (D not a multiple of 4 or 8, C not a multiple of the tile)",
  ignore,
  async fn() {
    let worst = 0;
    for (const threads of [1, 2, 3]) {
      worst = Math.max(worst, await agrees({ N: 9, D: 13, C: 1030 }, { threads, tile: 256 }, 5));
    }
    worst = Math.max(worst, await agrees({ N: 17, D: 36, C: 301 }, { tile: 20 }, 6));
    console.log(`worst relative error ${worst.toExponential(2)}`);
  },
});

Deno.test({
  name: "engine-native: one sample, two classes",
  ignore,
  async fn() {
    await agrees({ N: 1, D: 5, C: 2 }, {}, 7);
    await agrees({ N: 1, D: 8, C: 2 }, { threads: 1 }, 8);
  },
});

Deno.test({
  name: "engine-native: the PyTorch fixtures within the float32 tolerance",
  ignore,
  async fn() {
    const worst = new Map<string, { rel: number; where: string }>();
    let ran = 0;
    for (const c of fixtureCases()) {
      const parity = await checkCase(nativeEngine, c, toleranceOf(nativeEngine));
      if (parity.skipped) continue;
      ran++;
      assert.deepEqual(parity.failures, [], c.name);
      for (const [output, rel] of Object.entries(parity.errors)) {
        if (rel! >= (worst.get(c.loss)?.rel ?? 0)) {
          worst.set(c.loss, { rel: rel!, where: `${c.name} ${output}` });
        }
      }
    }
    assert.ok(ran > 0, "no fixture case ran");
    for (const [loss, w] of worst) {
      console.log(`${loss}: worst relative error ${w.rel.toExponential(2)} (${w.where})`);
    }
  },
});

Deno.test({
  name: "engine-native: float32 inputs, new result arrays, inputs left as they were",
  ignore,
  async fn() {
    const head = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
    const size = { N: 6, D: 10, C: 50 };
    const base = randomHeadInput(size, 11);
    const input: HeadInput = {
      features: matrix(size.N, size.D, Float32Array.from(base.features.data)),
      weights: matrix(size.C, size.D, Float32Array.from(base.weights.data)),
      labels: Int32Array.from(base.labels),
    };
    const before = [input.features.data, input.weights.data].map((a) => Float32Array.from(a));
    await using prepared = await prepareOn(nativeEngine, head, {
      samples: size.N,
      dims: size.D,
      classes: size.C,
    }, { tile: 16 });
    const first = await prepared.run(input);
    const kept = Float32Array.from(first.gradWeights.data);
    assertMatchesReference(first, marginSoftmaxLoss(input, head), { name: "float32 input", rtol });
    const other = randomHeadInput(size, 12);
    await prepared.run(other);
    assert.deepEqual(first.gradWeights.data, kept, "a later run changed an earlier result");
    for (const data of [first.gradWeights.data, first.gradFeatures.data]) {
      assert.ok(!(data.buffer instanceof SharedArrayBuffer), "a result is a view of the engine");
    }
    assert.deepEqual(input.features.data, before[0]);
    assert.deepEqual(input.weights.data, before[1]);
  },
});

Deno.test({
  name: "engine-native: inputs beyond float32 are clear errors, never NaN",
  ignore,
  async fn() {
    const softmax = HEAD_CATALOG.find((e) => e.name === "softmax")!.head();
    const shape = { samples: 2, dims: 3, classes: 4 };
    await using prepared = await prepareOn(nativeEngine, softmax, shape, {});
    // A non-target logit of 1e60.
    await assert.rejects(
      prepared.run({
        features: matrix(2, 3, [1e30, 0, 0, 0, 1, 0]),
        weights: matrix(4, 3, [1e30, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
        labels: [1, 1],
      }),
      /overflowed float32/,
    );
    // A linear head's ∂W past float32 on a class no sample has (eight rows of 2e38, each its own
    // label, all leaning to class 8: ∂W_8 = Σ_i p_i8·x_i ≈ 7.7e38, each target row ≈ 1e38): an
    // error, not Infinity, although ∂W of smaller features goes straight to the caller's array.
    const big = matrix(8, 3, Array.from({ length: 24 }, (_, k) => k % 3 === 0 ? 2e38 : 0));
    const leaning = matrix(9, 3, Array.from({ length: 27 }, (_, k) => k === 24 ? 1e-38 : 0));
    await using eight = await prepareOn(
      nativeEngine,
      softmax,
      { samples: 8, dims: 3, classes: 9 },
      {},
    );
    await assert.rejects(
      eight.run({ features: big, weights: leaning, labels: [0, 1, 2, 3, 4, 5, 6, 7] }, {
        reduction: "sum",
      }),
      /gradWeights overflowed float32/,
    );
    // The same as the target: computed in float64, and it leaves nothing to overflow.
    const targetOnly = await prepared.run({
      features: matrix(2, 3, [1e30, 0, 0, 0, 1, 0]),
      weights: matrix(4, 3, [1e30, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
      labels: [0, 1],
    });
    assert.ok(Number.isFinite(targetOnly.loss));
    const arc = HEAD_CATALOG.find((e) => e.name === "arcFace")!.head();
    await using angular = await prepareOn(nativeEngine, arc, shape, {});
    await assert.rejects(
      angular.run({
        features: matrix(2, 3, [1, 0, 0, 0, 1, 0]),
        weights: matrix(4, 3, [1e300, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
        labels: [0, 1],
      }),
      /float32 range/,
    );
    // Large but representable: still finite.
    const result = await angular.run({
      features: matrix(2, 3, [1e18, 0, 0, 0, 1e-18, 0]),
      weights: matrix(4, 3, [1e18, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
      labels: [0, 1],
    });
    for (const v of result.gradWeights.data) assert.ok(Number.isFinite(v));
  },
});

Deno.test({
  name: "engine-native: options are checked; a missing library is a clear error",
  ignore,
  async fn() {
    const head = HEAD_CATALOG[0].head();
    const shape = { samples: 2, dims: 3, classes: 4 };
    await assert.rejects(prepareOn(nativeEngine, head, shape, { tile: 6 }), /multiple of 4/);
    await assert.rejects(prepareOn(nativeEngine, head, shape, { threads: 0 }), /threads/);
    await assert.rejects(
      prepareOn(nativeEngine, head, shape, { library: "/nonexistent/libcblas.so" }),
      /cannot use options\.library \/nonexistent\/libcblas\.so/,
    );
  },
});

Deno.test({
  name:
    "engine-native: OpenBLAS's kernels weaker than the CPU's AVX-512 are named, without --allow-all",
  ignore: !availability.available,
  fn() {
    // Deno 2.9 reads /proc/cpuinfo only with --allow-all (these tests run without it): the CPU's
    // flags come from libgcc's probe, so that a weaker OPENBLAS_CORETYPE (this machine's image sets
    // Haswell) is named where the user runs, not only under -A.
    const avx512 = hasAvx512(), blas = nativeBlasInfo();
    if (Deno.build.os === "linux" && Deno.build.arch === "x86_64" && Deno.build.env === "gnu") {
      assert.equal(libgccAvx512(), avx512, "libgcc's probe answers on glibc");
    }
    const weaker = avx512 && blas.corename !== undefined && /haswell|zen/i.test(blas.corename);
    const found = `AVX-512 ${avx512}, OpenBLAS core ${blas.corename}`;
    if (weaker) assert.match(blas.note ?? "", /OPENBLAS_CORETYPE=SkylakeX/, found);
    else console.log(`engine-native: ${found}: no note due`);
  },
});

Deno.test("engine-native: without --allow-ffi, availability says so", async () => {
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") return;
  const result = await nativeEngine.availability();
  assert.equal(result.available, false);
  assert.match((result as { reason: string }).reason, /--allow-ffi/);
});

// Found by engines/fuzz_test.ts: ∂W's normalisation term κ_j·w_j was formed as σ_j/‖w_j‖² times
// w_j, and σ_j/‖w_j‖² fell into float32's subnormals where ‖w_j‖ is large and the gradient small
// (‖w‖ = 1e12, ‖x‖ = 1e-15: rows of ∂W 2e-3 off); it is now (σ_j/‖w_j‖)·(w_j/‖w_j‖).
Deno.test({
  name: "engine-native: ∂W keeps its digits where ‖w_j‖ is large and the gradient small",
  ignore,
  async fn() {
    const input = randomHeadInput({ N: 3, D: 5, C: 4 }, 11);
    for (const [m, norm] of [[input.features, 1e-15], [input.weights, 1e12]] as const) {
      for (let r = 0; r < m.rows; r++) {
        const row = m.data.subarray(r * m.cols, (r + 1) * m.cols) as Float64Array;
        const length = Math.hypot(...row);
        for (let k = 0; k < row.length; k++) row[k] *= norm / length;
      }
    }
    const head = HEAD_CATALOG.find((e) => e.name === "sphereFace")!.head({ margin: 1, lambda: 1 });
    await using prepared = await prepareOn(
      nativeEngine,
      head,
      { samples: 3, dims: 5, classes: 4 },
      {
        threads: 1,
      },
    );
    const actual = await prepared.run(input);
    const expected = marginSoftmaxLoss(input, head);
    let worst = 0;
    for (let j = 0; j < 4; j++) {
      const e = expected.gradWeights.data.subarray(j * 5, j * 5 + 5);
      const a = actual.gradWeights.data.subarray(j * 5, j * 5 + 5);
      const scale = Math.max(...Array.from(e, Math.abs));
      for (let k = 0; k < 5; k++) worst = Math.max(worst, Math.abs(a[k] - e[k]) / scale);
    }
    console.log(`worst relative error of a row of ∂W: ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-5, `a row of ∂W is ${worst.toExponential(2)} off`);
  },
});

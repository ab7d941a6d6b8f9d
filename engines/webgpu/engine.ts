/**
 * `engine-webgpu`: our own fused margin-softmax kernels in WGSL, float32, on any WebGPU adapter
 * the runtime finds (here Mesa's lavapipe, a CPU Vulkan). Every head of {@linkcode HeadSpec} runs;
 * the WGSL is generated from the head's structure (linear or angular, radius kind, margin kind,
 * gradient mode) and its numbers travel in a uniform buffer, so all losses of one structure share
 * compiled pipelines.
 *
 * `prepare` plans the buffers for the head's sizes (checking every adapter limit first), creates
 * them and compiles the pipelines. Each run checks the new features, weights, labels (and bias) and
 * converts them on the host, synchronously: an angular head's rows are normalised with float64
 * norms, so no float32 square overflows. Then one submission: the target half-angles; S = X̂·Ŵᵀ
 * (or X·Wᵀ + b) in register blocks; one workgroup per sample for the softmax statistics (the
 * largest non-target logit m and R = Σ_{j≠y} e^{z_j − m}, compensated, from which the host
 * finishes loss = softplus(m − z_y + log R) in float64), f(c), f′(c) and the sample's norm terms;
 * one invocation per class that turns S into G = ∂loss/∂c in place; ∂X = G·Ŵ summed by slices of
 * classes whose partial sums are added compensated, so the error does not grow with C; ∂W = Gᵀ·X̂;
 * one read-back. The device and its pipelines are shared by the process (see
 * {@linkcode releaseWebgpuDevice}); each prepared head owns its buffers and frees them on dispose.
 *
 * A successor head of a per-sample kind (ElasticFace, MagFace, AdaFace, CurricularFace) and
 * sub-center ArcFace run as on engine-wasm and engine-native: the passes compute its scale-s head
 * without margin, each sample's f(c_iy), f′(c_iy) come from the host in float64
 * (engines/host/samples.ts) instead of the targets pass, AdaFace's clamp of the non-target cosines
 * and CurricularFace's t travel in the uniforms (its per-sample thresholds of the hard negatives in
 * a buffer), and the host finishes MagFace's regulariser and radial term and returns the state and
 * margins. Sub-center ArcFace's S has a column per row of W (C·K); the row pass takes each class's
 * largest sub-center cosine and leaves it at that row alone, so the column pass gives the class's
 * gradient to that row and exactly 0 to its K − 1 others; the logits are N × C per class. AdaCos is
 * two runs of its scale-only head (engines/adacos.ts).
 *
 * W and ∂W are split into chunks of classes where they exceed the adapter's storage binding limit
 * (128 MiB on lavapipe); the N×C buffer and X must fit it whole (N·C ≤ 32 Mi on lavapipe), N ≤
 * 65 535, and a run's read-back must fit one buffer (2 GiB on lavapipe): past any limit, `prepare`
 * throws naming it before allocating anything.
 *
 * @module
 */
import type { HeadSpec } from "../../losses/head_spec.ts";
import type {
  Availability,
  Engine,
  EngineHead,
  EngineOptions,
  HeadShape,
  RunSettings,
} from "../engine.ts";
import { finishForward, finishRun } from "./_finish.ts";
import { type GpuLimits, type Layout, layoutProblem, planLayout } from "./_layout.ts";
import {
  buildProgram,
  createHeadBuffers,
  destroyHeadBuffers,
  type Gpu,
  type HeadBuffers,
  type Program,
  requestAdapter,
  scoped,
  sharedDevice,
} from "./_runtime.ts";
import type { RunView } from "./_stage.ts";
import { HeadRuns } from "./_head.ts";
import { createExternal, type ExternalHead, prepareExternal } from "./_external.ts";
import { checkHeadSpec } from "../../losses/checks.ts";
import {
  checkSubCenters,
  type HostHeadSpec,
  hostSuccessorSupport,
  kernelClamp,
  kernelHardNegatives,
  kernelHead,
  kernelSubCenters,
} from "../host/samples.ts";
import { successorPreparer } from "../adacos.ts";

export { releaseWebgpuDevice } from "./_runtime.ts";

/** Options of the WebGPU engine; the two sizes exist for tests, which force small chunks. */
export interface WebgpuEngineOptions extends EngineOptions {
  /** Most classes per chunk of W (a multiple of 16); the binding limit decides otherwise. */
  chunkClasses?: number;
  /** Classes per slice of the ∂X sum (a multiple of 16). @default {1024} */
  sliceClasses?: number;
}

const PREPARE = "prepareHead (webgpu)";
const RUN = "webgpu run";

async function availability(): Promise<Availability> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    return { available: false, reason: "this runtime has no WebGPU (navigator.gpu is missing)" };
  }
  try {
    return (await requestAdapter())
      ? { available: true }
      : { available: false, reason: "navigator.gpu.requestAdapter() found no WebGPU adapter" };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { available: false, reason: `WebGPU failed: ${message}` };
  }
}

function sizeOption(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || (value as number) < 16 || (value as number) % 16 !== 0) {
    throw new RangeError(`${PREPARE}: options.${name} must be a multiple of 16, got ${value}`);
  }
  return value as number;
}

/**
 * Plans the layout and checks it against the device's limits, before allocating anything. A
 * successor head's layout has host targets and its kernel head's clamp, hard negatives or K.
 */
function planChecked(
  shape: HeadShape,
  head: HostHeadSpec,
  limits: GpuLimits,
  options: WebgpuEngineOptions,
): Layout {
  const clamp = kernelClamp(head);
  checkSubCenters(PREPARE, head, shape.classes);
  const layout = planLayout(shape, limits, {
    angular: head.logits === "angular",
    hostTargets: "successor" in head,
    ...(clamp ? { clamp } : {}),
    hard: kernelHardNegatives(head),
    subCenters: kernelSubCenters(head),
    chunkClasses: sizeOption("chunkClasses", options.chunkClasses),
    sliceClasses: sizeOption("sliceClasses", options.sliceClasses),
  });
  const problem = layoutProblem(layout, limits, false);
  if (problem) throw new RangeError(`${PREPARE}: ${problem}`);
  return layout;
}

/** Creates the buffers and the program of a run without logits; frees them if creation fails. */
async function allocate(gpu: Gpu, head: HeadSpec, layout: Layout) {
  const made: { buffers?: HeadBuffers; program?: Program } = {};
  try {
    await scoped(gpu, "preparing the head", () => {
      made.buffers = createHeadBuffers(gpu, layout);
      made.program = buildProgram(gpu, head, layout, made.buffers, false);
    });
    return { buffers: made.buffers!, program: made.program! };
  } catch (error) {
    if (made.buffers) destroyHeadBuffers(made.buffers);
    gpu.pipelines.clear(); // one of them may be invalid
    throw error;
  }
}

async function prepare(
  head: HostHeadSpec,
  shape: HeadShape,
  options: WebgpuEngineOptions,
): Promise<EngineHead<Float32Array>> {
  const gpu = await sharedDevice(PREPARE);
  const layout = planChecked(shape, head, gpu.limits, options);
  // A successor head's passes: its scale-s head without margin (its targets are the host's).
  const { buffers, program } = await allocate(gpu, kernelHead(head), layout);
  return preparedHead(gpu, head, layout, buffers, program);
}

/** The per-run half (engines/webgpu/_head.ts) behind the engine contract's head. */
function preparedHead(
  gpu: Gpu,
  head: HostHeadSpec,
  layout: Layout,
  buffers: HeadBuffers,
  program: Program,
): EngineHead<Float32Array> {
  const runs = new HeadRuns(RUN, { gpu, head, layout, buffers, program });
  const forward = (view: RunView, settings: RunSettings) =>
    runs.queue(
      view,
      { ...settings, logits: false },
      "forward",
      (range) => finishForward(RUN, layout, range, settings.reduction),
    );
  return {
    run: (view, settings) =>
      runs.queue(
        view,
        settings,
        "both",
        (range, successor) =>
          finishRun(RUN, layout, range, settings, view.bias !== undefined, successor),
      ),
    // The losses alone, where the passes compute them (not a successor head's host targets).
    ...("successor" in head ? {} : { forward }),
    dispose: () => runs.dispose(),
  };
}

/**
 * The WebGPU engine behind the engine contract: float32 WGSL on the runtime's WebGPU adapter.
 * Prepare it through `prepareHead(head, shape, { engine: "webgpu" })`.
 */
export const webgpuEngine: Engine<Float32Array, WebgpuEngineOptions> = {
  name: "engine-webgpu",
  kind: "WebGPU",
  precision: "float32",
  threaded: false,
  checksValues: true,
  writesInto: true,
  availability,
  supports: () => true,
  supportsSuccessor: (head) => hostSuccessorSupport("engine-webgpu", head),
  prepare,
  // AdaCos: two runs of its scale-only head (engines/adacos.ts), the scale per run in the uniforms;
  // the per-sample kinds: host targets.
  prepareSuccessor: successorPreparer(PREPARE, prepare),
};

// ── Runs on a caller's device and GPU buffers, without a read-back (train/tfjs_loss.ts runs the
// engine on tfjs-webgpu's device and tensors): _external.ts ──

export type { ExternalBuffers, ExternalHead, WeightShard } from "./_external.ts";

/** Options of {@linkcode prepareExternalHead}: the engine's sizes, and where the targets come from. */
export interface ExternalHeadOptions extends WebgpuEngineOptions {
  /**
   * Each run's target values f(c_iy) come from `buffers.targets` and ∂loss/∂z_iy goes to
   * `buffers.targetGrads` (an angular head; its target logit is s·f): a successor head whose
   * target terms the caller computes and differentiates itself runs its scale-s head without
   * margin here. @default {false}
   */
  targets?: boolean;
  /**
   * With `targets`, sub-center ArcFace's K: W's rows are C/K classes of K adjacent rows, each
   * class's cosine the largest of them (labels are classes). @default {0}
   */
  subCenters?: number;
}

/**
 * Prepares `head` for `shape` on `device`, a WebGPU device the caller opened (TensorFlow.js's, for
 * one), for runs on the caller's own GPU buffers: N×D float32 features, C×D float32 weights and N
 * int32 labels in; the reduced loss, ∂features and ∂weights out, written by passes submitted to the
 * device's queue. Nothing is read back, so nothing is checked on the host: a label outside [0, C)
 * or a non-finite input makes the loss NaN. The head's numbers and structure may change from run to
 * run; its sizes may not. Release it with `dispose()`.
 *
 * @param device The caller's device.
 * @param head The head the runs start with (its pipelines are compiled here).
 * @param shape N samples, D dims, C classes of every run.
 * @param options Sizes that tests force small (as the engine's own); `targets` for a successor head.
 * @returns The prepared head.
 */
export async function prepareExternalHead(
  device: GPUDevice,
  head: HeadSpec,
  shape: HeadShape,
  options?: ExternalHeadOptions,
): Promise<ExternalHead> {
  checkHeadSpec("prepareExternalHead (webgpu)", head);
  return await prepareExternal(device, head, shape, externalOptions(options));
}

/**
 * {@linkcode prepareExternalHead} without an `await`, for a caller inside a synchronous function
 * (tf.customGrad's): device errors while preparing are not caught here but reported by the device.
 *
 * @param device The caller's device.
 * @param head The head the runs start with.
 * @param shape N samples, D dims, C classes of every run.
 * @param options Sizes that tests force small (as the engine's own); `targets` for a successor head.
 * @returns The prepared head.
 */
export function createExternalHead(
  device: GPUDevice,
  head: HeadSpec,
  shape: HeadShape,
  options?: ExternalHeadOptions,
): ExternalHead {
  checkHeadSpec("createExternalHead (webgpu)", head);
  return createExternal(device, head, shape, externalOptions(options));
}

function externalOptions(options: ExternalHeadOptions | undefined) {
  return {
    chunkClasses: sizeOption("chunkClasses", options?.chunkClasses),
    sliceClasses: sizeOption("sliceClasses", options?.sliceClasses),
    targets: options?.targets === true,
    subCenters: options?.subCenters ?? 0,
  };
}

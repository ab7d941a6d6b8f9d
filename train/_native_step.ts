// engine "native" inside tf.customGrad (train/_sync_step.ts): engine-native's runs are synchronous
// already (the calling thread takes tiles and waits for its helpers in Atomics.wait). A head
// prepared ahead (`loss.prepare(shape)`) has all of its threads; one made at a call has one, the
// calling thread with the BLAS's own threads for the products (no helper to wait for), until the
// head with all of its threads, prepared at once in the background, takes its place. The head of
// each call is handed to the run: a λ schedule, a successor's state or ElasticFace's margins need
// no new preparation; what fixes the memory's layout (linear or angular, the radius kind, AdaFace's
// clamp at its scale, sub-centers, hard negatives) is part of the key. AdaCos runs as two runs of
// its scale-only head, the second on the first one's products (engines/adacos.ts).
import type { EngineResult, HeadShape, RunSettings, RunTargets } from "../engines/engine.ts";
import type { HeadInput, Reduction } from "../losses/types.ts";
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import { viewHeadInput } from "../losses/checks.ts";
import {
  createSyncNativeHead,
  type NativeEngineOptions,
  type NativeHead,
  prepareSyncNativeHead,
} from "../engines/native/engine.ts";
import {
  type HostHeadSpec,
  kernelClamp,
  kernelHardNegatives,
  kernelHead,
  kernelSubCenters,
} from "../engines/host/samples.ts";
import { adaCosBaseHead, runAdaCosSync } from "../engines/adacos.ts";
import { type StepHead, SyncPath } from "./_sync_step.ts";

const WHERE = "engine-native";

/** The head a native head is laid out for: AdaCos's scale-only head, any other head itself. */
function laidOut(spec: HostHeadSpec, shape: HeadShape): HostHeadSpec {
  const adaCos = "successor" in spec && spec.successor.kind === "adaCos";
  return adaCos ? adaCosBaseHead(WHERE, spec, shape.classes) : spec;
}

/** What fixes a native head's memory beyond the shape: a call of another structure needs another. */
function structureOf(spec: HostHeadSpec): string {
  const base = kernelHead(spec);
  const radius = base.logits === "angular" ? base.radius : undefined;
  const clamp = kernelClamp(spec);
  return JSON.stringify([
    base.logits,
    radius?.kind,
    clamp && radius?.kind === "scale" ? clamp.map((c) => c * radius.scale) : null,
    kernelSubCenters(spec),
    kernelHardNegatives(spec),
  ]);
}

/** A native head as a training step runs it: each call's head and input, checked. */
class NativeStepHead implements StepHead {
  constructor(readonly native: NativeHead) {}

  runSync(
    head: HostHeadSpec,
    input: HeadInput,
    options: { reduction?: Reduction; gradWeightsInto?: Float32Array },
  ): EngineResult<Float32Array> {
    const view = viewHeadInput(WHERE, input, {
      classes: "weights",
      allowBias: head.logits === "linear",
      values: false, // engine-native names a non-finite value itself
    });
    const into = options.gradWeightsInto?.length === view.C * view.D
      ? { into: { gradWeights: options.gradWeightsInto } as RunTargets }
      : {};
    const settings: RunSettings = {
      reduction: options.reduction ?? "mean",
      logits: false,
      ...into,
    };
    if (!("successor" in head) || head.successor.kind !== "adaCos") {
      return this.native.run(view, settings, head);
    }
    return runAdaCosSync(WHERE, head, view, {
      first: (base) => this.native.forward(view, settings, base),
      run: (base, afterFirst) =>
        this.native.run(view, { ...settings, sameInput: afterFirst }, base),
    });
  }

  dispose(): void {
    this.native.dispose();
  }
}

/** engine-native's prepared heads of one loss, by shape and structure. */
export class NativePath extends SyncPath<NativeStepHead> {
  constructor(options: NativeEngineOptions) {
    super({
      key: (spec: HeadSpec | SuccessorHeadSpec, shape: HeadShape) =>
        `${shape.samples}×${shape.dims}×${shape.classes} ${structureOf(laidOut(spec, shape))}`,
      create: (spec, shape) =>
        new NativeStepHead(createSyncNativeHead(laidOut(spec, shape), shape, options)),
      prepare: async (spec, shape) =>
        new NativeStepHead(await prepareSyncNativeHead(laidOut(spec, shape), shape, options)),
      createdLess: true,
    });
  }
}

// The per-run half of a prepared head: staging (the caller's arrays read before anything is
// awaited), the run queue, the uniforms of each run, the programs (engines/webgpu/_programs.ts) and
// the reuse of a forward-only run's cosines by the full run on the same arrays after it.
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Reduction } from "../../losses/types.ts";
import type { RunSettings } from "../engine.ts";
import type { Layout, Passes } from "./_layout.ts";
import { layoutProblem } from "./_layout.ts";
import {
  destroyHeadBuffers,
  type Gpu,
  type HeadBuffers,
  type Program,
  submitAndRead,
  upload,
  uploadUniforms,
} from "./_runtime.ts";
import { createStaging, type RunView, type Staged, stageInput, stageTargets } from "./_stage.ts";
import { headUniforms } from "./_uniforms.ts";
import { Programs } from "./_programs.ts";
import { type HostHeadSpec, kernelHead, type SampleCopies, type Samples } from "../host/samples.ts";
import { onKeptInput, runHead } from "../adacos.ts";

/**
 * Each chunk's uniforms of `head` for a run's settings, packed once per reduction; a run with its
 * own scale (AdaCos) or its own t (CurricularFace's `hardT`) is packed for that run only.
 */
function uniformCache(
  head: HeadSpec,
  layout: Layout,
): (settings: RunSettings, hardT?: number) => ArrayBuffer[] {
  const packed = new Map<Reduction, ArrayBuffer[]>();
  return ({ reduction, scale }, hardT) => {
    if (scale !== undefined || hardT !== undefined) {
      const now = scale === undefined ? head : runHead(head, { reduction, logits: false, scale });
      return layout.chunks.map((c) => headUniforms(now, layout, c, reduction, hardT));
    }
    const each = packed.get(reduction) ??
      layout.chunks.map((c) => headUniforms(head, layout, c, reduction));
    packed.set(reduction, each);
    return each;
  };
}

/** One queued run: what it uploads (nothing: the last run's inputs) and which passes it makes. */
interface Job {
  view: RunView;
  staged?: Staged;
  settings: RunSettings;
  passes: Passes;
  successor?: Samples;
}

/** What a head's runs work on. */
export interface HeadParts {
  gpu: Gpu;
  head: HostHeadSpec;
  layout: Layout;
  buffers: HeadBuffers;
  /** The program of a run without logits, both passes. */
  program: Program;
}

/** The runs of one prepared head, one after another. */
export class HeadRuns {
  readonly #parts: HeadParts;
  readonly #programs: Programs;
  readonly #staging: Staged;
  /** A successor head's float64 rows, reused by a run staged while no other is queued. */
  readonly #copies: SampleCopies = {};
  readonly #uniforms: (settings: RunSettings, hardT?: number) => ArrayBuffer[];
  #tail: Promise<void> = Promise.resolve(); // settles when the last queued run has
  #pending = 0;
  #disposed = false;
  #cosinesOf?: RunView; // the last run's input, where it was a forward-only run

  constructor(readonly where: string, parts: HeadParts) {
    const { gpu, head, layout, buffers, program } = parts;
    this.#parts = parts;
    const base = kernelHead(head); // a successor head's passes: scale s, no margin
    this.#programs = new Programs(gpu, base, layout, buffers, program);
    this.#staging = createStaging(layout);
    this.#uniforms = uniformCache(base, layout);
  }

  /**
   * Stages a run and queues it: the caller's arrays are read here, before anything is awaited (a
   * run queued behind another stages into its own arrays). A full run on the arrays of the
   * forward-only run just before it (`settings.sameInput`) uploads nothing but its uniforms and
   * skips the forward passes: the scores still hold that run's cosines.
   */
  queue<R>(
    view: RunView,
    settings: RunSettings,
    passes: Passes,
    finish: (range: ArrayBuffer, successor?: Samples) => R,
  ): Promise<R> {
    const { where } = this, { gpu, head, layout } = this.#parts;
    if (this.#disposed) return Promise.reject(new Error(`${where}: the head was disposed`));
    const problem = settings.logits && layoutProblem(layout, gpu.limits, true);
    if (problem) return Promise.reject(new RangeError(`${where}: with logits, ${problem}`));
    const job: Job = { view, settings, passes };
    const idle = this.#pending === 0;
    if (passes === "both" && settings.sameInput && idle && onKeptInput(view, this.#cosinesOf)) {
      job.passes = "afterForward";
    } else {
      try {
        const staged = job.staged = idle ? this.#staging : createStaging(layout);
        stageInput(where, layout, view, staged);
        const now = settings.head ?? head; // a run's own state or margins
        if ("successor" in now) {
          job.successor = stageTargets(where, now, view, staged, idle ? this.#copies : undefined);
        }
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const go = () => this.#execute(job, (range) => finish(range, job.successor));
    const task = idle ? go() : this.#tail.then(go);
    this.#pending++;
    // The first handler on the task: by the time the caller's await resumes, the head is idle.
    this.#tail = task.then(() => void this.#pending--, () => void this.#pending--);
    return task;
  }

  async #execute<R>(job: Job, finish: (range: ArrayBuffer) => R): Promise<R> {
    const { where } = this, { gpu, layout, buffers } = this.#parts;
    if (this.#disposed) throw new Error(`${where}: the head was disposed`);
    if (gpu.released) {
      throw new Error(`${where}: the WebGPU device was released or lost; prepare the head again`);
    }
    this.#cosinesOf = undefined;
    const each = this.#uniforms(job.settings, job.successor?.hardNegatives?.t);
    if (job.staged) upload(gpu, layout, buffers, job.staged, each);
    else uploadUniforms(gpu, buffers, each);
    const program = await this.#programs.get(job.settings.logits, job.passes);
    const result = await submitAndRead(gpu, program, finish);
    if (job.passes === "forward") this.#cosinesOf = job.view;
    return result;
  }

  /** Waits for the queued runs, then destroys the head's buffers. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#tail;
    destroyHeadBuffers(this.#parts.buffers);
  }
}

// The programs of one prepared head, built on first use: with or without the logits, both passes,
// the forward passes alone (AdaCos's first run), or the passes after them (its second).
import type { HeadSpec } from "../../losses/head_spec.ts";
import type { Layout, Passes } from "./_layout.ts";
import {
  addLogitsBuffers,
  buildProgram,
  type Gpu,
  type HeadBuffers,
  type Program,
  scoped,
} from "./_runtime.ts";

/** A head's programs by logits and passes; the one of a plain run comes built. */
export class Programs {
  readonly #built = new Map<string, Program>();

  constructor(
    readonly gpu: Gpu,
    readonly head: HeadSpec,
    readonly layout: Layout,
    readonly buffers: HeadBuffers,
    plain: Program,
  ) {
    this.#built.set("false both", plain);
  }

  /** The program of a run with or without the logits, of the given passes. */
  async get(logits: boolean, passes: Passes): Promise<Program> {
    const key = `${logits} ${passes}`;
    const known = this.#built.get(key);
    if (known) return known;
    const { gpu, head, layout, buffers } = this;
    const program = await scoped(gpu, `preparing the ${logits ? "logits" : passes} passes`, () => {
      if (logits) addLogitsBuffers(gpu, layout, buffers);
      return buildProgram(gpu, head, layout, buffers, logits, passes);
    });
    this.#built.set(key, program);
    return program;
  }
}

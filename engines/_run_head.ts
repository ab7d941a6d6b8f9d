// A run's own successor head (RunOptions.state, RunOptions.margins): the prepared head's loss and
// options with only its state or its per-sample margins changed, checked as the loss's builder
// checks them, so that everything an engine prepared for the head (kernels, clamp, tiles) fits.
import type { HeadSpec, SuccessorHeadSpec } from "../losses/head_spec.ts";
import { describe } from "../losses/checks.ts";
import { checkSuccessorHead } from "../losses/successor_head.ts";

/** The state fields of the successor hooks that keep state between batches. */
const STATE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  curricular: ["t"],
  adaFace: ["mean", "std"],
  adaCos: ["scale"],
};

/** The hook with `state`'s fields in place of its own, each a number (ranges: the builder's). */
function withState(where: string, hook: Record<string, unknown>, name: string, state: unknown) {
  const fields = STATE_FIELDS[hook.kind as string];
  if (!fields) throw new TypeError(`${where}: options.state: ${name} keeps no state`);
  const want = `{ ${fields.join(", ")} }`;
  if (state === null || typeof state !== "object" || Array.isArray(state)) {
    throw new TypeError(`${where}: options.state must be ${name}'s state ${want}`);
  }
  const given = state as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!fields.includes(key)) {
      throw new TypeError(
        `${where}: options.state has an unknown field "${key}"; ${name}: ${want}`,
      );
    }
  }
  for (const field of fields) {
    if (typeof given[field] !== "number") {
      throw new TypeError(
        `${where}: options.state.${field} must be a number, got ${describe(given[field])}`,
      );
    }
    hook[field] = given[field];
  }
}

/** The hook with `margins` in place of its own: one number per sample. */
function withMargins(
  where: string,
  hook: Record<string, unknown>,
  name: string,
  margins: unknown,
  samples: number,
) {
  if (hook.kind !== "elastic") {
    throw new TypeError(`${where}: options.margins: ${name} takes no per-sample margins`);
  }
  const list = margins as ArrayLike<unknown> | null;
  if (list === null || typeof list !== "object" || typeof list.length !== "number") {
    throw new TypeError(`${where}: options.margins must be an array of numbers`);
  }
  if (list.length !== samples) {
    throw new RangeError(
      `${where}: options.margins must hold one margin per sample (${samples}), got ${list.length}`,
    );
  }
  hook.margins = Array.from(list);
}

/**
 * The head of one run: undefined where the run gives neither `state` nor `margins` (the prepared
 * head), else the prepared successor head with them in place, checked by its loss's builder.
 */
export function runSuccessorHead(
  where: string,
  prepared: HeadSpec | SuccessorHeadSpec,
  given: { state?: unknown; margins?: unknown },
  samples: number,
): SuccessorHeadSpec | undefined {
  if (given.state === undefined && given.margins === undefined) return undefined;
  if (!("successor" in prepared)) {
    throw new TypeError(
      `${where}: options.state and options.margins are for a successor head, not "${prepared.name}"`,
    );
  }
  const hook = { ...prepared.successor } as Record<string, unknown>;
  if (given.state !== undefined) withState(where, hook, prepared.name, given.state);
  if (given.margins !== undefined) {
    withMargins(where, hook, prepared.name, given.margins, samples);
  }
  return checkSuccessorHead(where, { ...prepared, successor: hook });
}

// `run(input, { into })`: a run's gradients written into the arrays of an earlier result that the
// caller gives back, instead of new arrays. A new C×D array costs its first touch, page by page:
// at L (∂W 200 MB) about 0.7 s on our machines, more than the head's matrix products; PyTorch's
// caching allocator (or jemalloc under it) reuses freed memory the same way.
import type { HeadInput } from "../losses/types.ts";
import type { EngineResult, HeadShape, RunTargets } from "./engine.ts";

type Data = Float32Array | Float64Array;

/** Whether two typed arrays share any byte. */
function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength &&
    b.byteOffset < a.byteOffset + a.byteLength;
}

/** The typed arrays of an input, which `into` must not share memory with. */
function inputArrays(input: HeadInput): [string, ArrayBufferView][] {
  const out: [string, ArrayBufferView][] = [];
  const named = [
    ["input.features", input.features?.data],
    ["input.weights", input.weights?.data],
    ["input.labels", input.labels],
    ["input.bias", input.bias],
  ] as const;
  for (const [name, data] of named) if (ArrayBuffer.isView(data)) out.push([name, data]);
  return out;
}

/**
 * Checks `options.into` of a run: an earlier result of this head (gradFeatures N×D and gradWeights
 * C×D of the engine's precision), sharing no memory with the input, with itself, or with the arrays
 * of a run of this head still in flight (`pending`). Returns its arrays, or undefined when absent.
 */
export function checkInto(
  where: string,
  into: unknown,
  { shape, classes, precision, input, pending }: {
    shape: HeadShape;
    /** The head's classes (C, or C/K for sub-center ArcFace): the logits' columns. */
    classes: number;
    precision: "float32" | "float64";
    input: HeadInput;
    pending: Iterable<ArrayBufferView>;
  },
): RunTargets | undefined {
  if (into === undefined) return undefined;
  if (into === null || typeof into !== "object") {
    throw new TypeError(`${where}: options.into must be an earlier result of this head`);
  }
  const r = into as Partial<EngineResult>;
  const Type = precision === "float32" ? Float32Array : Float64Array;
  const { samples: N, dims: D, classes: C } = shape;
  const matrixData = (
    name: "gradWeights" | "gradFeatures" | "logits",
    rows: number,
    cols: number,
  ) => {
    const m = r[name] as { rows?: unknown; cols?: unknown; data?: unknown } | undefined;
    const fits = m?.rows === rows && m?.cols === cols && m?.data instanceof Type &&
      m.data.length === rows * cols;
    return { data: fits ? m!.data as Data : undefined, got: describe(m) };
  };
  const required = (name: "gradWeights" | "gradFeatures", rows: number, cols: number) => {
    const { data, got } = matrixData(name, rows, cols);
    if (data) return data;
    throw new TypeError(
      `${where}: options.into.${name} must be a ${rows}×${cols} matrix of ${Type.name} (this ` +
        `head's ${name}, ${precision} on this engine), got ${got}`,
    );
  };
  const targets: RunTargets = {
    gradWeights: required("gradWeights", C, D),
    gradFeatures: required("gradFeatures", N, D),
  };
  const gradBias = r.gradBias instanceof Type && r.gradBias.length === C ? r.gradBias : undefined;
  if (gradBias) targets.gradBias = gradBias;
  // Optional parts of another size (or absent) get new arrays.
  const logits = matrixData("logits", N, classes).data;
  if (logits) targets.logits = logits;
  const inputs = inputArrays(input), taken: [string, ArrayBufferView][] = [];
  for (const [name, data] of Object.entries(targets) as [string, Data][]) {
    const clash = inputs.find(([, array]) => overlaps(data, array))?.[0] ??
      taken.find(([, array]) => overlaps(data, array))?.[0] ??
      ([...pending].some((array) => overlaps(data, array)) ? IN_FLIGHT : undefined);
    if (clash) {
      throw new RangeError(
        `${where}: options.into.${name} shares memory with ${clash}; give back a result ` +
          `whose arrays nothing else uses`,
      );
    }
    taken.push([`options.into.${name}`, data]);
  }
  return targets;
}

const IN_FLIGHT = "the arrays of a run of this head that has not finished (await it first)";

function describe(m: { rows?: unknown; cols?: unknown; data?: unknown } | undefined): string {
  if (m === null || typeof m !== "object") return String(m);
  const data = m.data as { constructor?: { name?: string }; length?: number } | undefined;
  const type = data?.constructor?.name ?? typeof data;
  return `${m.rows}×${m.cols}, data ${type}${ArrayBuffer.isView(data) ? ` of ${data.length}` : ""}`;
}

/**
 * The result with its arrays placed in `targets`: a part the engine already wrote there is kept,
 * any other is copied in (the engines write gradWeights in place; the small parts are copied).
 */
export function placeInto<T extends Data>(
  result: EngineResult<T>,
  targets: RunTargets,
): EngineResult<T> {
  const place = (data: T, target: Data | undefined): T => {
    if (!target || data === target) return data;
    target.set(data);
    return target as T;
  };
  const out: EngineResult<T> = {
    ...result,
    gradWeights: {
      ...result.gradWeights,
      data: place(result.gradWeights.data, targets.gradWeights),
    },
    gradFeatures: {
      ...result.gradFeatures,
      data: place(result.gradFeatures.data, targets.gradFeatures),
    },
  };
  if (result.gradBias) out.gradBias = place(result.gradBias, targets.gradBias);
  if (result.logits) {
    out.logits = { ...result.logits, data: place(result.logits.data, targets.logits) };
  }
  return out;
}

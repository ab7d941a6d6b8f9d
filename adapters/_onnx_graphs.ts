// The ONNX graphs of fixtures/onnx (written by fixtures/onnx_export.py): which graph computes a
// HeadSpec, and the values of its scalar inputs. Nothing here knows a loss by name.
import type { HeadSpec, Reduction } from "../mod.ts";
import { readAsset } from "../engines/platform.ts";

/** One graph of fixtures/onnx/index.json. */
export interface GraphEntry {
  /** File name inside fixtures/onnx/. */
  file: string;
  /** The HeadSpec fields it serves (radius and margin by kind); absent fields do not matter. */
  match: Record<string, string>;
  /** Graph input names, tensors first, then scalar parameters. */
  inputs: string[];
  /** Graph output names. */
  outputs: string[];
}

/** fixtures/onnx/index.json. */
export interface GraphIndex {
  /** The largest psi margin m the graphs unroll T_m to. */
  maxPsiMargin: number;
  /** Where each scalar input comes from: a dotted path into the HeadSpec, or "reduction". */
  params: Record<string, string>;
  graphs: GraphEntry[];
}

/**
 * The folder of the graphs (the repository's fixtures; not published): read from the file system
 * in Deno, fetched from ../fixtures/onnx/ beside a page's bundle.
 */
export const ONNX_FOLDER: URL = new URL("../fixtures/onnx/", import.meta.url);

let index: Promise<GraphIndex> | undefined;

/** Reads index.json once. */
export function graphIndex(): Promise<GraphIndex> {
  index ??= readAsset(new URL("index.json", ONNX_FOLDER)).then((bytes) =>
    JSON.parse(new TextDecoder().decode(bytes))
  );
  return index;
}

/** The structural fields of a head, as the index's `match` spells them. */
function structure(head: HeadSpec): Record<string, string> {
  if (head.logits === "linear") return { logits: "linear" };
  const fields: Record<string, string> = {
    logits: "angular",
    radius: head.radius.kind,
    margin: head.margin.kind,
    marginGradient: head.marginGradient,
  };
  if (head.margin.kind === "angular") fields.fallback = head.margin.fallback;
  return fields;
}

/** The graph that computes `head`, or why there is none. */
export function graphFor(graphs: GraphIndex, head: HeadSpec): GraphEntry | string {
  if (head.logits === "angular" && head.margin.kind === "psi") {
    const m = head.margin.margin;
    if (!Number.isInteger(m) || m < 0 || m > graphs.maxPsiMargin) {
      return `psi margin ${m} is outside the graphs' integer range 0..${graphs.maxPsiMargin}`;
    }
  }
  const fields = structure(head);
  const entry = graphs.graphs.find((g) =>
    Object.entries(g.match).every(([key, value]) => fields[key] === value)
  );
  return entry ?? `no ONNX graph for ${JSON.stringify(fields)} in fixtures/onnx/index.json`;
}

/** The value of scalar input `name` for a head, its reduction and batch size N. */
export function paramValue(
  graphs: GraphIndex,
  name: string,
  context: { head: HeadSpec; reduction: Reduction; N: number },
): number {
  const source = graphs.params[name];
  if (source === "reduction") return context.reduction === "mean" ? 1 / context.N : 1;
  let value: unknown = context.head;
  for (const key of (source ?? "").split(".")) {
    value = (value as Record<string, unknown> | undefined)?.[key];
  }
  if (typeof value !== "number") {
    throw new Error(
      `ONNX input "${name}" (${source}) is not a number in head ${context.head.name}`,
    );
  }
  return value;
}

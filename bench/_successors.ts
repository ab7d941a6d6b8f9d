// The losses the bench can select: the head losses of HEAD_CATALOG and, opt-in, the six successor
// losses of issue 13 (`BENCH_LOSSES=successors`, or `deno task bench:successors`), with the one
// check of whether a contender computes a head and, when not, its reason. Shared by _config.ts,
// losses_bench.ts, _probe.ts and run.ts.
import {
  adaCosHead,
  adaFaceHead,
  curricularFaceHead,
  elasticFaceHead,
  elasticFaceMargins,
  HEAD_CATALOG,
  type HeadSpec,
  magFaceHead,
  subCenterArcFaceHead,
  type SuccessorHeadSpec,
} from "../mod.ts";
import type { Engine } from "../engines/engine.ts";
import type { BenchSize } from "./_config.ts";

/** A loss of the bench: its name and its head at a size, with the loss's defaults. */
export interface BenchLoss {
  /** As in tables and BENCH_LOSSES ("arcFace", "adaFace"). */
  name: string;
  /** The head at `size` (ElasticFace draws one margin per sample). */
  head(size?: BenchSize): HeadSpec | SuccessorHeadSpec;
  /** Weight rows per class: sub-center ArcFace's K (its weights are C·K×D); 1 otherwise. */
  rowsPerClass: number;
}

/** The BENCH_LOSSES name that selects every successor loss. */
export const SUCCESSOR_GROUP = "successors";

/** ElasticFace's margins in the bench: N(0.5, 0.05) for the arc variant, drawn from this seed. */
const ELASTIC_SEED = 1;

/**
 * The six successor losses of issue 13, each with its loss page's defaults (state initial:
 * CurricularFace t = 0, AdaFace mean 20 and std 100, AdaCos s₀ = √2·ln(C − 1)); ElasticFace is
 * ElasticArcFace with margins N(0.5, 0.05) drawn once per size (the head is prepared once; the
 * official code draws them every step, which the PyTorch row does).
 */
export const SUCCESSOR_LOSSES: readonly BenchLoss[] = [
  { name: "subCenterArcFace", head: () => subCenterArcFaceHead(), rowsPerClass: 3 },
  { name: "curricularFace", head: () => curricularFaceHead(), rowsPerClass: 1 },
  { name: "adaFace", head: () => adaFaceHead(), rowsPerClass: 1 },
  { name: "magFace", head: () => magFaceHead(), rowsPerClass: 1 },
  { name: "adaCos", head: () => adaCosHead(), rowsPerClass: 1 },
  {
    name: "elasticFace",
    head: (size) =>
      elasticFaceHead({
        variant: "arc",
        margins: elasticFaceMargins(size?.N ?? 1, { variant: "arc", seed: ELASTIC_SEED }),
      }),
    rowsPerClass: 1,
  },
];

/** Every loss the bench knows: the catalog's, then the successors. */
export const BENCH_LOSSES: readonly BenchLoss[] = [
  ...HEAD_CATALOG.map((e) => ({ name: e.name, head: () => e.head(), rowsPerClass: 1 })),
  ...SUCCESSOR_LOSSES,
];

/** The bench loss called `name`, if any. */
export function findBenchLoss(name: string): BenchLoss | undefined {
  return BENCH_LOSSES.find((l) => l.name === name);
}

/** `size` as the weights of `loss` make it: C·K rows for sub-center ArcFace (for flops). */
export function weightSize(loss: { rowsPerClass?: number }, size: BenchSize): BenchSize {
  const k = loss.rowsPerClass ?? 1;
  return k === 1 ? size : { ...size, C: size.C * k };
}

/**
 * Whether `backend` computes `head` through prepareHead, or why not, in one line: a head loss by
 * the backend's `supports`; a successor head as engines/prepare_head.ts decides (the engine's
 * `supportsSuccessor`; a backend without `prepareSuccessor` computes none).
 */
export function benchSupport(
  backend: Engine,
  head: HeadSpec | SuccessorHeadSpec,
): true | string {
  const oneLine = (text: string) => text.replace(/\s+/g, " ").trim();
  if (!("successor" in head)) {
    const supported = backend.supports?.(head) ?? true;
    return supported === true ? true : oneLine(supported);
  }
  const kind = JSON.stringify(head.successor.kind);
  const supported = backend.supportsSuccessor?.(head);
  if (typeof supported === "string") return oneLine(supported);
  if (!backend.prepareSuccessor) {
    return `head.successor (${kind}) is a successor hook that ${backend.name} does not compute`;
  }
  return true;
}

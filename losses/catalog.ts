import type { HeadSpec } from "./head_spec.ts";
import { arcFaceHead } from "./arcface.ts";
import { combinedMarginHead } from "./combined_margin.ts";
import { cosFaceHead } from "./cosface.ts";
import { fNormSphereFaceHead } from "./fnorm_sphereface.ts";
import { lSoftmaxHead } from "./lsoftmax.ts";
import { normFaceHead } from "./normface.ts";
import { softmaxHead } from "./softmax.ts";
import { sphereFaceHead } from "./sphereface.ts";

/** One head loss of the catalog: its name and its head builder. */
export interface CatalogEntry {
  /** The loss's name, as in fixtures and tables ("arcFace"). */
  name: string;
  /** Builds the head description from the loss's options (defaults when omitted). */
  head: (options?: Record<string, unknown>) => HeadSpec;
}

/**
 * Every head loss of the library, in the order tables show them. Benches and parity tests iterate
 * over it, so a loss added here appears everywhere.
 *
 * @example
 * ```ts
 * import { HEAD_CATALOG } from "../mod.ts";
 * import assert from "node:assert";
 *
 * const arcFace = HEAD_CATALOG.find((entry) => entry.name === "arcFace")!;
 * assert.equal(arcFace.head({ margin: 0.4 }).name, "arcFace");
 * ```
 */
export const HEAD_CATALOG: readonly CatalogEntry[] = [
  { name: "softmax", head: softmaxHead },
  { name: "normFace", head: normFaceHead },
  { name: "lSoftmax", head: lSoftmaxHead },
  { name: "sphereFace", head: sphereFaceHead },
  { name: "fNormSphereFace", head: fNormSphereFaceHead },
  { name: "cosFace", head: cosFaceHead },
  { name: "arcFace", head: arcFaceHead },
  { name: "combinedMargin", head: combinedMarginHead },
];

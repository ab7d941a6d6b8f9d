/**
 * `deno task bench:compare OLD.json NEW.json [--threshold 1.1] [--all]`: did a change make an
 * engine slower? Two results files of bench/run.ts (any job), row by row (backend, loss, size).
 *
 * Absolute times mean little on shared, noisy machines, so each row is compared by its ratio to
 * the machine probe measured in the same run (bench/_machine_probe.ts, a fixed matrix product on
 * one thread, or on every core for threaded backends), each side taken at its fastest iteration
 * (bench/_results.ts `trackedOf`): change = (new row / new probe) ÷ (old row / old probe). Its noise band is a bootstrap: the four sets of
 * per-iteration times (the row and the probe, old and new) are resampled with replacement, the
 * change is recomputed from the resamples, and the band is the central 95 % of those changes (wide
 * when only a lucky iteration or two were fast). A row is a regression when even the band's low
 * end is above the threshold (a ratio `threshold`× worse, beyond noise), an improvement when the
 * band's high end is below 1 / threshold, within noise otherwise.
 *
 * Exits with 1 when one of our engines' rows (or, with `--all`, any row) is a regression.
 *
 * @module
 */
import { anchorOf, anchorSamples, type BenchResult, type BenchRow, trackedOf } from "./_results.ts";
import { seededRandom } from "../testing/random.ts";

/** How {@linkcode compareRuns} decides. */
export interface CompareOptions {
  /** A ratio this many times worse, beyond the noise band, is a regression. @default {1.1} */
  threshold?: number;
  /** The share of bootstrap changes the band holds. @default {0.95} */
  confidence?: number;
  /** Bootstrap resamples per row. @default {2000} */
  resamples?: number;
  /** Seed of the bootstrap's generator: the same files give the same report. @default {1} */
  seed?: number;
  /** Which rows fail the comparison when they regress. @default {rows of our engines} */
  failsOn?: (row: BenchRow) => boolean;
}

/** A change of a ratio with its noise band. */
export interface Change {
  /** New ratio ÷ old ratio; above 1 is slower. */
  change: number;
  /** The band's low and high ends. */
  low: number;
  high: number;
}

/** What happened to one row. */
export type Verdict =
  | "regression"
  | "improvement"
  | "within noise"
  | "new"
  | "gone"
  | "not comparable";

/** One row of the comparison. */
export interface RowComparison extends Partial<Change> {
  backend: string;
  loss: string;
  size: string;
  anchor?: string;
  /** The row's tracked ratio to its anchor in OLD and in NEW. */
  oldRatio?: number;
  newRatio?: number;
  verdict: Verdict;
  /** Why a row is new, gone or not comparable. */
  note?: string;
  /** Whether a regression of this row fails the comparison. */
  fails: boolean;
}

/** The whole comparison. */
export interface Comparison {
  rows: RowComparison[];
  /** The rows that fail it: regressions of rows that fail on them. */
  regressions: RowComparison[];
  threshold: number;
  confidence: number;
  /** A line per run whose load average exceeded its cores. */
  busy: string[];
}

function resampled(samples: readonly number[], random: () => number, scratch: number[]) {
  scratch.length = samples.length;
  for (let i = 0; i < samples.length; i++) {
    scratch[i] = samples[Math.floor(random() * samples.length)];
  }
  return trackedOf(scratch);
}

/**
 * The change of `row / anchor` from OLD to NEW, each side at its tracked figure (its fastest
 * iteration), with the bootstrap band. Each argument is a set of per-iteration times in ms.
 */
export function ratioChange(
  oldRow: readonly number[],
  oldAnchor: readonly number[],
  newRow: readonly number[],
  newAnchor: readonly number[],
  options: Pick<CompareOptions, "confidence" | "resamples" | "seed"> = {},
): Change {
  const { confidence = 0.95, resamples = 2000, seed = 1 } = options;
  const ratio = (r: number, a: number, r0: number, a0: number) => (r / a) / (r0 / a0);
  const change = ratio(
    trackedOf(newRow),
    trackedOf(newAnchor),
    trackedOf(oldRow),
    trackedOf(oldAnchor),
  );
  const random = seededRandom(seed);
  const scratch: number[] = [];
  const changes = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    changes[b] = ratio(
      resampled(newRow, random, scratch),
      resampled(newAnchor, random, scratch),
      resampled(oldRow, random, scratch),
      resampled(oldAnchor, random, scratch),
    );
  }
  changes.sort();
  const at = (q: number) =>
    changes[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  const tail = (1 - confidence) / 2;
  return { change, low: Math.min(change, at(tail)), high: Math.max(change, at(1 - tail)) };
}

const keyOf = (r: { backend: string; loss: string; size: string }) =>
  `${r.backend}|${r.loss}|${r.size}`;

/** Our engines' rows fail the comparison; peers' and PyTorch's are reported only. */
function oursByDefault(row: BenchRow): boolean {
  return row.ours ?? (row.backend === "reference" || row.backend.startsWith("engine-"));
}

/** Compares two results files row by row; see the module documentation for the rule. */
export function compareRuns(
  old: BenchResult,
  neu: BenchResult,
  options: CompareOptions = {},
): Comparison {
  const { threshold = 1.1, confidence = 0.95, failsOn = oursByDefault } = options;
  if (!(threshold >= 1)) throw new Error(`threshold must be at least 1, got ${threshold}`);
  const bootstrap = { confidence, resamples: options.resamples, seed: options.seed };
  const oldRows = new Map(old.rows.map((r) => [keyOf(r), r]));
  const rows: RowComparison[] = [];
  for (const row of neu.rows) {
    if (!row.samplesMs?.length) continue;
    const base = { backend: row.backend, loss: row.loss, size: row.size };
    const before = oldRows.get(keyOf(row));
    if (!before?.samplesMs?.length) {
      rows.push({
        ...base,
        verdict: "new",
        fails: false,
        note: before ? "no samples in OLD" : "not in OLD",
      });
      continue;
    }
    const anchor = row.anchor ?? anchorOf(row);
    const oldAnchor = anchorSamples(old, anchor, row);
    const newAnchor = anchorSamples(neu, anchor, row);
    if (!oldAnchor || !newAnchor) {
      rows.push({
        ...base,
        anchor,
        verdict: "not comparable",
        fails: false,
        note: `no ${anchor} in ${oldAnchor ? "NEW" : "OLD"}`,
      });
      continue;
    }
    const change = ratioChange(before.samplesMs, oldAnchor, row.samplesMs, newAnchor, bootstrap);
    rows.push({
      ...base,
      anchor,
      oldRatio: trackedOf(before.samplesMs) / trackedOf(oldAnchor),
      newRatio: trackedOf(row.samplesMs) / trackedOf(newAnchor),
      ...change,
      verdict: change.low > threshold
        ? "regression"
        : change.high < 1 / threshold
        ? "improvement"
        : "within noise",
      fails: failsOn(row),
    });
  }
  const seen = new Set(neu.rows.filter((r) => r.samplesMs?.length).map(keyOf));
  for (const row of old.rows) {
    if (!row.samplesMs?.length || seen.has(keyOf(row))) continue;
    const why = neu.rows.find((r) => keyOf(r) === keyOf(row))?.skipped;
    rows.push({
      backend: row.backend,
      loss: row.loss,
      size: row.size,
      verdict: "gone",
      fails: false,
      note: why ? `skipped in NEW: ${why}` : "not in NEW",
    });
  }
  const regressions = rows.filter((r) => r.verdict === "regression" && r.fails);
  const busy = [["OLD", old], ["NEW", neu]].flatMap(([name, result]) => {
    const { cores, loadAverage = [] } = (result as BenchResult).machine ?? {};
    const peak = Math.max(...loadAverage.filter((l): l is number => l !== undefined));
    return cores && peak > cores
      ? [`${name} ran at a load average of ${peak} on ${cores} cores`]
      : [];
  });
  return { rows, regressions, threshold, confidence, busy };
}

const fixed = (v?: number) => v === undefined ? "—" : v.toPrecision(3);

/** The comparison as a Markdown table and a closing verdict line. */
export function comparisonReport(comparison: Comparison, old: string, neu: string): string {
  const { rows, regressions, threshold, confidence } = comparison;
  const lines = [
    ...comparison.busy.map((b) =>
      `Note: ${b}: other work was running, expect more noise (the tracked ratios resist most of it).`
    ),
    `Comparing ${neu} (NEW) with ${old} (OLD): each row's fastest iteration ÷ the machine ` +
    `probe's, measured in the same run; band: central ${Math.round(confidence * 100)} % of a ` +
    `bootstrap over the samples; regression: band above ×${threshold}.`,
    "",
    "| backend | loss | size | ratio OLD | ratio NEW | change | band | verdict |",
    "|---|---|---|---:|---:|---:|---|---|",
  ];
  for (const r of rows) {
    const verdict = r.verdict === "regression"
      ? r.fails ? "**REGRESSION**" : "regression (not ours: reported only)"
      : r.verdict;
    lines.push(
      `| ${r.backend} | ${r.loss} | ${r.size} | ${fixed(r.oldRatio)} | ${fixed(r.newRatio)} | ` +
        `${r.change === undefined ? "—" : `×${r.change.toFixed(2)}`} | ` +
        `${r.low === undefined ? "—" : `${r.low.toFixed(2)}–${r.high!.toFixed(2)}`} | ${verdict}` +
        `${r.note ? ` (${r.note})` : ""} |`,
    );
  }
  lines.push(
    "",
    regressions.length
      ? `FAIL: ${regressions.length} regression(s) beyond noise: ` +
        regressions.map((r) => `${r.backend} ${r.loss} ${r.size} ×${r.change!.toFixed(2)}`)
          .join(", ")
      : `OK: no row of ours is slower beyond noise and ×${threshold}.`,
  );
  return lines.join("\n");
}

const USAGE = "usage: deno task bench:compare OLD.json NEW.json [--threshold 1.1] [--all]\n" +
  "  --threshold T  a ratio T× worse beyond the noise band is a regression (default 1.1)\n" +
  "  --all          every row's regression fails, not only our engines'";

/**
 * The command: reads the two files, prints the report, and returns the exit code (0 when nothing
 * of ours regressed, 1 when something did, 2 on bad arguments).
 */
export async function compareMain(
  args: readonly string[],
  readTextFile: (path: string) => Promise<string> = Deno.readTextFile,
  print: (text: string) => void = console.log,
): Promise<number> {
  const files: string[] = [];
  let threshold = 1.1, all = false, bad = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--threshold") threshold = Number(args[++i]);
    else if (arg.startsWith("--threshold=")) threshold = Number(arg.slice(12));
    else if (arg === "--all") all = true;
    else if (arg.startsWith("-")) bad = true;
    else files.push(arg);
  }
  if (bad || files.length !== 2 || !(threshold >= 1)) {
    print(USAGE);
    return 2;
  }
  const [old, neu] = await Promise.all(
    files.map(async (f) => JSON.parse(await readTextFile(f)) as BenchResult),
  );
  const comparison = compareRuns(old, neu, {
    threshold,
    failsOn: all ? () => true : undefined,
  });
  print(comparisonReport(comparison, files[0], files[1]));
  return comparison.regressions.length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await compareMain(Deno.args));

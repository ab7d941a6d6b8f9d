/**
 * The results in the format CI benchmark trackers read: github-action-benchmark's
 * `customSmallerIsBetter` (a JSON array of `{name, unit, value, range?, extra?}`). Two entries per
 * measured row: its ratio to its anchor (what to track: it survives a noisy or changed
 * machine) and its median in ms.
 *
 * bench/run.ts writes `bench/results/<job>-tracker.json`; point the tracker's `output-file-path` at
 * it.
 *
 * @module
 */
import type { BenchResult } from "./_results.ts";

/** One entry of github-action-benchmark's `customSmallerIsBetter` format. */
export interface TrackerEntry {
  name: string;
  unit: string;
  value: number;
  range?: string;
  extra?: string;
}

const round = (v: number) => Number(v.toPrecision(4));

/** The entries of every measured row of `result`, ratios first. */
export function trackerEntries(result: BenchResult): TrackerEntry[] {
  const machine = result.machine?.cpu
    ? `${result.machine.cpu}, ${result.machine.cores} cores`
    : "unknown machine";
  const ratios: TrackerEntry[] = [];
  const times: TrackerEntry[] = [];
  for (const row of result.rows) {
    if (row.medianMs === undefined || !row.samplesMs?.length) continue;
    const name = `${row.loss} ${row.size} ${row.backend}`;
    const min = Math.min(...row.samplesMs), max = Math.max(...row.samplesMs);
    const extra = `${row.engine}, ${row.precision}; median of ${row.samplesMs.length} ` +
      `iterations (${round(min)}–${round(max)} ms); ${machine}` +
      (result.commit ? `; ${result.commit}` : "");
    if (row.vsAnchor !== undefined) {
      ratios.push({
        name: `${name}: time ÷ ${row.anchor}`,
        unit: `× ${row.anchor}`,
        value: round(row.vsAnchor),
        extra,
      });
    }
    times.push({
      name: `${name}: median`,
      unit: "ms",
      value: round(row.medianMs),
      range: `± ${round((max - min) / 2)}`,
      extra,
    });
  }
  return [...ratios, ...times];
}

/**
 * `deno bench` of every head loss of HEAD_CATALOG on every registered backend, one group per
 * (loss, size), the first registered backend (the float64 reference) as baseline where it runs.
 *
 * Each measured iteration is what a user waits for: `await prepared.run()`, forward and backward,
 * GPU work finished and results read back. Preparing (uploads, sessions) happens once per bench,
 * outside the timed part. Benches whose estimated cost does not fit the budget are skipped by the
 * rule in bench/_config.ts, with the reason printed.
 *
 * Environment: BENCH_PROFILE (the job, bench/_profiles.ts: main by default), BENCH_SIZES,
 * BENCH_BACKENDS, BENCH_LOSSES (comma-separated names), BENCH_BUDGET_S (seconds per bench),
 * BENCH_SIDECAR (a JSON file for start-up costs, skips, the machine probe and our own per-sample
 * times, from which bench/run.ts takes medians: `deno bench --json` reports no median), and, to
 * check that bench:compare catches a slower engine, BENCH_INJECT_SLOWDOWN=backend=factor (each
 * timed run of that backend is followed, inside the timed part, by a busy wait of factor − 1 times
 * its own time).
 *
 * @module
 */
import type { Engine as Backend } from "../engines/engine.ts";
import { CONTENDERS as BACKENDS } from "../adapters/registry.ts";
import { type BenchHead as PreparedHead, prepareBenchHead } from "./_prepared.ts";
import {
  benchBudgetMs,
  benchName,
  benchSelection,
  type BenchSize,
  flopsOf,
  median,
  planBench,
  shouldProbe,
  sizeLabel,
  SIZES,
} from "./_config.ts";
import { activeProfile } from "./_profiles.ts";
import { machineProbe, parallelMachineProbe } from "./_machine_probe.ts";
import { injectedSlowdown } from "./_slowdown.ts";
import { type BenchLoss, benchSupport, weightSize } from "./_successors.ts";

/** What the sidecar file holds; bench/run.ts reads it. */
export interface BenchSidecar {
  startup: {
    backend: string;
    available: boolean;
    reason?: string;
    availabilityMs?: number;
    firstPrepareMs?: number;
    firstRunMs?: number;
    warmRunMs?: number;
    /** Warm runs of the first loss at each size probed for the skip rule. */
    probes?: { size: string; warmRunMs: number }[];
  }[];
  skipped: { backend: string; loss: string; size: string; reason: string }[];
  benches: {
    name: string;
    backend: string;
    loss: string;
    size: string;
    n: number;
    warmup: number;
    estimateMs: number;
    samplesMs: number[];
    /** The round (1, 2, …) of a job that interleaves rounds; bench/run.ts merges them. */
    round?: number;
    error?: string;
  }[];
  /** The machine probe's times (bench/_machine_probe.ts): at start, between benches, at the end. */
  machineProbe?: { samplesMs: number[]; parallelSamplesMs: number[] };
}

const encoder = new TextEncoder();
/** Progress goes straight to stderr: `deno bench` swallows console output inside benches. */
const log = (line: string) => Deno.stderr.writeSync(encoder.encode(`[bench] ${line}\n`));
const message = (e: unknown) => e instanceof Error ? e.message : String(e);
const ms = (v: number) => v < 10 ? v.toFixed(2) : v.toFixed(0);

const { sizes, backends, losses } = benchSelection();
const budgetMs = benchBudgetMs();
const sidecarPath = Deno.env.get("BENCH_SIDECAR");
const sidecar: BenchSidecar = {
  startup: [],
  skipped: [],
  benches: [],
  machineProbe: { samplesMs: [], parallelSamplesMs: [] },
};
const slowdown = injectedSlowdown();
const save = () => sidecarPath && Deno.writeTextFileSync(sidecarPath, JSON.stringify(sidecar));

/** The measured speed of a backend: flops per ms of a warm run, at each size probed. */
type Rates = Map<BenchSize, number>;

/** The rate of the largest probed size not above `size`: what the skip rule extrapolates from. */
function rateFor(rates: Rates, size: BenchSize): number {
  let best = SIZES[0];
  for (const probed of rates.keys()) {
    if (flopsOf(probed) <= flopsOf(size) && flopsOf(probed) >= flopsOf(best)) best = probed;
  }
  return rates.get(best)!;
}

const canSpawn = Deno.permissions.querySync({ name: "run" }).state === "granted";

/** One warm run (after a cold one) at `size`, in a child process: ms, or why it failed. */
async function probe(backend: Backend, loss: string, size: BenchSize): Promise<number | string> {
  if (!canSpawn) return await probeHere(backend, loss, size);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("_probe.ts", import.meta.url).pathname,
      backend.name,
      loss,
      size.name,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (out.success) return JSON.parse(text).warmRunMs;
  const error = new TextDecoder().decode(out.stderr).trim().split("\n");
  const line = error.find((l) => /error/i.test(l)) ?? error.pop() ?? `exit code ${out.code}`;
  return line.slice(0, 200);
}

/**
 * Without --allow-run (plain `deno bench -P`): the probe in this process, which is safe below the
 * largest size (it is at L that a backend can abort the process).
 */
async function probeHere(
  backend: Backend,
  loss: string,
  size: BenchSize,
): Promise<number | string> {
  let prepared: PreparedHead | undefined;
  try {
    prepared = await prepareBenchHead(
      backend,
      losses.find((l) => l.name === loss)!.head(size),
      size,
    );
    await prepared.run();
    const t = performance.now();
    await prepared.run();
    return performance.now() - t;
  } catch (e) {
    return message(e);
  } finally {
    await prepared?.dispose();
  }
}

/**
 * A backend's start-up: availability, first prepare and first run at the smallest size, then a warm
 * run's throughput; then a probe (one cold, one warm run) at each larger selected size for which
 * {@linkcode shouldProbe} says so, so the skip rule plans from a measured run where it matters.
 */
async function startUp(
  backend: Backend,
  loss: BenchLoss,
): Promise<{ rates: Rates; cannotHold: Map<BenchSize, string> } | string> {
  const head = loss.head(SIZES[0]);
  const t0 = performance.now();
  const availability = await backend.availability();
  const t1 = performance.now();
  if (!availability.available) {
    sidecar.startup.push({ backend: backend.name, available: false, reason: availability.reason });
    return `unavailable: ${availability.reason}`;
  }
  let prepared: PreparedHead | undefined;
  try {
    prepared = await prepareBenchHead(backend, head, SIZES[0]);
    const t2 = performance.now();
    await prepared.run();
    const t3 = performance.now();
    const warm: number[] = [];
    while (warm.length < 3 && performance.now() - t3 < 2000) {
      const s = performance.now();
      await prepared.run();
      warm.push(performance.now() - s);
    }
    await prepared.dispose();
    prepared = undefined;
    const warmRunMs = median(warm);
    const startup: BenchSidecar["startup"][number] = {
      backend: backend.name,
      available: true,
      availabilityMs: t1 - t0,
      firstPrepareMs: t2 - t1,
      firstRunMs: t3 - t2,
      warmRunMs,
      probes: [{ size: SIZES[0].name, warmRunMs }],
    };
    sidecar.startup.push(startup);
    log(
      `start-up ${backend.name}: availability ${ms(t1 - t0)} ms + first prepare ${
        ms(t2 - t1)
      } ms + first run ${ms(t3 - t2)} ms; warm run ${ms(warmRunMs)} ms at ${SIZES[0].name}`,
    );
    const rates: Rates = new Map([[SIZES[0], flopsOf(SIZES[0]) / warmRunMs]]);
    const cannotHold = new Map<BenchSize, string>();
    for (const size of sizes) {
      if (flopsOf(size) <= flopsOf(SIZES[0])) continue;
      if (!canSpawn && size === SIZES[SIZES.length - 1]) break;
      if (!shouldProbe(size, rateFor(rates, size), budgetMs)) break;
      const probed = await probe(backend, loss.name, size);
      if (typeof probed === "string") {
        log(`probe ${backend.name} at ${size.name} failed: ${probed}`);
        for (const s of sizes) if (flopsOf(s) >= flopsOf(size)) cannotHold.set(s, probed);
        break;
      }
      rates.set(size, flopsOf(size) / probed);
      startup.probes!.push({ size: size.name, warmRunMs: probed });
      log(
        `probe ${backend.name}: warm run ${ms(probed)} ms at ${size.name}` +
          (canSpawn ? " (separate process)" : ""),
      );
    }
    return { rates, cannotHold };
  } catch (e) {
    sidecar.startup.push({ backend: backend.name, available: false, reason: message(e) });
    return `start-up failed: ${message(e)}`;
  } finally {
    await prepared?.dispose();
  }
}

/** The bench being measured: its prepared head, kept across iterations and disposed after. */
let current:
  | { entry: BenchSidecar["benches"][number]; prepared?: PreparedHead; calls: number }
  | undefined;

function finish() {
  if (!current) return;
  const { entry, prepared } = current;
  current = undefined;
  log(
    entry.error
      ? `${entry.loss} ${entry.size} · ${entry.backend}: error ${entry.error}`
      : `${entry.loss} ${entry.size} · ${entry.backend}: median ${
        ms(median(entry.samplesMs))
      } ms ` +
        `(${entry.samplesMs.length} samples after ${entry.warmup} warm-up)`,
  );
  save();
  return (async () => {
    await prepared?.dispose();
    // The machine probe between benches too: it sees the load of the whole run.
    sidecar.machineProbe!.samplesMs.push(...machineProbe(5, 2));
    sidecar.machineProbe!.parallelSamplesMs.push(...await parallelMachineProbe(5, 2));
    save();
  })();
}
globalThis.addEventListener("unload", () => {
  void finish();
  // The machine probe again at the end: the anchor sees the whole run.
  sidecar.machineProbe!.samplesMs.push(...machineProbe());
  save();
});

if (!canSpawn) {
  log(
    "no --allow-run: the skip rule probes in this process, and extrapolates to " +
      `${SIZES[SIZES.length - 1].name} (bench/run.ts probes there in separate processes)`,
  );
}
sidecar.machineProbe!.samplesMs.push(...machineProbe());
sidecar.machineProbe!.parallelSamplesMs.push(...await parallelMachineProbe());
const throughput = new Map<Backend, { rates: Rates; cannotHold: Map<BenchSize, string> }>();
for (const backend of backends) {
  // Start-up measures the first selected loss this backend computes (the successor losses are
  // computed by some engines only); one that computes none is not started, and each of its rows
  // is skipped with that loss's own reason, in one line.
  const heads = losses.map((l) => l.head(SIZES[0]));
  const support = heads.map((h) => benchSupport(backend, h));
  const first = losses.find((_, i) => support[i] === true);
  const own = support[0];
  const result = first ? await startUp(backend, first) : undefined;
  if (result !== undefined && typeof result !== "string") throughput.set(backend, result);
  else {
    log(
      result === undefined
        ? `${backend.name}: skipped entirely, it computes none of the selected losses ` +
          `(e.g. ${own})`
        : `${backend.name}: skipped entirely, ${result}`,
    );
    for (const size of sizes) {
      losses.forEach((loss, i) =>
        sidecar.skipped.push({
          backend: backend.name,
          loss: loss.name,
          size: size.name,
          reason: result ?? `does not support this head: ${support[i]}`,
        })
      );
    }
  }
}
save();

let plannedMs = 0, planned = 0;
// A job may split each bench's samples into rounds, run interleaved (ABCABC…): its fastest
// iterations then come from several moments of the run, not one (bench/_profiles.ts).
const rounds = activeProfile().rounds ?? 1;
for (let round = 1; round <= rounds; round++) {
  for (const size of sizes) {
    for (const loss of losses) {
      const head = loss.head(size);
      const group = `${loss.name} ${sizeLabel(size)}`;
      for (const [backend, { rates, cannotHold }] of throughput) {
        const skip = (reason: string) => {
          if (round > 1) return;
          sidecar.skipped.push({ backend: backend.name, loss: loss.name, size: size.name, reason });
          log(`skip ${group} · ${backend.name}: ${reason}`);
        };
        const supported = benchSupport(backend, head);
        if (supported !== true) {
          skip(`does not support this head: ${supported}`);
          continue;
        }
        if (cannotHold.has(size)) {
          skip(`cannot hold this size (probe failed: ${cannotHold.get(size)})`);
          continue;
        }
        const plan = planBench(weightSize(loss, size), rateFor(rates, size), budgetMs);
        if (plan.skip) {
          skip(plan.reason);
          continue;
        }
        const n = Math.max(1, Math.ceil(plan.n / rounds));
        plannedMs += plan.plannedMs / rounds + (rounds > 1 ? plan.warmup * plan.estimateMs : 0);
        if (round === 1) planned++;
        const into = backend.writesInto ? ", into the last run's arrays" : "";
        const name = `${loss.name} ${size.name} ${benchName(backend)} fwd+bwd, read back${into}` +
          (rounds > 1 ? ` (round ${round})` : "");
        const entry: BenchSidecar["benches"][number] = {
          name,
          backend: backend.name,
          loss: loss.name,
          size: size.name,
          round,
          n,
          warmup: plan.warmup,
          estimateMs: plan.estimateMs,
          samplesMs: [],
        };
        Deno.bench({
          name,
          group,
          baseline: backend === BACKENDS[0],
          n,
          warmup: 0,
          async fn(b) {
            if (current?.entry !== entry) {
              await finish();
              current = { entry, calls: 0 };
              sidecar.benches.push(entry);
              try {
                current.prepared = await prepareBenchHead(backend, head, size);
                // Our own warm-up, untimed: `deno bench`'s own warm-up count is time-based.
                for (let k = 0; k < plan.warmup; k++) await current.prepared.run();
              } catch (e) {
                entry.error = `prepare or warm-up: ${message(e)}`;
                throw e;
              }
            }
            const state = current!;
            b.start();
            const t0 = performance.now();
            const result = await state.prepared!.run().catch((e) => {
              entry.error = `run: ${message(e)}`;
              throw e;
            });
            if (slowdown?.of(backend)) slowdown.wait(performance.now() - t0);
            const elapsed = performance.now() - t0;
            b.end();
            if (state.calls++ === 0 && !Number.isFinite(result.loss)) {
              entry.error = `non-finite loss ${result.loss}`;
              throw new Error(entry.error);
            }
            entry.samplesMs.push(elapsed);
          },
        });
      }
    }
  }
}
log(
  `${planned} benches planned${rounds > 1 ? ` in ${rounds} interleaved rounds` : ""}, ` +
    `estimated ${(plannedMs / 60_000).toFixed(1)} min of runs ` +
    `(extrapolated from start-up; ${sidecar.skipped.length} skipped)`,
);

// BENCH_INJECT_SLOWDOWN=backend=factor: a deliberately slower engine, to check end to end that
// bench:compare catches one. Each timed run of that backend is followed, inside the timed part,
// by a busy wait of (factor − 1) times the run's own time.
import { benchName } from "./_config.ts";

/** The slowdown BENCH_INJECT_SLOWDOWN asks for, if any. */
export function injectedSlowdown():
  | {
    backend: string;
    factor: number;
    of(backend: { name: string }): boolean;
    wait(elapsedMs: number): void;
  }
  | undefined {
  const value = Deno.env.get("BENCH_INJECT_SLOWDOWN");
  if (!value) return undefined;
  const [backend, factorText] = value.split("=");
  const factor = Number(factorText);
  if (!backend || !(factor >= 1)) {
    throw new Error(`BENCH_INJECT_SLOWDOWN: expected backend=factor (factor ≥ 1), got ${value}`);
  }
  Deno.stderr.writeSync(
    new TextEncoder().encode(`[bench] BENCH_INJECT_SLOWDOWN: ${backend} made ${factor}× slower\n`),
  );
  return {
    backend,
    factor,
    of: (b) => b.name === backend || benchName(b) === backend,
    wait(elapsedMs: number) {
      const until = performance.now() + (factor - 1) * elapsedMs;
      while (performance.now() < until) { /* a slower engine */ }
    },
  };
}

// The jobs of the bench, and what each runs by default. BENCH_PROFILE picks one (main by
// default); BENCH_SIZES, BENCH_BACKENDS, BENCH_LOSSES, BENCH_BUDGET_S and BENCH_PYTORCH override
// its choices one by one. Shared by run.ts, losses_bench.ts and the tests.

/** A job of the bench: what it runs and where its results go. */
export interface BenchProfile {
  name: "main" | "full" | "ci" | "successors";
  /** One line for `--help` and the report. */
  about: string;
  /** Size names (bench/_config.ts SIZES). */
  sizes: readonly string[];
  /** Loss names (`successors`: the six of bench/_successors.ts), or "all" (the catalog's). */
  losses: readonly string[] | "all";
  /** "all" contenders, or "ours" (our engines, the float64 reference first). */
  backends: "all" | "ours";
  /** Seconds one bench may take (warm-up and samples). */
  budgetS: number;
  /**
   * Timed runs per bench beyond deno bench's own two, when more fit the budget (30 otherwise): the
   * CI job takes many short ones, so that its fastest iterations find quiet moments.
   */
  maxSamples?: number;
  /**
   * Rounds each bench's samples are split into, run interleaved (ABCABC…), so that the fastest
   * iterations come from several moments of the run (1 otherwise).
   */
  rounds?: number;
  /** Whether the PyTorch column is measured. */
  pytorch: boolean;
  /** Whether peak memory at L is measured (when L is selected). */
  memory: boolean;
  /** Whether a run is appended to bench/results/history.jsonl. */
  history: boolean;
  /** File stem under bench/results/: `<output>.json`, `.md`, `.svg`, `.png`, `-tracker.json`. */
  output: string;
}

/** The headline losses: what a face-recognition user picks first. */
export const HEADLINE_LOSSES = ["softmax", "cosFace", "arcFace"] as const;

/** Every job, by name. */
export const PROFILES: Readonly<Record<BenchProfile["name"], BenchProfile>> = {
  main: {
    name: "main",
    about: "the headline losses at M on every backend, beside PyTorch (about 5 min on 2 cores)",
    sizes: ["M"],
    losses: HEADLINE_LOSSES,
    backends: "all",
    budgetS: 8,
    pytorch: true,
    memory: false,
    history: true,
    output: "latest",
  },
  full: {
    name: "full",
    about: "every loss at S, M and L on every backend, PyTorch, peak memory at L (about 45 min)",
    sizes: ["S", "M", "L"],
    losses: "all",
    backends: "all",
    budgetS: 30,
    pytorch: true,
    memory: true,
    history: true,
    output: "full",
  },
  ci: {
    name: "ci",
    about: "the headline losses at S on our engines only, for bench:compare in CI (under 1 min)",
    sizes: ["S"],
    losses: HEADLINE_LOSSES,
    backends: "ours",
    budgetS: 2,
    maxSamples: 400,
    rounds: 3,
    pytorch: false,
    memory: false,
    history: false,
    output: "ci",
  },
  successors: {
    name: "successors",
    about:
      "the six successor losses (issue 13) at S, M and L on our engines, beside PyTorch rows " +
      "written after each official code (opt-in: bench:successors)",
    sizes: ["S", "M", "L"],
    losses: ["successors"],
    backends: "ours",
    budgetS: 8,
    pytorch: true,
    memory: false,
    history: false,
    output: "successors",
  },
};

/** The variables that change a job's selection; a run with any of them set is a custom run. */
export const SELECTION_VARIABLES = [
  "BENCH_SIZES",
  "BENCH_BACKENDS",
  "BENCH_LOSSES",
  "BENCH_BUDGET_S",
  "BENCH_INJECT_SLOWDOWN",
] as const;

/** The job BENCH_PROFILE names; `main` when it is unset. */
export function activeProfile(): BenchProfile {
  const name = Deno.env.get("BENCH_PROFILE") || "main";
  const profile = PROFILES[name as BenchProfile["name"]];
  if (!profile) {
    throw new Error(`BENCH_PROFILE: unknown ${name}; known: ${Object.keys(PROFILES).join(", ")}`);
  }
  return profile;
}

/**
 * Where a run of `profile` writes, and whether it joins the history: a run whose selection the
 * environment changed writes `<output>-custom.*` and leaves the job's own results and the history
 * alone.
 */
export function outputOf(
  profile: BenchProfile,
): { output: string; history: boolean; custom: string[] } {
  const custom = SELECTION_VARIABLES.filter((v) => Deno.env.get(v));
  return custom.length
    ? { output: `${profile.output}-custom`, history: false, custom }
    : { output: profile.output, history: profile.history, custom };
}

// Every engine and peer, on every head-loss fixture case, in its own precision, against the
// float64 PyTorch values, within the tolerance of testing/tolerances.ts.
import { fixtureCases } from "../testing/fixtures.ts";
import { checkCase } from "../testing/parity.ts";
import { CONTENDERS } from "./registry.ts";
import { toleranceOf } from "../testing/tolerances.ts";

/** Prints one line per skip reason: how many cases and which. */
function reportSkips(backend: string, skips: Map<string, string[]>) {
  for (const [reason, names] of skips) {
    const shown = names.slice(0, 3).join(", ") + (names.length > 3 ? ", …" : "");
    console.log(`${backend}: skips ${names.length} case(s), ${reason} (${shown})`);
  }
}

Deno.test("parity: every engine and peer matches the PyTorch fixtures", async (t) => {
  const cases = fixtureCases();
  if (cases.length === 0) throw new Error("the fixture manifest has no cases");
  for (const backend of CONTENDERS) {
    const availability = await backend.availability();
    if (!availability.available) {
      console.log(`${backend.name}: unavailable, skipped: ${availability.reason}`);
      await t.step({ name: backend.name, ignore: true, fn: () => {} });
      continue;
    }
    const tolerance = toleranceOf(backend);
    await t.step(`${backend.name} (${backend.precision}, rtol ${tolerance.rtol})`, async (t) => {
      const started = performance.now();
      const skips = new Map<string, string[]>();
      const worst = new Map<string, { rel: number; where: string }>();
      let ran = 0;
      for (const c of cases) {
        const parity = await checkCase(backend, c, tolerance);
        if (parity.skipped) {
          skips.set(parity.skipped, [...(skips.get(parity.skipped) ?? []), c.name]);
          continue;
        }
        ran++;
        for (const [output, rel] of Object.entries(parity.errors)) {
          if (rel! >= (worst.get(c.loss)?.rel ?? 0)) {
            worst.set(c.loss, { rel: rel!, where: `${c.name} ${output}` });
          }
        }
        await t.step(c.name, () => {
          if (parity.failures.length) throw new Error(parity.failures.join("; "));
        });
      }
      reportSkips(backend.name, skips);
      for (const [loss, w] of worst) {
        console.log(
          `${backend.name} ${loss}: worst relative error ${w.rel.toExponential(2)} (${w.where})`,
        );
      }
      if (ran === 0) throw new Error(`${backend.name} ran no fixture case`);
      console.log(
        `${backend.name}: ${ran} cases in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    });
  }
});

// One probe of the skip rule, in its own process so that a backend that cannot hold a size (a
// WebAssembly abort, an out-of-memory GPU) fails here and not inside the bench process.
// Usage: deno run -A bench/_probe.ts BACKEND LOSS SIZE → prints {"warmRunMs": …, "peakRssMiB": …}
// on stdout; the peak is the whole process's (bench/peak_memory.ts).
import { prepareBenchHead } from "./_prepared.ts";
import { findBackend, SIZES } from "./_config.ts";
import { peakRssMiB } from "./_peak_rss.ts";
import { findBenchLoss } from "./_successors.ts";

const [backendName, lossName, sizeName] = Deno.args;
const backend = findBackend(backendName);
const loss = findBenchLoss(lossName);
const size = SIZES.find((s) => s.name === sizeName);
if (!backend || !loss || !size) throw new Error(`usage: _probe.ts BACKEND LOSS SIZE`);
const availability = await backend.availability();
if (!availability.available) throw new Error(availability.reason);
const prepared = await prepareBenchHead(backend, loss.head(size), size);
await prepared.run();
const t = performance.now();
await prepared.run();
const warmRunMs = performance.now() - t;
await prepared.dispose();
console.log(JSON.stringify({ warmRunMs, peakRssMiB: await peakRssMiB() }));

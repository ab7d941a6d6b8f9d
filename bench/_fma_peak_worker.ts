// One core's share of bench/_fma_peak.ts: instantiates the loop's module (once) and answers each
// { binary, n } with the milliseconds of n iterations.
type Peak = (n: number, p: number) => number;
let peak: Peak | undefined;

self.onmessage = async (e: MessageEvent<{ binary: Uint8Array; n: number }>) => {
  if (!peak) {
    const module = await WebAssembly.compile(e.data.binary as BufferSource);
    const instance = await WebAssembly.instantiate(module, { env: { abort: () => {} } });
    const exports = instance.exports as { peak: Peak; memory: WebAssembly.Memory };
    new Float32Array(exports.memory.buffer, 1024, 128).fill(0.5);
    peak = exports.peak;
  }
  const t = performance.now();
  peak!(e.data.n, 1024);
  self.postMessage(performance.now() - t);
};

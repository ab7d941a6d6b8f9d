/**
 * This process's peak resident set size in MiB: the kernel's VmHWM, the figure `/usr/bin/time -v`
 * reports as "Maximum resident set size" (threads and workers included). Undefined off Linux.
 */
export async function peakRssMiB(): Promise<number | undefined> {
  try {
    const kib = (await Deno.readTextFile("/proc/self/status")).match(/^VmHWM:\s*(\d+) kB/m)?.[1];
    return kib ? Number(kib) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

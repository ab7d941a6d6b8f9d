// A worker of the parallel machine probe (bench/_machine_probe.ts): one product per message.
/// <reference lib="deno.worker" />
import { product } from "./_machine_probe.ts";

self.onmessage = () => self.postMessage(product());

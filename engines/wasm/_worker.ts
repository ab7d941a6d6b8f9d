// One thread of engine-wasm's pool (a Web Worker, or a node:worker_threads worker): runs the heads
// attached to it (_thread.ts). Replies carry the head's id.
import { threadScope } from "../platform.ts";
import { type AttachMessage, attachThread, runThread, type ThreadHead } from "./_thread.ts";

const attached = new Map<number, ThreadHead>();
const scope = threadScope();

scope.listen((data) => {
  const message = data as Record<string, unknown>;
  const id = message.id as number;
  try {
    if (message.type === "attach") {
      attached.set(id, attachThread(message as unknown as AttachMessage));
    } else if (message.type === "detach") return void attached.delete(id);
    else if (message.type === "run") {
      const head = attached.get(id);
      if (!head) throw new Error(`head ${id} is not attached to this worker`);
      runThread(head, message.params as number);
    }
    scope.post({ type: "done", id });
  } catch (error) {
    scope.post({
      type: "error",
      id,
      message: error instanceof Error ? error.message : String(error),
    });
  }
});

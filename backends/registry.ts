// Every backend the parity tests and the benches iterate over. Registering here is all it takes.
import type { Backend } from "./backend.ts";
import { referenceBackend } from "./reference.ts";

/** All known backends, the reference first. */
export const BACKENDS: Backend[] = [referenceBackend];

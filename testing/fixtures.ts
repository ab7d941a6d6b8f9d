// Reads fixtures/manifest.json and the float64 arrays it points into (see fixtures/FORMAT.md).
const root = new URL("../fixtures/", import.meta.url);

/** Where an array lives in a data file. */
export interface ArrayRef {
  file: string;
  offset: number;
  shape: number[];
}

/** One fixture case, as the generator wrote it. */
export interface FixtureCase {
  name: string;
  loss: string;
  options: Record<string, unknown>;
  inputDtype: "float64" | "float32";
  N: number;
  D: number;
  C: number;
  tags: string[];
  arrays: Record<string, ArrayRef>;
}

let manifest: FixtureCase[] | undefined;
const files = new Map<string, Float64Array>();

/** Every case of the manifest. */
export function fixtureCases(): FixtureCase[] {
  manifest ??= JSON.parse(Deno.readTextFileSync(new URL("manifest.json", root))).cases;
  return manifest!;
}

/** One array of a case, as float64. */
export function fixtureArray(c: FixtureCase, name: string): Float64Array {
  const ref = c.arrays[name];
  if (!ref) throw new Error(`fixture ${c.name} has no array ${name}`);
  let data = files.get(ref.file);
  if (!data) {
    const bytes = Deno.readFileSync(new URL(ref.file, root));
    data = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
    files.set(ref.file, data);
  }
  const size = ref.shape.reduce((a, b) => a * b, 1);
  return data.subarray(ref.offset, ref.offset + size);
}

/** An input array of a case in the precision the case asks for. */
export function fixtureInput(c: FixtureCase, name: string): Float64Array | Float32Array {
  const values = fixtureArray(c, name);
  return c.inputDtype === "float32" ? Float32Array.from(values) : Float64Array.from(values);
}

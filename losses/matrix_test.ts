import assert from "node:assert";
import { matrix } from "./matrix.ts";

Deno.test("matrix keeps typed arrays, copies plain arrays, and checks its shape", () => {
  const f32 = new Float32Array(6);
  assert.equal(matrix(2, 3, f32).data, f32);
  const plain = [1, 2, 3, 4];
  const m = matrix(2, 2, plain);
  assert.ok(m.data instanceof Float64Array);
  plain[0] = 9;
  assert.equal(m.data[0], 1);
  assert.deepEqual(Array.from(matrix(1, 2).data), [0, 0]);
  assert.throws(() => matrix(0, 2), /matrix: rows must be a positive integer, got 0/);
  assert.throws(() => matrix(2, 1.5), /matrix: cols must be a positive integer, got 1.5/);
});

Deno.test("matrix names a misplaced data array briefly, not element by element", () => {
  const data = new Float32Array(6);
  assert.throws(
    () => matrix(data as unknown as number, 2, data),
    (e: Error) =>
      e.message ===
        "matrix: rows must be a positive integer, got Float32Array of 6 elements " +
          "(the arguments are rows, cols, data)",
  );
});

import assert from "node:assert";
import { chebyshev, psi, targetFunction } from "./target.ts";

Deno.test("chebyshev: T_m(cos θ) = cos(mθ) and its slope m·sin(mθ)/sin θ", () => {
  for (let m = 0; m <= 6; m++) {
    for (const theta of [0.1, 0.7, 1.5, 2.2, 3.0]) {
      const t = chebyshev(m, Math.cos(theta));
      assert.ok(Math.abs(t.value - Math.cos(m * theta)) < 1e-12, `T_${m}`);
      const slope = m * Math.sin(m * theta) / Math.sin(theta);
      assert.ok(Math.abs(t.slope - slope) < 1e-10 * Math.max(1, Math.abs(slope)), `T'_${m}`);
    }
  }
});

Deno.test("psi is continuous and decreasing in θ across its kπ/m steps", () => {
  for (const m of [1, 2, 3, 4, 5]) {
    let previous = Infinity;
    for (let step = 0; step <= 2000; step++) {
      const value = psi(m, Math.cos(Math.PI * step / 2000)).value;
      assert.ok(value <= previous + 1e-12, `ψ_${m} increases at step ${step}`);
      previous = value;
    }
    for (let k = 1; k < m; k++) {
      const at = (theta: number) => psi(m, Math.cos(theta)).value;
      const edge = k * Math.PI / m;
      assert.ok(Math.abs(at(edge - 1e-9) - at(edge + 1e-9)) < 1e-7, `ψ_${m} jumps at k=${k}`);
    }
  }
});

Deno.test("the angular target's two forms agree: m1 = 1 without acos, and the general one", () => {
  const exact = targetFunction(
    { kind: "angular", m1: 1, m2: 0.5, m3: 0.1, fallback: "none" },
    "exact",
  );
  const general = targetFunction(
    { kind: "angular", m1: 1 + 1e-15, m2: 0.5, m3: 0.1, fallback: "none" },
    "exact",
  );
  for (const c of [-0.99, -0.3, 0, 0.4, 0.95]) {
    assert.ok(Math.abs(exact(c).value - general(c).value) < 1e-12);
    assert.ok(Math.abs(exact(c).slope - general(c).slope) < 1e-9);
  }
});

Deno.test("insightface's fallback and the easy margin switch where the references switch", () => {
  const m = 0.5;
  const arc = targetFunction(
    { kind: "angular", m1: 1, m2: m, m3: 0, fallback: "insightface" },
    "exact",
  );
  const beyond = Math.cos(Math.PI - m) - 1e-6;
  assert.ok(Math.abs(arc(beyond).value - (beyond - m * Math.sin(m))) < 1e-15);
  assert.equal(arc(beyond).slope, 1);
  const easy = targetFunction({ kind: "angular", m1: 1, m2: m, m3: 0, fallback: "easy" }, "exact");
  assert.deepEqual(easy(-0.2), { value: -0.2, slope: 1 });
  assert.ok(Math.abs(easy(0.2).value - Math.cos(Math.acos(0.2) + m)) < 1e-15);
});

Deno.test("detached targets keep the value and report slope 1", () => {
  const margin = { kind: "psi", margin: 4, lambda: 2 } as const;
  const exact = targetFunction(margin, "exact"), detached = targetFunction(margin, "detached");
  for (const c of [-0.7, 0.1, 0.9]) {
    assert.equal(detached(c).value, exact(c).value);
    assert.equal(detached(c).slope, 1);
  }
});

Deno.test("slopes stay finite at c = ±1 exactly", () => {
  for (const fallback of ["none", "insightface", "easy"] as const) {
    const f = targetFunction({ kind: "angular", m1: 1.2, m2: 0.5, m3: 0, fallback }, "exact");
    for (const c of [-1, 1]) assert.ok(Number.isFinite(f(c).slope), `${fallback} at ${c}`);
  }
});

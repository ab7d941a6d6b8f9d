// A head description is checked field by field: every malformed head is an error naming the field,
// in checkHeadSpec and in the reference that uses it.
import assert from "node:assert";
import type { HeadSpec } from "./head_spec.ts";
import { HEAD_CATALOG } from "./catalog.ts";
import { arcFaceHead } from "./arcface.ts";
import { sphereFaceHead } from "./sphereface.ts";
import { marginSoftmaxLoss } from "./margin_softmax.ts";
import { matrix } from "./matrix.ts";
import { checkHeadSpec } from "./_head_spec_check.ts";

const ANGULAR = {
  name: "custom",
  logits: "angular",
  radius: { kind: "scale", scale: 30 },
  margin: { kind: "angular", m1: 1, m2: 0.5, m3: 0, fallback: "insightface" },
  marginGradient: "exact",
} as const;
const PSI = {
  ...ANGULAR,
  radius: { kind: "featureNorm" },
  margin: { kind: "psi", margin: 4, lambda: 0 },
} as const;

/** (what, head, the message after "<where>: "). */
const BAD_HEADS: [string, unknown, RegExp][] = [
  ["null", null, /^head must be an object, got null$/],
  ["a string", "arcFace", /^head must be an object, got "arcFace"$/],
  ["an empty head", {}, /^head\.logits must be one of "linear", "angular", got undefined$/],
  [
    "a bogus logits kind",
    { ...ANGULAR, logits: "bogus" },
    /^head\.logits must be one of "linear", "angular", got "bogus"$/,
  ],
  ["no name", { logits: "linear" }, /^head\.name must be a non-empty string, got undefined$/],
  ["an empty name", { ...ANGULAR, name: "" }, /^head\.name must be a non-empty string, got ""$/],
  [
    "a linear head with a margin",
    { name: "softmax", logits: "linear", margin: { kind: "none" } },
    /^head has an unknown field "margin"; a linear head has "name", "logits"$/,
  ],
  [
    "a misplaced scale",
    { ...ANGULAR, scale: 64 },
    /^head has an unknown field "scale"; an angular head has "name", "logits", "radius", "margin", "marginGradient"$/,
  ],
  [
    "no radius",
    { ...ANGULAR, radius: undefined },
    /^head\.radius must be an object, got undefined$/,
  ],
  [
    "an unknown radius",
    { ...ANGULAR, radius: { kind: "bogus" } },
    /^head\.radius\.kind must be one of "scale", "featureNorm", "normProduct", got "bogus"$/,
  ],
  ...[NaN, Infinity, -Infinity, 0, -1, "64"].map((scale): [string, unknown, RegExp] => [
    `scale ${String(scale)}`,
    { ...ANGULAR, radius: { kind: "scale", scale } },
    new RegExp(
      `^head\\.radius\\.scale must be a finite number > 0, got ${
        typeof scale === "string" ? `"${scale}"` : String(scale)
      }$`,
    ),
  ]),
  [
    "a scale on a norm radius",
    { ...ANGULAR, radius: { kind: "featureNorm", scale: 2 } },
    /^head\.radius has an unknown field "scale"; a "featureNorm" radius has "kind"$/,
  ],
  ["no margin", { ...ANGULAR, margin: undefined }, /^head\.margin must be an object/],
  [
    "an unknown margin",
    { ...ANGULAR, margin: { kind: "bogus" } },
    /^head\.margin\.kind must be one of "none", "angular", "psi", got "bogus"$/,
  ],
  ...([
    ["m1", 0, "a finite number > 0"],
    ["m1", NaN, "a finite number > 0"],
    ["m1", -1, "a finite number > 0"],
    ["m2", -0.1, "an angle in radians in \\[0, π\\)"],
    ["m2", Math.PI, "an angle in radians in \\[0, π\\)"],
    ["m2", 28.6, "an angle in radians in \\[0, π\\)"],
    ["m2", Infinity, "an angle in radians in \\[0, π\\)"],
    ["m3", -0.1, "in \\[0, 1\\]"],
    ["m3", 1.5, "in \\[0, 1\\]"],
    ["m3", NaN, "in \\[0, 1\\]"],
  ] as const).map(([field, value, text]): [string, unknown, RegExp] => [
    `${field} ${value}`,
    { ...ANGULAR, margin: { ...ANGULAR.margin, [field]: value } },
    new RegExp(`^head\\.margin\\.${field} must be ${text}, got ${value}$`),
  ]),
  [
    "an unknown fallback",
    { ...ANGULAR, margin: { ...ANGULAR.margin, fallback: "bogus" } },
    /^head\.margin\.fallback must be one of "none", "insightface", "easy", got "bogus"$/,
  ],
  [
    "no fallback",
    { ...ANGULAR, margin: { kind: "angular", m1: 1, m2: 0.5, m3: 0 } },
    /^head\.margin\.fallback must be one of "none", "insightface", "easy", got undefined$/,
  ],
  ...[2.5, -2, 0, 17, NaN].map((m): [string, unknown, RegExp] => [
    `psi margin ${m}`,
    { ...PSI, margin: { kind: "psi", margin: m, lambda: 0 } },
    new RegExp(`^head\\.margin\\.margin must be an integer from 1 to 16, got ${m}$`),
  ]),
  ...[-1, NaN, Infinity].map((lambda): [string, unknown, RegExp] => [
    `lambda ${lambda}`,
    { ...PSI, margin: { kind: "psi", margin: 4, lambda } },
    new RegExp(`^head\\.margin\\.lambda must be a finite number ≥ 0, got ${lambda}$`),
  ]),
  [
    "an angular field on a psi margin",
    { ...PSI, margin: { kind: "psi", margin: 4, lambda: 0, m2: 0.5 } },
    /^head\.margin has an unknown field "m2"; a "psi" margin has "kind", "margin", "lambda"$/,
  ],
  [
    "a bogus margin gradient",
    { ...ANGULAR, marginGradient: "bogus" },
    /^head\.marginGradient must be one of "exact", "detached", got "bogus"$/,
  ],
  [
    "no margin gradient",
    { ...ANGULAR, marginGradient: undefined },
    /^head\.marginGradient must be one of "exact", "detached", got undefined$/,
  ],
];

function input() {
  return {
    features: matrix(2, 3, [1, 2, 3, -1, 0.5, 2]),
    weights: matrix(4, 3, [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]),
    labels: [0, 3],
  };
}

Deno.test("checkHeadSpec accepts every head of the catalog and returns an equal copy", () => {
  for (const entry of HEAD_CATALOG) {
    const margins = entry.name === "softmax" || entry.name === "normFace"
      ? [{}]
      : [{}, { marginGradient: "detached" }];
    for (const options of margins) {
      const head = entry.head(options);
      const checked = checkHeadSpec("test", head);
      assert.deepStrictEqual(checked, head);
      assert.notStrictEqual(checked, head);
    }
  }
  for (const head of [ANGULAR, PSI, { ...PSI, radius: { kind: "normProduct" } }]) {
    assert.deepStrictEqual(checkHeadSpec("test", head), head);
  }
});

Deno.test("checkHeadSpec's copy does not follow later changes to the caller's head", () => {
  const head = arcFaceHead({ margin: 0.5 });
  const checked = checkHeadSpec("test", head);
  if (head.logits !== "angular" || head.margin.kind !== "angular") throw new Error("not ArcFace");
  head.margin.m2 = 3;
  assert.ok(checked.logits === "angular" && checked.margin.kind === "angular");
  assert.equal(checked.margin.m2, 0.5);
});

Deno.test("checkHeadSpec rejects every malformed head, naming the field and what it takes", async (t) => {
  for (const [what, head, message] of BAD_HEADS) {
    await t.step(what, () => {
      assert.throws(() => checkHeadSpec("someEngine", head), (e: Error) => {
        assert.ok(e instanceof TypeError || e instanceof RangeError, String(e));
        assert.match(e.message, /^someEngine: /);
        assert.match(e.message.slice("someEngine: ".length), message);
        return true;
      });
    });
  }
});

Deno.test("marginSoftmaxLoss refuses the same heads, never returns a silent result", async (t) => {
  for (const [what, head, message] of BAD_HEADS) {
    await t.step(what, () => {
      const name = head !== null && typeof head === "object" &&
          typeof (head as { name?: unknown }).name === "string" &&
          (head as { name: string }).name !== ""
        ? `${(head as { name: string }).name}Loss`
        : "marginSoftmaxLoss";
      assert.throws(() => marginSoftmaxLoss(input(), head as HeadSpec), (e: Error) => {
        assert.ok(e.message.startsWith(`${name}: `), e.message);
        assert.match(e.message.slice(name.length + 2), message);
        return true;
      });
    });
  }
});

Deno.test("a checked head computes exactly what the loss page computes", () => {
  const head = sphereFaceHead({ margin: 3, lambda: 2 });
  const spelled: HeadSpec = JSON.parse(JSON.stringify(head));
  assert.deepStrictEqual(marginSoftmaxLoss(input(), spelled), marginSoftmaxLoss(input(), head));
});

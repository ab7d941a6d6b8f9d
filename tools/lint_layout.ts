/**
 * The project's layout rules, as `deno lint` rules (deno.json "lint.plugins"):
 * - `import-direction`: folders import in one direction — losses/ ← engines/ ← adapters/, train/
 *   ← bench/, demo/, plots/ — and product code never imports testing/ or tools/.
 * - `private-import`: a `_`-prefixed file is imported only from its own folder.
 * - `max-function-lines`: no function in engines/ longer than 80 lines.
 *
 * @module
 */

/** Folders in dependency order: a folder may import only from folders before it (and itself). */
const LAYERS: string[][] = [
  ["losses"],
  ["engines"],
  ["adapters", "train"],
  ["testing"],
  ["charts", "bench", "demo", "plots", "tools"],
];
const MAX_FUNCTION_LINES = 80;

function layerOf(folder: string): number {
  return LAYERS.findIndex((layer) => layer.includes(folder));
}

/** The path of `file` relative to the repository root (the folder above tools/). */
function relative(file: string): string {
  const root = new URL("../", import.meta.url).pathname;
  return file.startsWith(root) ? file.slice(root.length) : file;
}

function resolved(importer: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  return relative(new URL(specifier, `file://${importer}`).pathname);
}

const isTest = (path: string) => /_test\.ts$/.test(path) || path.startsWith("testing/");

function checkImport(context: Deno.lint.RuleContext, node: Deno.lint.Node, specifier: string) {
  const importer = relative(context.filename);
  const target = resolved(context.filename, specifier);
  if (!target) return;
  const from = importer.split("/")[0], to = target.split("/")[0];
  const fromLayer = layerOf(from), toLayer = layerOf(to);
  if (
    to === "testing" && !isTest(importer) && !["bench", "demo", "plots", "tools"].includes(from)
  ) {
    context.report({
      node,
      message: `product code (${importer}) imports test helpers (${target})`,
    });
  } else if (fromLayer >= 0 && toLayer > fromLayer && !(isTest(importer) && to === "testing")) {
    context.report({
      node,
      message: `${from}/ must not import ${to}/ (${target}): folders import in one direction`,
    });
  }
}

function checkPrivate(context: Deno.lint.RuleContext, node: Deno.lint.Node, specifier: string) {
  const target = resolved(context.filename, specifier);
  if (!target) return;
  const name = target.split("/").pop()!;
  const folder = (path: string) => path.split("/").slice(0, -1).join("/");
  if (name.startsWith("_") && folder(target) !== folder(relative(context.filename))) {
    context.report({ node, message: `${target} is private to ${folder(target)}/` });
  }
}

type ImportLike = { source?: { value: unknown } | null };

function importVisitor(
  context: Deno.lint.RuleContext,
  check: typeof checkImport,
): Deno.lint.LintVisitor {
  const visit = (node: Deno.lint.Node) => {
    const value = (node as unknown as ImportLike).source?.value;
    if (typeof value === "string") check(context, node, value);
  };
  return {
    ImportDeclaration: visit,
    ExportNamedDeclaration: visit,
    ExportAllDeclaration: visit,
  };
}

function functionLength(context: Deno.lint.RuleContext): Deno.lint.LintVisitor {
  if (!relative(context.filename).startsWith("engines/")) return {};
  const visit = (node: Deno.lint.Node) => {
    const [start, end] = node.range;
    const lines = context.sourceCode.text.slice(start, end).split("\n").length;
    if (lines > MAX_FUNCTION_LINES) {
      context.report({
        node,
        message: `a function of ${lines} lines (at most ${MAX_FUNCTION_LINES} in engines/)`,
      });
    }
  };
  return {
    FunctionDeclaration: visit,
    FunctionExpression: visit,
    ArrowFunctionExpression: visit,
  };
}

const plugin: Deno.lint.Plugin = {
  name: "layout",
  rules: {
    "import-direction": { create: (context) => importVisitor(context, checkImport) },
    "private-import": { create: (context) => importVisitor(context, checkPrivate) },
    "max-function-lines": { create: functionLength },
  },
};

export default plugin;

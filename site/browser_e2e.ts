/**
 * The page in a real browser: Debian's chromium, headless, driven over the DevTools protocol by
 * puppeteer-core (no browser download), against site/serve.ts on 127.0.0.1. It checks what a
 * person would see: the environment (cross-origin isolated, engine-wasm on worker threads,
 * engine-webgpu on SwiftShader's adapter), each engine's parity on the fixture cases, the
 * decision boundaries, the digits trained in the page past 90 % test accuracy, and the bench
 * table filled; and writes screenshots of each section to docs/site_*.png.
 *
 * Run: `deno task bundle && deno test -A site/browser_e2e.ts` (`CHROMIUM` names another binary).
 * Not a `_test.ts` file, so `deno task test` (read-only permissions) leaves it out.
 *
 * @module
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type ElementHandle, type Page } from "puppeteer-core";
import { buildBundles } from "./build.ts";
import { serveSite } from "./serve.ts";
import type { SiteResults } from "./page.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const DOCS = new URL("../docs/", import.meta.url);
/** The digits run the test asks for: ArcFace reaches 93–96 % from epoch 35 on (tfjs-wasm). */
const DIGITS = { loss: "arcFace", epochs: 60 };

const results = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as { siteResults: SiteResults }).siteResults);

async function runSection(page: Page, id: string, timeoutMs: number) {
  await page.click(`#${id} button.run`);
  await page.waitForFunction(
    (selector: string) =>
      ["done", "failed"].includes(
        document.querySelector<HTMLElement>(selector)?.dataset.state ?? "",
      ),
    { timeout: timeoutMs, polling: 250 },
    `#${id}`,
  );
  const state = await page.$eval(`#${id}`, (e) => (e as HTMLElement).dataset.state);
  assert.equal(state, "done", `section #${id} ended ${state}: ${(await results(page)).errors}`);
}

async function screenshot(page: Page, id: string, file: string) {
  const element = await page.$(`#${id}`) as ElementHandle<Element>;
  await element.screenshot({ path: decodeURIComponent(new URL(file, DOCS).pathname) });
}

Deno.test({
  name: "the page in headless chromium: parity, boundaries, digits, bench",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const built = await buildBundles();
    console.log(`bundles built in ${built.seconds.toFixed(1)} s`);
    const server = await serveSite(0);
    let browser: Browser | undefined;
    try {
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--headless=new",
          "--enable-unsafe-webgpu",
          "--use-webgpu-adapter=swiftshader",
          "--no-sandbox",
          "--no-first-run",
          "--disable-dev-shm-usage",
        ],
      });
      const page = await browser.newPage();
      await page.setViewport({ width: 1100, height: 900 });
      page.on("pageerror", (error) => console.error(`page error: ${error}`));
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.waitForFunction(() => document.body.dataset.state, { timeout: 60_000 });

      await t.step(
        "environment: isolated, engine-wasm on workers, WebGPU on SwiftShader",
        async () => {
          const { environment, errors } = await results(page);
          assert.deepEqual(errors, []);
          console.log(JSON.stringify(environment, null, 2));
          assert.equal(environment!.isolated, true);
          assert.match(
            environment!.engines.join("\n"),
            /engine-wasm: available, \d+ worker threads? by default \(Web Workers\)/,
          );
          assert.match(environment!.engines.join("\n"), /engine-webgpu: available/);
          assert.match(environment!.adapter, /swiftshader/i);
          await screenshot(page, "environment", "site_environment.png");
        },
      );

      await t.step("parity of each engine on the fixture cases", async () => {
        await runSection(page, "parity", 90_000);
        const cells = (await results(page)).parity!;
        for (const cell of cells) {
          console.log(
            `${cell.engine.padEnd(14)} ${cell.case.padEnd(32)} ${
              cell.error?.toExponential(2) ?? cell.note
            }`,
          );
        }
        for (const engine of ["reference", "engine-wasm", "engine-webgpu"]) {
          const mine = cells.filter((c) => c.engine === engine);
          assert.equal(mine.length, 6, engine);
          for (const c of mine) assert.ok(c.ok, `${engine} ${c.case}: ${c.error ?? c.note}`);
        }
        await screenshot(page, "parity", "site_parity.png");
      });

      await t.step("decision boundaries follow the sliders", async () => {
        await page.select("#boundaries select[name=loss]", "cosFace");
        await page.$eval("#boundaries input[name=margin]", (input) => {
          (input as HTMLInputElement).value = "0.5";
          input.dispatchEvent(new Event("input", { bubbles: true }));
        });
        const { boundaries } = await results(page);
        assert.equal(boundaries!.loss, "cosFace");
        assert.equal(boundaries!.options.margin, 0.5);
        // CosFace: cos θ₂ = cos θ₁ ∓ m, a gap of 2m = 1 in cosine space at any cos θ₁.
        assert.ok(Math.abs(boundaries!.gapCosine - 1) < 1e-6, String(boundaries!.gapCosine));
        await page.select("#boundaries select[name=loss]", "arcFace");
        const arc = (await results(page)).boundaries!;
        // ArcFace m=0.5: θ₂ − θ₁ = ±m, a gap of 2m = 57.3° in angle space.
        assert.ok(Math.abs(arc.gapDegrees - 2 * 0.5 * 180 / Math.PI) < 0.5, String(arc.gapDegrees));
        await screenshot(page, "boundaries", "site_boundaries.png");
      });

      await t.step(`digits: ${DIGITS.loss} for ${DIGITS.epochs} epochs past 90 %`, async () => {
        await page.select("#digits select[name=loss]", DIGITS.loss);
        await page.$eval("#digits input[name=epochs]", (input, epochs) => {
          (input as HTMLInputElement).value = String(epochs);
        }, DIGITS.epochs);
        await runSection(page, "digits", 120_000);
        const { digits } = await results(page);
        const last = digits!.epochs.at(-1)!;
        console.log(
          `digits: epoch ${last.epoch}, test accuracy ${(100 * last.accuracy).toFixed(1)} %, ${
            last.seconds.toFixed(1)
          } s`,
        );
        assert.equal(last.epoch, DIGITS.epochs);
        assert.ok(last.accuracy > 0.9, `test accuracy ${last.accuracy}`);
        await screenshot(page, "digits", "site_digits.png");
      });

      await t.step(
        "bench: every engine and backend of the browser at S, M where quick",
        async () => {
          await page.click("#bench input[name=quick]");
          await runSection(page, "bench", 150_000);
          const { bench } = await results(page);
          console.log(`bench in ${bench!.browser}, WebGPU ${bench!.adapter}`);
          for (const row of bench!.rows) {
            const ms = ["S", "M"].map((s) => (row.ms[s]?.toFixed(1) ?? "—").padStart(8)).join(" ");
            console.log(`${row.engine.padEnd(14)} ${ms}  ${row.note}`);
          }
          const ran = (name: string) => bench!.rows.find((r) => r.engine === name)?.ms.S;
          for (
            const name of ["reference", "engine-wasm", "engine-webgpu", "tfjs-wasm", "ort-wasm"]
          ) {
            assert.ok(ran(name)! > 0, `${name} has no S time`);
          }
          await screenshot(page, "bench", "site_bench.png");
        },
      );

      await t.step(
        "not cross-origin isolated: engine-wasm on the page's thread, same parity",
        async () => {
          const plain = await browser!.newPage();
          await plain.goto(`http://127.0.0.1:${server.addr.port}/?isolation=off`);
          await plain.waitForFunction(() => document.body.dataset.state, { timeout: 60_000 });
          const { environment } = await results(plain);
          assert.equal(environment!.isolated, false);
          const wasm = environment!.engines.find((line) => line.startsWith("engine-wasm"))!;
          console.log(wasm);
          assert.match(
            wasm,
            /available, one thread, the calling one: this page is not cross-origin/,
          );
          await runSection(plain, "parity", 90_000);
          const cells = (await results(plain)).parity!.filter((c) => c.engine === "engine-wasm");
          assert.equal(cells.length, 6);
          for (const c of cells) assert.ok(c.ok, `${c.case}: ${c.error ?? c.note}`);
          await plain.close();
        },
      );
    } finally {
      await browser?.close();
      await server.shutdown();
    }
  },
});

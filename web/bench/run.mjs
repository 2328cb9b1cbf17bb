// The page driver of `loadtest --browser` (loadtest/browser.rs), which
// starts it as `node bench/run.mjs '<config JSON>'` from web/: serves
// bench/page.html and the built SDK (dist/) over http://127.0.0.1, opens
// the page in the system's headless Chromium through puppeteer-core, runs
// the customers in it with the config, and prints one JSON line on
// stdout: {"ok":true,"value":<what the page observed>} or
// {"ok":false,"error":"..."}. It closes Chromium and exits when its stdin
// closes (loadtest gave up, or ended).

import puppeteer from "puppeteer-core";
import { pageServer } from "../test/pages.mjs";

const config = JSON.parse(process.argv[2] ?? "null");

const server = pageServer("bench/page.html");

let browser = null;
let ending = false;
async function end(code) {
  if (ending) return;
  ending = true;
  await browser?.close().catch(() => {});
  server.close();
  process.exit(code);
}
process.stdin.on("end", () => end(1));
process.stdin.resume();

const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

try {
  if (config === null) throw new Error("usage: node bench/run.mjs '<config JSON>' (loadtest --browser starts it)");
  await new Promise((ready) => server.listen(0, "127.0.0.1", ready));
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // Chromium exits with this process.
    pipe: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      // A headless page is never in the foreground: keep its timers and
      // its renderer at full speed.
      "--disable-background-timer-throttling",
      "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows",
    ],
  });
  const page = await browser.newPage();
  page.on("console", (msg) => process.stderr.write(`[page] ${msg.text()}\n`));
  page.on("pageerror", (err) => process.stderr.write(`[page error] ${err}\n`));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.benchReady === true, { timeout: 10_000 });
  await page.evaluate((config) => window.bench.start(config), config);
  for (;;) {
    await new Promise((wake) => setTimeout(wake, 200));
    const { done, error } = await page.evaluate(() => window.bench.state());
    if (error !== null) throw new Error(`in the page: ${error}`);
    if (done) break;
  }
  say({ ok: true, value: await page.evaluate(() => window.bench.result()) });
  await end(0);
} catch (err) {
  say({ ok: false, error: String(err?.stack ?? err) });
  await end(1);
}

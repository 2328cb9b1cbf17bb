// Drives the SDK in a real headless Chromium for tests/browser.rs: serves
// this folder's page and the built SDK over http://127.0.0.1, opens the
// page with the system's Chromium through puppeteer-core, and answers
// commands given as JSON lines on stdin with JSON lines on stdout:
//   {"cmd":"call","fn":"start","args":["support","Ada","Hi"]}
//   -> {"ok":true,"value":...} or {"ok":false,"error":"..."}
// where fn is one of window.harness's functions (page.html), or "reload"
// to load the page again. It exits when stdin closes. The page is served
// on the port CHATHUB_PAGE_PORT names (any free one without it), so a
// test can allow its origin.
//
// Given a URL (`node test/driver.mjs http://127.0.0.1:4480/`), it opens
// that page instead, one holding the chat widget, and drives it as a
// person would, through the widget's shadow root ("#chathub-widget >>>
// selector"): "click" [selector], "type" [selector, text], "press" [key],
// "text" [selector] (its text, "" if there is none), "hidden" [selector],
// "screenshot" [path]. A URL of the agent console (`.../console`) is
// driven the same way, with plain selectors (the console has no shadow
// root), and also "select" [selector, value], "attrs" [selector, name]
// (that attribute of every match, e.g. each message's data-seq),
// "texts" [selector] (the text of every match), "upload" [selector, path]
// (chooses that file in a file input), "focused" [selector] (whether the
// console element with the keyboard focus matches it) and "download" [selector,
// folder] (clicks what starts a download, waits until the file is saved
// into the folder, and answers its path).

import { createInterface } from "node:readline";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { pageServer } from "./pages.mjs";

const server = pageServer("test/page.html");
await new Promise((ready) => server.listen(Number(process.env.CHATHUB_PAGE_PORT ?? 0), "127.0.0.1", ready));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // Over a pipe, Chromium exits with this process, also when the test
  // kills it.
  pipe: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage();
page.on("console", (msg) => process.stderr.write(`[page] ${msg.text()}\n`));
page.on("pageerror", (err) => process.stderr.write(`[page error] ${err}\n`));
page.on("response", (res) => {
  if (res.status() >= 400) process.stderr.write(`[page] ${res.status()} ${res.url()}\n`);
});
const widgetPage = process.argv[2];
const consolePage = widgetPage !== undefined && new URL(widgetPage).pathname.startsWith("/console");
const inWidget = (selector) => (consolePage ? selector : `#chathub-widget >>> ${selector}`);
const ready = () =>
  widgetPage === undefined
    ? page.waitForFunction(() => window.harnessReady === true, { timeout: 10_000 })
    : page.waitForSelector(inWidget(consolePage ? ".signin, .desk" : ".launcher"), { timeout: 10_000 });
await page.setViewport(consolePage ? { width: 1280, height: 800 } : { width: 800, height: 700 });
await page.goto(widgetPage ?? `${origin}/`);
await ready().catch(async (err) => {
  process.stderr.write(`[driver] the page is not ready: ${(await page.content()).slice(0, 2000)}\n`);
  throw err;
});

/** The widget's commands: what a person does with it, and what they see. */
const widget = {
  async click(selector) {
    await page.click(inWidget(selector));
  },
  async type(selector, text) {
    await page.type(inWidget(selector), text);
  },
  async press(key) {
    await page.keyboard.press(key);
  },
  async text(selector) {
    const node = await page.$(inWidget(selector));
    return node === null ? "" : node.evaluate((n) => n.textContent ?? "");
  },
  async hidden(selector) {
    const node = await page.$(inWidget(selector));
    return node === null ? true : node.evaluate((n) => n.closest("[hidden]") !== null);
  },
  async screenshot(path) {
    await page.screenshot({ path });
  },
  async select(selector, value) {
    await page.select(inWidget(selector), value);
  },
  async attrs(selector, name) {
    return page.$$eval(inWidget(selector), (nodes, name) => nodes.map((n) => n.getAttribute(name)), name);
  },
  async texts(selector) {
    return page.$$eval(inWidget(selector), (nodes) => nodes.map((n) => n.textContent ?? ""));
  },
  async focused(selector) {
    return page.evaluate((selector) => document.activeElement?.matches(selector) ?? false, selector);
  },
  async upload(selector, path) {
    const input = await page.$(inWidget(selector));
    if (input === null) throw new Error(`no ${selector}`);
    await input.uploadFile(path);
  },
  async download(selector, folder) {
    const cdp = await browser.target().createCDPSession();
    await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: folder, eventsEnabled: true });
    const names = new Map();
    const saved = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no download in 20 s")), 20_000);
      cdp.on("Browser.downloadWillBegin", (event) => names.set(event.guid, event.suggestedFilename));
      cdp.on("Browser.downloadProgress", (event) => {
        if (event.state === "completed") {
          clearTimeout(timer);
          resolve(join(folder, names.get(event.guid)));
        } else if (event.state === "canceled") {
          clearTimeout(timer);
          reject(new Error("the download was canceled"));
        }
      });
    });
    await page.click(inWidget(selector));
    try {
      return await saved;
    } catch (err) {
      // What the page says instead, if anything.
      const errors = await page.$$eval(inWidget(".error"), (nodes) => nodes.map((n) => n.textContent).filter(Boolean));
      throw new Error(`${err.message}; the page says ${JSON.stringify(errors)}`);
    } finally {
      await cdp.detach().catch(() => {});
    }
  },
};

const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
say({ ok: true, value: "ready" });

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    const { fn, args } = JSON.parse(line);
    if (fn === "reload") {
      await page.reload();
      await ready();
      say({ ok: true, value: null });
      continue;
    }
    if (widgetPage !== undefined) {
      say({ ok: true, value: (await widget[fn](...(args ?? []))) ?? null });
      continue;
    }
    const value = await page.evaluate((fn, args) => window.harness[fn](...args), fn, args ?? []);
    say({ ok: true, value: value ?? null });
  } catch (err) {
    say({ ok: false, error: String(err?.message ?? err) });
  }
}
await browser.close();
server.close();

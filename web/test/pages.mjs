// A static server of one page and the built SDK (dist/) over
// http://127.0.0.1, for the scripts that open pages in Chromium
// (test/driver.mjs, bench/run.mjs).

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

/** A server (not yet listening) of `page` (a path under web/) at `/` and of dist/. */
export function pageServer(page) {
  return createServer(async (req, res) => {
    const path = normalize(new URL(req.url, "http://x").pathname);
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    const file = path === "/" ? page : path.slice(1);
    if (!(file === page || file.startsWith("dist/"))) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(root, file));
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
}

// Where tsgi's own files are, whether this code runs from src/ (through tsx) or from the
// bundle in dist/ (scripts/build-js.mjs): the package root is the nearest folder above that
// holds tsgi's package.json.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "tsgi") return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("tsgi: cannot find the package root above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const ROOT = findRoot();
/** The `tsgi` command, which is also every worker's entry point. */
export const BIN = join(ROOT, "bin", "tsgi.js");

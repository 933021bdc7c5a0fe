#!/usr/bin/env node
// The `tsgi` command, and every worker's entry point. It runs tsgi from dist/tsgi.mjs when
// that bundle is at least as new as every file in src/ (`npm run build:js`, and `npm
// install`'s prepare when it is not), else from src/ through tsx; a site's TypeScript
// application gets tsx either way (src/daemon/app.ts registers it when this file did not).
// SIGUSR1 reopens the log files (logrotate), never Node's inspector: without a listener, Node
// opens a debugger on 127.0.0.1:9229 on that signal, which run as root is a way in. The
// listener goes first, before anything else loads; the master and workers add the real one.
process.on("SIGUSR1", () => undefined);

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleIsFresh } from "../scripts/bundle-fresh.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

if (process.env.TSGI_FROM_SOURCE !== "1" && bundleIsFresh(root)) {
  const { start } = await import("../dist/tsgi.mjs");
  await start();
} else {
  // Both halves of tsx, as src/daemon/app.ts registers them for a TypeScript site, which
  // reads this flag: with the ESM half alone, an ESM-syntax .js or a .ts site outside an ESM
  // package fails in Node's CommonJS loader.
  const [esm, cjs] = await Promise.all([import("tsx/esm/api"), import("tsx/cjs/api")]);
  esm.register();
  cjs.register();
  globalThis[Symbol.for("tsgi.tsx-registered")] = true;
  const { start } = await import("../src/main.ts");
  await start();
}

// `npm run build:js` (and `prepare` with --if-stale, so that `npm ci`/`npm install`/`npm pack`
// build only when src/ changed since the last build), with esbuild (which tsx brings):
//   dist/tsgi.mjs      tsgi itself (src/main.ts): the CLI, the master, the workers. Without it,
//                      bin/tsgi.js loads src/ through tsx, whose keepNames wraps every closure
//                      of the request path in a defineProperty call (measured: 11.7 -> 9.1 us
//                      per request in the gateway), and whose loader thread costs every worker
//                      memory even when the site's application is plain JS.
//   dist/index.mjs     the package's face (src/index.ts), `import … from "tsgi"`,
//   dist/index.cjs     and `require("tsgi")`: JavaScript applications need no TypeScript loader.
//   dist/types/        its .d.ts files (tsc), with relative specifiers ending in .js.
// The face is a bundle of its own, so an application holds a second copy of the modules it
// shares with dist/tsgi.mjs: whatever both must see (request_finished's listeners) lives on
// globalThis under Symbol.for keys, never in a module's variables alone.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleIsFresh } from "./bundle-fresh.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
if (process.argv.includes("--if-stale") && bundleIsFresh(root)) process.exit(0);
const { build } = await import("esbuild");
const common = { bundle: true, platform: "node", target: "node20", packages: "external", sourcemap: "linked", logLevel: "warning" };

await Promise.all([
  build({ ...common, entryPoints: [join(root, "src", "index.ts")], outfile: join(root, "dist", "index.mjs"), format: "esm" }),
  // CommonJS has no import.meta: the one use (the file's own URL, from which tsgi finds its
  // package root and resolves tsx) reads __filename instead.
  build({
    ...common,
    entryPoints: [join(root, "src", "index.ts")],
    outfile: join(root, "dist", "index.cjs"),
    format: "cjs",
    define: { "import.meta.url": "__tsgiFileUrl" },
    banner: { js: 'const __tsgiFileUrl = require("node:url").pathToFileURL(__filename).href;' },
  }),
]);

// The declarations, from the same sources: tsc writes the `.ts` specifiers src/ uses; a
// consumer resolves `.js` to the .d.ts beside it under every moduleResolution.
const types = join(root, "dist", "types");
rmSync(types, { recursive: true, force: true });
const tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
const run = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.types.json")], { stdio: "inherit" });
if (run.status !== 0) process.exit(run.status ?? 1);
for (const entry of readdirSync(types, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
  const file = join(entry.parentPath, entry.name);
  writeFileSync(file, readFileSync(file, "utf8").replace(/(from\s+|import\()(["'])(\.{1,2}\/[^"']*)\.ts\2/g, "$1$2$3.js$2"));
}

// Last, so that its mtime (what bundle-fresh.mjs compares) says every output above is done.
await build({ ...common, entryPoints: [join(root, "src", "main.ts")], outfile: join(root, "dist", "tsgi.mjs"), format: "esm" });

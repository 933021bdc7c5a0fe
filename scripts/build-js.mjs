// `npm run build:js` (and `prepare` with --if-stale, so that `npm ci`/`npm install` bundle
// only when src/ changed since the last bundle): bundles tsgi's own TypeScript into
// dist/tsgi.mjs with esbuild (which tsx brings). Without the bundle, bin/tsgi.js loads src/
// through tsx, whose keepNames wraps every closure of the request path in a defineProperty
// call (measured: 11.7 -> 9.1 us per request in the gateway), and whose loader thread costs
// every worker memory even when the site's application is plain JS.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleIsFresh } from "./bundle-fresh.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
if (process.argv.includes("--if-stale") && bundleIsFresh(root)) process.exit(0);
const { build } = await import("esbuild");
await build({
  entryPoints: [join(root, "src", "main.ts")],
  outfile: join(root, "dist", "tsgi.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
});

// `npm run prebuild` (and `prepack`, so every `npm pack`/`npm publish` carries it): builds the
// addon for this platform with prebuildify into prebuilds/<platform>-<arch>/, where
// node-gyp-build finds it (src/native.ts), so installing the package needs no compiler.
// It is a Node-API build: one file serves every Node from 20 on. prebuildify runs `node-gyp
// rebuild`, which empties build/ first, so it builds in a copy of the sources, never in this
// checkout's build/ (a running tsgi, and other worktrees, load the addon there).
// Beside the addon goes the stamp scripts/install.mjs compares with the sources in the
// package: a prebuild made from other sources is never used, install builds instead.
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sourceStamp } from "./native-stamp.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = `${process.platform}-${process.arch}`;
const out = join(root, "prebuilds", target);
const work = mkdtempSync(join(tmpdir(), "tsgi-prebuild-"));
try {
  for (const f of ["binding.gyp", "package.json"]) cpSync(join(root, f), join(work, f));
  cpSync(join(root, "native"), join(work, "native"), { recursive: true, filter: (src) => !src.startsWith(join(root, "native", "fuzz")) });
  mkdirSync(join(work, "node_modules"));
  symlinkSync(join(root, "node_modules", "node-addon-api"), join(work, "node_modules", "node-addon-api"));

  // Offline: Node's headers from its installation (Debian's nodejs: /usr/include/node), as
  // scripts/install.mjs does; node-gyp from npm's own copy when npm runs this.
  const prefix = dirname(dirname(process.execPath));
  const env = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? prefix };
  const nodeGyp = process.env.npm_config_node_gyp;
  if (nodeGyp) {
    const bin = join(work, ".bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "node-gyp"), `#!/bin/sh\nexec "${process.execPath}" "${nodeGyp}" "$@"\n`, { mode: 0o755 });
    env.PREBUILD_NODE_GYP = join(bin, "node-gyp");
  }
  const prebuildify = createRequire(join(root, "package.json")).resolve("prebuildify/bin.js");
  rmSync(out, { recursive: true, force: true });
  const run = spawnSync(process.execPath, [prebuildify, "--napi", "--strip", "--target", process.versions.node, "--cwd", work, "--out", root], { env, stdio: "inherit" });
  if (run.status !== 0) {
    console.error("tsgi: prebuildify failed; no prebuild written");
    process.exit(run.status ?? 1);
  }
  const built = readdirSync(out).filter((f) => f.endsWith(".node"));
  writeFileSync(join(out, "tsgi.stamp"), `${sourceStamp(root)}\n`);
  console.log(`tsgi: prebuilt ${built.map((f) => join("prebuilds", target, f)).join(", ")}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

// npm's `install` script (and `npm run build:native`, which passes --force): builds the addon
// build/Release/tsgi.node with npm's own node-gyp, only when it is missing or was built from
// something else. What it was built from is a stamp beside it: a hash of binding.gyp, the C
// and C++ files under native/, node-addon-api's version and the running Node's ABI (modules,
// N-API, platform, arch), written once a build succeeded. The build is `node-gyp configure`
// then `build`, never `rebuild` (which deletes build/ first): make replaces tsgi.node only as
// its last step, so an interrupted build leaves the addon that worked. `--inputs` prints what
// the stamp hashes, as JSON.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256, sourceInputs, sourceStamp } from "./native-stamp.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const release = join(root, "build", "Release");
const addon = join(release, "tsgi.node");
const stampFile = join(release, "tsgi.node.stamp");

function stampInputs() {
  return {
    node: {
      modules: process.versions.modules,
      napi: process.versions.napi,
      platform: process.platform,
      arch: process.arch,
    },
    ...sourceInputs(root),
  };
}

/**
 * The prebuilt addon the package carries for this platform (scripts/prebuild.mjs, found at run
 * time by node-gyp-build), when it was built from these very sources and loads in this Node:
 * then installing builds nothing and needs no compiler.
 */
function usablePrebuild() {
  const dir = join(root, "prebuilds", `${process.platform}-${process.arch}`);
  let files;
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".node"));
    if (readFileSync(join(dir, "tsgi.stamp"), "utf8").trim() !== sourceStamp(root)) return null;
  } catch {
    return null;
  }
  for (const f of files) {
    const path = join(dir, f);
    const probe = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(path)})`], { stdio: "ignore" });
    if (probe.status === 0) return path;
  }
  return null;
}

// Offline: node-gyp downloads Node's headers unless it is told where they are. npm passes the
// `nodedir` of its config when there is one; else the running Node's own headers, where its
// installation has them (Debian's nodejs: /usr/include/node).
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = dirname(dirname(realpathSync(process.execPath)));
  return existsSync(join(prefix, "include", "node", "node_api.h")) ? [`--nodedir=${prefix}`] : [];
}

function nodeGyp(...args) {
  // npm names its bundled node-gyp in every script's environment.
  const bundled = process.env.npm_config_node_gyp;
  const [command, ...pre] = bundled ? [process.execPath, bundled] : ["node-gyp"];
  const run = spawnSync(command, [...pre, ...args, ...nodedirArgs()], { cwd: root, stdio: "inherit" });
  if (run.error) {
    console.error(`tsgi: cannot run node-gyp (${run.error.message}): run this through npm (npm install, npm run build:native), which brings its own`);
    process.exit(1);
  }
  if (run.status !== 0) {
    console.error(`tsgi: node-gyp ${args[0]} failed; build/Release/tsgi.node, if there was one, is still the one built before (npm run build:native compiles every file again)`);
    process.exit(1);
  }
}

if (process.argv.includes("--inputs")) {
  console.log(JSON.stringify(stampInputs(), null, 2));
  process.exit(0);
}

const force = process.argv.includes("--force");
if (!force && !existsSync(addon)) {
  const prebuilt = usablePrebuild();
  if (prebuilt) {
    console.log(`tsgi: using the prebuilt addon ${prebuilt.slice(root.length + 1)} (nothing to build)`);
    process.exit(0);
  }
}
const stamp = sha256(JSON.stringify(stampInputs()));
const built = existsSync(addon) && existsSync(stampFile) ? readFileSync(stampFile, "utf8").trim() : null;
if (!force && built === stamp) {
  console.log("tsgi: build/Release/tsgi.node is up to date (binding.gyp, native/ and Node's ABI unchanged)");
  process.exit(0);
}
if (force) {
  // Every object again, but tsgi.node stays until the new one replaces it.
  for (const dir of ["obj.target", ".deps"]) rmSync(join(release, dir), { recursive: true, force: true });
}
nodeGyp("configure");
nodeGyp("build", "--jobs", "max");
writeFileSync(`${stampFile}.tmp`, `${stamp}\n`);
renameSync(`${stampFile}.tmp`, stampFile);

// What the native addon is built from: binding.gyp, the C and C++ files under native/ and
// node-addon-api's version. scripts/install.mjs stamps a local build with this and the
// running Node's ABI; scripts/prebuild.mjs stamps a prebuild with this alone (a Node-API
// build runs on every Node from the one it names on).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const SOURCE = /\.(c|cc|cpp|h|hh|hpp)$/;

export const sha256 = (data) => createHash("sha256").update(data).digest("hex");

export function sourceInputs(root) {
  const native = readdirSync(join(root, "native"), { recursive: true }).filter((p) => SOURCE.test(p));
  const files = ["binding.gyp", ...native.map((p) => join("native", p))].sort();
  return {
    "node-addon-api": createRequire(join(root, "package.json"))("node-addon-api/package.json").version,
    files: Object.fromEntries(files.map((f) => [f, sha256(readFileSync(join(root, f)))])),
  };
}

export const sourceStamp = (root) => sha256(JSON.stringify(sourceInputs(root)));

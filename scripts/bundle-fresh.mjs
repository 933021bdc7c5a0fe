// Whether dist/tsgi.mjs is at least as new as every file in src/: bin/tsgi.js runs tsgi from
// that bundle only then (else from src/ through tsx), and `prepare` (scripts/build-js.mjs
// --if-stale) bundles again only otherwise, so both agree on what "fresh" means.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export function bundleIsFresh(root) {
  let built;
  try {
    built = statSync(join(root, "dist", "tsgi.mjs")).mtimeMs;
  } catch {
    return false;
  }
  for (const entry of readdirSync(join(root, "src"), { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && statSync(join(entry.parentPath, entry.name)).mtimeMs > built) return false;
  }
  return true;
}

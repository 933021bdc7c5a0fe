// Where tsgi's own files are. This module runs from src/ (through tsx) or from the bundle
// dist/tsgi.mjs (scripts/build-js.mjs): both one level below the package root.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The `tsgi` command, which is also every worker's entry point. */
export const BIN = join(ROOT, "bin", "tsgi.js");

// Writes docs/errors.md from the catalogue in src/errors.ts (`node --import tsx
// scripts/errors-doc.ts`); test/unit/errors.test.ts fails when the file is stale.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ERRORS } from "../src/errors.ts";

export function errorsDoc(): string {
  const lines = [
    "# Error codes",
    "",
    "Every error tsgi logs or raises carries one of these codes (generated from `src/errors.ts`",
    "by `node --import tsx scripts/errors-doc.ts`; do not edit by hand).",
    "",
  ];
  for (const [code, spec] of Object.entries(ERRORS)) {
    const s = spec as { message: string; httpStatus?: number; protocolStatus?: number; fix: string };
    lines.push(`### ${code}`, "", `Message: ${s.message}`, "");
    if (s.httpStatus !== undefined) lines.push(`HTTP status: ${s.httpStatus}`, "");
    if (s.protocolStatus !== undefined) lines.push(`FastCGI protocolStatus: ${s.protocolStatus}`, "");
    lines.push(`How to fix: ${s.fix}`, "");
  }
  return lines.join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL("../docs/errors.md", import.meta.url), errorsDoc());
}

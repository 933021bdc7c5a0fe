// `npm test`: runs vitest and closes with the plain summary line `N passed, M failed` taken
// from vitest's JSON results (CI reads that line; vitest's own summary is not read as one).
// Extra arguments go to vitest (`npm test -- test/codec`).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "tsgi-test-"));
const results = join(dir, "results.json");
const run = spawnSync(
  process.execPath,
  ["node_modules/vitest/vitest.mjs", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${results}`, ...process.argv.slice(2)],
  { stdio: "inherit" },
);

let passed = 0;
let failed = 0;
try {
  const json = JSON.parse(readFileSync(results, "utf8"));
  passed = json.numPassedTests;
  // A file that failed to load ran no test: it counts as one failure.
  const brokenFiles = json.testResults.filter(
    (file) => file.status === "failed" && !file.assertionResults.some((t) => t.status === "failed"),
  ).length;
  failed = json.numFailedTests + brokenFiles;
} catch (err) {
  console.error(`no vitest results (${err.message})`);
  failed = 1;
}
rmSync(dir, { recursive: true, force: true });

console.log(`${passed} passed, ${failed} failed`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);

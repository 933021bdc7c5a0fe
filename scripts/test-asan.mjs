// `npm run test:asan`: the addon built with AddressSanitizer (cmake-js into build-asan/) and
// the codec, unit and integration tests run against it — every worker of every `tsgi serve`
// the tests start loads the same build (TSGI_NATIVE and LD_PRELOAD are inherited).
import { execFileSync, spawnSync } from "node:child_process";

const run = (cmd, args, env = process.env) => {
  const r = spawnSync(cmd, args, { stdio: "inherit", env });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

run("npx", ["cmake-js", "compile", "--out", "build-asan"], { ...process.env, CXXFLAGS: "-fsanitize=address -fno-omit-frame-pointer -g" });
const libasan = execFileSync("gcc", ["-print-file-name=libasan.so"], { encoding: "utf8" }).trim();
// Left out: the tests whose work is npm, tsc and the front servers' own checks (packing and
// installing, the docs' blocks, a new project's install), not requests through the addon —
// under LD_PRELOAD every npm and tsc they start would run instrumented. `npm test` runs them.
const NOT_NATIVE = ["package", "docs", "startproject", "conf-examples-coverage"].flatMap((t) => ["--exclude", `test/integration/${t}.test.ts`]);
run("npx", ["vitest", "run", "test/codec", "test/unit", "test/integration", ...NOT_NATIVE, ...process.argv.slice(2)], {
  ...process.env,
  LD_PRELOAD: libasan,
  // Node itself is not built for LeakSanitizer: leaks would be Node's, not ours.
  ASAN_OPTIONS: "detect_leaks=0:abort_on_error=1",
  TSGI_NATIVE: new URL("../build-asan/Release/tsgi.node", import.meta.url).pathname,
});

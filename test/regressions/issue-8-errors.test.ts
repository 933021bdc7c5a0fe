// Issue 8, point 6: errors a user can read. Each failure of `tsgi serve` is one line with its
// code (and the file and line where it applies), never a raw stack of tsgi's own code: a bad
// --user / --group / --socket-owner / --socket-group, an application with a syntax error
// (.mjs and .ts), an application whose top level throws (then followed by the application's
// own frames only), a TCP port in use, a reload with a broken application (one "reload
// failed; the old workers keep serving" line, never "site … failed", the old code serving
// on), and no doubled prefixes. The listening lines are error-log lines. `--version` prints
// package.json's version; `--help` and `--version` work in an install without the native
// addon, where serving is one TSGI_ERR_NATIVE_LOAD line that says how to build it. Each case
// runs on the checkout's `tsgi` and on an install that runs from the bundle dist/tsgi.mjs
// (built here, as `npm install` builds it), where the raw stacks used to come from.

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { BIN, lines, poll, ROOT, runTsgi, serve, stopAll, type Exit, type SpawnOptions } from "./support/serve.ts";

const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const ADDON = ["build/Release/tsgi.node", "build-cmake/Release/tsgi.node", "build-cmake/tsgi.node", "build/Debug/tsgi.node"].map((p) => join(ROOT, p)).find(existsSync)!;

let tmp: string;
/** A folder without package.json (CommonJS by Node's rules) holding the applications below. */
let bare: string;
/** A folder whose package.json says "type": "module". */
let esm: string;
/** An install of tsgi that runs from dist/tsgi.mjs and has no build/ (no native addon). */
let install: string;
/** The same without dist/: it runs from src/ through tsx. */
let sourceInstall: string;

/**
 * An install as npm makes one: package.json and what its "files" lists (bin/, src/, scripts…),
 * dependencies, no build/ (no addon); with `bundle`, dist/tsgi.mjs built by scripts/build-js.mjs
 * (as `prepare` does) and src/main.ts replaced by one that fails, made older than the bundle:
 * a run from source instead would show it. Without `bundle`, no dist/: it runs from src/.
 */
function makeInstall(dir: string, bundle: boolean): string {
  mkdirSync(dir);
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { files: string[] };
  for (const part of ["package.json", ...pkg.files]) {
    // No prebuilt addon either (npm pack leaves one in prebuilds/): an install without any.
    if (part === "dist" || part === "prebuilds" || !existsSync(join(ROOT, part))) continue;
    cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  if (!bundle) return dir;
  const built = spawnSync(process.execPath, [join(dir, "scripts", "build-js.mjs")], { cwd: dir, encoding: "utf8" });
  if (built.status !== 0 || !existsSync(join(dir, "dist", "tsgi.mjs"))) throw new Error(`building the bundle failed: ${built.stderr}`);
  writeFileSync(join(dir, "src", "main.ts"), 'throw new Error("ran from src/, not from the bundle");\nexport {};\n');
  const past = new Date(Date.now() - 3600_000);
  utimesSync(join(dir, "src", "main.ts"), past, past);
  return dir;
}

interface Mode {
  name: string;
  options(): SpawnOptions;
}

const MODES: Mode[] = [
  { name: "checkout", options: () => ({ bin: BIN }) },
  // The addon is found through TSGI_NATIVE (the install itself has none).
  { name: "bundle", options: () => ({ bin: join(install, "bin", "tsgi.js"), env: { TSGI_NATIVE: ADDON, TSGI_FROM_SOURCE: null } }) },
];

const ROOT_WARNING = /\[warn\] \[\S+\] running as root without --user/;

type Run = Exit & { stdout: string; stderr: string };

/** No stack of tsgi's own code, of Node's internals or of a bundler; no prefix said twice. */
function expectNoRawStack(text: string): void {
  expect(text).not.toMatch(/dist\/tsgi\.mjs/);
  expect(text).not.toMatch(/node:internal/);
  expect(text).not.toMatch(/node_modules|esbuild/);
  expect(text).not.toMatch(new RegExp(`${ROOT.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/(src|dist|bin)/`));
  expectNoDoubledPrefix(text);
}

function expectNoDoubledPrefix(text: string): void {
  expect(text).not.toMatch(/\b([A-Z][A-Z0-9_]{2,}): \1:/); // EACCES: EACCES:
  expect(text).not.toMatch(/TSGI_ERR_[A-Z_]+: (Error|TypeError|SyntaxError):/);
  expect(text).not.toMatch(/' \+\s*$|^\s*'.*' \+/m); // a message printed as a quoted JS string joined with ' +
}

/**
 * A worker that cannot start is retried with backoff (issue 9): one short warn line per retry,
 * without the error, which is written once when tsgi gives up.
 */
const RETRY = /\[warn\] \[[^\]]+\] worker \d+ could not start; retrying in \d+ ms \(attempt \d+ of \d+\)$/;

/** Exit 1 and one error line (plus at most the root warning and the retry lines) matching `pattern`; no stack. */
function expectOneLine(r: Run, pattern: RegExp, retries = 0): string {
  expect(r.code, r.stderr).toBe(1);
  expect(lines(r.stderr).filter((l) => RETRY.test(l)), r.stderr).toHaveLength(retries);
  const all = lines(r.stderr).filter((l) => !RETRY.test(l));
  const failures = all.filter((l) => !ROOT_WARNING.test(l));
  expect(failures, r.stderr).toHaveLength(1);
  expect(failures[0]).toMatch(pattern);
  expect(all.length).toBeLessThanOrEqual(2);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expectNoRawStack(r.stderr);
  return failures[0]!;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const SYNTAX_MJS = ["export function application(environ, startResponse) {", '  return [ "x" ;', "}", ""].join("\n");
const SYNTAX_TS = [
  'import type { IncomingMessage } from "node:http";',
  "export const application = (environ: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => void) => {",
  '  return [ "x" ;',
  "};",
  "",
].join("\n");
const THROWS_MJS = [
  "const ready = false;",
  "function connectDatabase() {",
  '  throw new Error("database unreachable at boot");',
  "}",
  "connectDatabase();",
  "export function application() {}",
  "",
].join("\n");
const THROWS_TS = [
  "const ready: boolean = false;",
  "function connectDatabase(): never {",
  '  throw new Error("database unreachable at boot");',
  "}",
  "connectDatabase();",
  "export function application(): void {}",
  "",
].join("\n");

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "tsgi-issue8-errors-"));
  bare = join(tmp, "bare");
  esm = join(tmp, "esm");
  for (const d of [bare, esm]) {
    mkdirSync(d);
    writeFileSync(join(d, "syntax.mjs"), SYNTAX_MJS);
    writeFileSync(join(d, "syntax.ts"), SYNTAX_TS);
    writeFileSync(join(d, "throws.mjs"), THROWS_MJS);
    writeFileSync(join(d, "throws.ts"), THROWS_TS);
  }
  writeFileSync(join(esm, "package.json"), JSON.stringify({ name: "esm-site", type: "module" }));

  install = makeInstall(join(tmp, "install"), true);
  sourceInstall = makeInstall(join(tmp, "source-install"), false);
});

afterAll(async () => {
  await stopAll();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.each(MODES)("$name", (mode) => {
  const tsgi = (args: string[], env: Record<string, string | null> = {}) => {
    const o = mode.options();
    return runTsgi(args, { ...o, env: { ...o.env, ...env } });
  };

  describe("a user, group or socket owner that does not exist", () => {
    const cases = [
      { flag: "--user", value: "nosuchuser", key: "user", what: "user" },
      { flag: "--group", value: "nosuchgroup", key: "group", what: "group" },
      { flag: "--socket-owner", value: "nosuchuser", key: "socket-owner", what: "user" },
      { flag: "--socket-group", value: "nosuchgroup", key: "socket-group", what: "group" },
    ];
    for (const c of cases) {
      test.concurrent(`${c.flag} ${c.value}: exit 1 and one TSGI_ERR_CONFIG_INVALID line naming ${c.key}, no stack`, async () => {
        const r = await tsgi(["serve", join(ROOT, "test/regressions/apps/probe.mjs"), "--listen", "http:127.0.0.1:0", c.flag, c.value]);
        expectOneLine(r, new RegExp(`\\[error\\] .*TSGI_ERR_CONFIG_INVALID: ${escape(c.key)}: no ${c.what} "${c.value}" on this machine$`));
      });
    }
  });

  describe("an application that does not import", () => {
    const syntax = [
      { folder: "bare", file: "syntax.mjs", line: 2 },
      { folder: "bare", file: "syntax.ts", line: 3 },
      { folder: "esm", file: "syntax.ts", line: 3 },
    ];
    for (const c of syntax) {
      test.concurrent(`a syntax error in ${c.file} (folder ${c.folder === "bare" ? "without package.json" : 'with "type": "module"'}): one line with the file and line, the SyntaxError once`, async () => {
        const file = join(c.folder === "bare" ? bare : esm, c.file);
        const r = await tsgi(["serve", file, "--listen", "http:127.0.0.1:0", "--run-as-root"]);
        const line = expectOneLine(r, /TSGI_ERR_APP_IMPORT: cannot import the application module/, 4);
        expect(line).toContain(`${file}:${c.line}`);
        expect(r.stderr.match(/SyntaxError/g)).toHaveLength(1);
        expect(r.stderr.match(/TSGI_ERR_APP_IMPORT/g)).toHaveLength(1);
      });
    }

    const throwing = [
      { folder: "bare", file: "throws.mjs" },
      { folder: "bare", file: "throws.ts" },
      { folder: "esm", file: "throws.ts" },
    ];
    for (const c of throwing) {
      test.concurrent(`${c.file} whose top level throws (folder ${c.folder === "bare" ? "without package.json" : 'with "type": "module"'}): one TSGI_ERR_APP_IMPORT line with the message once, then only the application's frames`, async () => {
        const file = join(c.folder === "bare" ? bare : esm, c.file);
        const r = await tsgi(["serve", file, "--listen", "http:127.0.0.1:0", "--run-as-root"]);
        expect(r.code, r.stderr).toBe(1);
        expect(lines(r.stderr).filter((l) => RETRY.test(l)), r.stderr).toHaveLength(4);
        const all = lines(r.stderr).filter((l) => !RETRY.test(l));
        const frames = all.filter((l) => /^\s+at /.test(l));
        const rest = all.filter((l) => !/^\s+at /.test(l));
        expect(rest, r.stderr).toHaveLength(1);
        expect(rest[0]).toMatch(/\[error\] .*TSGI_ERR_APP_IMPORT: cannot import the application module .*database unreachable at boot/);
        expect(r.stderr.match(/database unreachable at boot/g)).toHaveLength(1);
        expect(frames.length, r.stderr).toBeGreaterThanOrEqual(1);
        expect(frames.length).toBeLessThanOrEqual(10);
        for (const f of frames) expect(f).toContain(file);
        expect(frames.some((f) => f.includes(`${file}:3:`))).toBe(true);
        // The frames follow their error line.
        expect(all.indexOf(rest[0]!)).toBe(0);
        expectNoRawStack(r.stderr);
      });
    }
  });

  test.concurrent("SIGHUP with a broken application: 'reload failed; the old workers keep serving' with the reason, never 'site … failed', and the old code answers", async () => {
    const folder = join(tmp, `reload-${mode.name}`);
    mkdirSync(folder);
    const app = join(folder, "app.mjs");
    const version = (text: string) =>
      `export function application(environ, startResponse) {\n  startResponse("200 OK", [["Content-Type", "text/plain"]]);\n  return [${JSON.stringify(text)}];\n}\n`;
    writeFileSync(app, version("old code\n"));
    const site = await serve(app, ["--name", "reloading", "--listen", "http:127.0.0.1:0", "--run-as-root"], mode.options());
    const body = async () => {
      const r = await request(`${site.url()}/`);
      expect(r.status).toBe(200);
      return r.body.toString();
    };
    expect(await body()).toBe("old code\n");
    const failures = () => lines(site.stderr()).filter((l) => l.includes("reload failed"));

    // 1. A syntax error.
    writeFileSync(app, SYNTAX_MJS);
    process.kill(site.pid, "SIGHUP");
    await site.waitForLog(/reload failed/, 10_000);
    let [failure] = failures();
    expect(failure).toMatch(/^\S+ \[error\] \[reloading\] reload failed; the old workers keep serving: TSGI_ERR_APP_IMPORT: /);
    expect(failure).toContain(`${app}:2`);
    expect(failure).toMatch(/SyntaxError: Unexpected token/);
    expect(await body()).toBe("old code\n");

    // 2. A top level that throws: the reason and the application's frames, once.
    writeFileSync(app, THROWS_MJS);
    process.kill(site.pid, "SIGHUP");
    await poll("the second reload failure", 10_000, () => failures().length >= 2);
    failure = failures()[1]!;
    expect(failure).toMatch(/reload failed; the old workers keep serving: TSGI_ERR_APP_IMPORT: .*database unreachable at boot/);
    expect(await body()).toBe("old code\n");

    // 3. Fixed: the reload goes through and the new code answers.
    writeFileSync(app, version("new code\n"));
    process.kill(site.pid, "SIGHUP");
    await site.waitForLog(/\[info\] \[reloading\] reloaded: 1 new worker serving/, 10_000);
    expect(await body()).toBe("new code\n");

    const log = site.stderr();
    expect(log).not.toMatch(/site \S+ failed/);
    expect(log.match(/SyntaxError/g)).toHaveLength(1);
    expect(log.match(/database unreachable at boot/g)).toHaveLength(1);
    // Every line is a log line or one of the application's frames under one.
    for (const l of lines(log)) expect(l).toMatch(/^\S+Z \[(info|warn|error)\] \[reloading\] |^    at .*app\.mjs:\d+:\d+\)?$/);
    expectNoRawStack(log);
    expect(await site.stop()).toEqual({ code: 0, signal: null });
  });

  test.concurrent("a TCP port another program holds: one TSGI_ERR_MASTER_LISTEN line", async () => {
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const { port } = other.address() as { port: number };
    try {
      const r = await tsgi(["serve", join(ROOT, "test/regressions/apps/probe.mjs"), "--listen", `http:127.0.0.1:${port}`, "--run-as-root"]);
      expectOneLine(r, new RegExp(`\\[error\\] .*TSGI_ERR_MASTER_LISTEN: cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use$`));
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  test.concurrent("a log file in a folder that does not exist, a bad value: one line each naming the path or the key", async () => {
    const app = join(ROOT, "test/regressions/apps/probe.mjs");
    const missing = join(tmp, "no-such-folder");
    const base = [app, "--listen", "http:127.0.0.1:0", "--run-as-root"];
    const [access, error, processes] = await Promise.all([
      tsgi(["serve", ...base, "--access-log", join(missing, "access.log")]),
      tsgi(["serve", ...base, "--error-log", join(missing, "error.log")]),
      tsgi(["serve", ...base, "--processes", "0"]),
    ]);
    expect(expectOneLine(access, /ENOENT/)).toContain(join(missing, "access.log"));
    expect(expectOneLine(error, /ENOENT/)).toContain(join(missing, "error.log"));
    expectOneLine(processes, /processes must be an integer >= 1/);
  });

  test.concurrent("tsgi --version and -V print package.json's version", async () => {
    for (const flag of ["--version", "-V"]) {
      const r = await tsgi([flag]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${VERSION}\n`);
      expect(r.stderr).toBe("");
    }
  });

  test.concurrent("a site that starts: the listening line is an error-log line in its format, nothing on stdout", async () => {
    const o = mode.options();
    const site = await serve(join(ROOT, "test/regressions/apps/probe.mjs"), ["--name", "fmt", "--listen", "http:127.0.0.1:0", "--run-as-root"], o);
    expect(lines(site.stderr())).toEqual([expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[info\] \[fmt\] listening on http 127\.0\.0\.1:\d+ \(1 worker\)$/)]);
    expect(site.stdout()).toBe("");
    expect((await request(`${site.url()}/info`)).status).toBe(200);
    expect(await site.stop()).toEqual({ code: 0, signal: null });
  });
});

describe("an install without the native addon", () => {
  const runs = [
    { name: "from the bundle", dir: () => install },
    { name: "from source", dir: () => sourceInstall },
  ];

  for (const { name, dir } of runs) {
    test.concurrent(`${name}: --version and serve --help work; serve is one TSGI_ERR_NATIVE_LOAD line saying npm rebuild tsgi`, async () => {
      const run = (args: string[]) => runTsgi(args, { bin: join(dir(), "bin", "tsgi.js"), cwd: tmp, env: { TSGI_NATIVE: null, TSGI_FROM_SOURCE: null } });
      const version = await run(["--version"]);
      expect(version.code, version.stderr).toBe(0);
      expect(version.stdout).toBe(`${VERSION}\n`);
      const help = await run(["serve", "--help"]);
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^Usage: tsgi serve \[options\] <app>/);
      expect(help.stdout).toMatch(/--listen <value>/);
      const served = await run(["serve", join(ROOT, "test/regressions/apps/probe.mjs"), "--listen", "http:127.0.0.1:0", "--run-as-root"]);
      const line = expectOneLine(served, /TSGI_ERR_NATIVE_LOAD/);
      expect(line).toContain("npm rebuild tsgi");
      expect(line).toContain(dir());
    });
  }
});

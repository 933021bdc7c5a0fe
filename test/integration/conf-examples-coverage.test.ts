// The guard over conf-examples/ (DESIGN §5: "the files the integration tests load"): every file
// there is (1) accepted by its own tool and (2) named by a test source under test/ that serves
// it end to end, so that a new example without both fails here.
// (1) By the file's kind: an nginx file (under nginx/, or named nginx.conf) through `nginx -t`,
// a snippet first wrapped in a minimal `events {} http { … }`; an Apache file (under apache/,
// or named apache.conf or httpd.conf) through `apache2 -t`, a snippet after a minimal
// boilerplate; both with their {{…}} placeholders rendered; a .toml file through `tsgi check`,
// its absolute paths moved under a temp folder where they are made to exist; the systemd units
// of a folder together through `systemd-analyze verify` (their /usr/local/bin/tsgi pointed at
// bin/tsgi.js); logrotate/ files through `logrotate -d`; the TypeScript examples through tsc
// with the project's options. A file of no known kind fails.
// (2) A test source names a file as `conf-examples/REL` (braces expanded:
// `host-{a,b}/tsgi.toml`), as join()'s segments after "conf-examples" or CONF_EXAMPLES, or as
// the string "REL" in a source that also says conf-examples (fronts.ts's conf("nginx/…")), and
// counts only if it starts something that serves (spawn, startNginx, startApache,
// startFromFile, startTsgi, startDaemon): a test that only runs a tool's check does not.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { CONF_EXAMPLES } from "../support/conf-example.ts";
import { render } from "../support/front-servers.ts";

const ROOT = join(CONF_EXAMPLES, "..");
const BIN = join(ROOT, "bin", "tsgi.js");
const SELF = relative(ROOT, import.meta.filename);
const tmp = mkdtempSync(join(tmpdir(), "tsgi-confex-coverage-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Every file of conf-examples/, relative to it, with "/" separators. */
const EXAMPLES = walk(CONF_EXAMPLES)
  .map((f) => relative(CONF_EXAMPLES, f).split(sep).join("/"))
  .sort();

type Kind = "nginx" | "apache" | "tsgi" | "systemd" | "logrotate" | "typescript";

function kindOf(rel: string): Kind | null {
  const parts = rel.split("/");
  const name = parts.at(-1)!;
  if (name.endsWith(".conf") && (parts.includes("nginx") || name === "nginx.conf")) return "nginx";
  if (name.endsWith(".conf") && (parts.includes("apache") || name === "apache.conf" || name === "httpd.conf")) return "apache";
  if (name.endsWith(".toml")) return "tsgi";
  if (/\.(service|socket)$/.test(name)) return "systemd";
  if (parts[0] === "logrotate") return "logrotate";
  if (/\.m?ts$/.test(name)) return "typescript";
  return null;
}

// What the snippets' placeholders stand for: nginx -t and apache2 -t bind nothing, so any
// well-formed address does.
const VARS = {
  HOST: "127.0.0.1",
  PORT: 8080,
  DIR: tmp,
  TSGI_FASTCGI: "127.0.0.1:9000",
  TSGI_UWSGI: "127.0.0.1:3031",
  TSGI_FASTCGI_HOST: "127.0.0.1",
  TSGI_FASTCGI_PORT: 9000,
  TSGI_UWSGI_HOST: "127.0.0.1",
  TSGI_UWSGI_PORT: 3031,
};

const out = (r: ReturnType<typeof spawnSync>) => `${r.stdout ?? ""}${r.stderr ?? ""}`;

function checkNginx(rel: string, text: string, dir: string): void {
  let path = join(CONF_EXAMPLES, rel);
  if (!/^events\s*\{/m.test(text)) {
    path = join(dir, "nginx.conf");
    writeFileSync(
      path,
      [
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log;`,
        "events {}",
        "http {",
        `  access_log ${dir}/access.log;`,
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${dir}/${t};`),
        render(text, VARS),
        "}",
        "",
      ].join("\n"),
    );
  }
  const r = spawnSync("nginx", ["-t", "-c", path, "-e", join(dir, "error.log")], { encoding: "utf8" });
  expect(out(r), rel).toMatch(/syntax is ok[\s\S]*test is successful/);
  expect(r.status, rel).toBe(0);
}

const APACHE_MODULES = ["mpm_event", "authz_core", "mime", "proxy", "proxy_fcgi", "proxy_uwsgi", "authnz_fcgi", "auth_basic", "authn_core", "authz_user", "setenvif"];

function checkApache(rel: string, text: string, dir: string): void {
  let path = join(CONF_EXAMPLES, rel);
  if (!/^ServerRoot /m.test(text)) {
    path = join(dir, "httpd.conf");
    writeFileSync(
      path,
      [
        `ServerRoot "${dir}"`,
        `PidFile "${dir}/httpd.pid"`,
        `DefaultRuntimeDir "${dir}"`,
        `ErrorLog "${dir}/error.log"`,
        "Listen 127.0.0.1:8080",
        "ServerName 127.0.0.1",
        ...APACHE_MODULES.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`),
        render(text, VARS),
        "",
      ].join("\n"),
    );
  }
  const r = spawnSync("apache2", ["-t", "-f", path], { encoding: "utf8" });
  expect(out(r), rel).toContain("Syntax OK");
  expect(r.status, rel).toBe(0);
}

// The keys of tsgi.toml that hold filesystem paths (listen's `unix:PATH` too).
const PATH_KEYS = "app|cwd|pidfile|control|error-log|access-log";

function checkTsgi(rel: string, text: string, dir: string): void {
  // Each absolute path moved under `dir`; then what it names is made: the application's
  // module, the working directory, the folder of everything else.
  const root = join(dir, "root");
  const moved = text
    .replace(new RegExp(`^(\\s*(?:${PATH_KEYS})\\s*=\\s*")/`, "gm"), `$1${root}/`)
    .replace(/unix:\//g, `unix:${root}/`);
  for (const m of moved.matchAll(new RegExp(`^\\s*(${PATH_KEYS})\\s*=\\s*"(${root}/[^"]*)"`, "gm"))) {
    const [key, value] = [m[1]!, m[2]!];
    if (key === "cwd") mkdirSync(value, { recursive: true });
    else if (key === "app") {
      const module = value.replace(/:[A-Za-z_$][\w$]*$/, "");
      mkdirSync(dirname(module), { recursive: true });
      writeFileSync(module, "export const application = () => [];\n");
    } else mkdirSync(dirname(value), { recursive: true });
  }
  for (const m of moved.matchAll(new RegExp(`unix:(${root}/[^"]*)`, "g"))) mkdirSync(dirname(m[1]!), { recursive: true });
  // A copy only when a path moved (the examples with absolute paths have no relative one,
  // which would resolve beside the copy); the others are checked in place.
  const file = moved === text ? join(CONF_EXAMPLES, rel) : join(dir, "tsgi.toml");
  if (moved !== text) writeFileSync(file, moved);
  const r = spawnSync(process.execPath, [BIN, "check", "-c", file], { encoding: "utf8" });
  expect(r.stderr, rel).toBe("");
  expect(r.stdout, rel).toMatch(/no problems/);
  expect(r.status, rel).toBe(0);
}

function checkSystemd(rel: string, dir: string): void {
  // The folder's units together: a service names its socket units and the other way round.
  const folder = dirname(join(CONF_EXAMPLES, rel));
  const units = readdirSync(folder).filter((n) => /\.(service|socket)$/.test(n));
  for (const name of units) writeFileSync(join(dir, name), readFileSync(join(folder, name), "utf8").replaceAll("/usr/local/bin/tsgi ", `${BIN} `));
  const r = spawnSync("systemd-analyze", ["verify", ...units.map((n) => join(dir, n))], { encoding: "utf8", timeout: 30_000 });
  expect(out(r), rel).toBe("");
  expect(r.status, rel).toBe(0);
}

function checkLogrotate(rel: string, dir: string): void {
  // -d: parse and say what would be done, touching nothing (a state file of our own).
  const r = spawnSync("logrotate", ["-d", "-s", join(dir, "state"), join(CONF_EXAMPLES, rel)], { encoding: "utf8" });
  expect(out(r), rel).not.toMatch(/error/i);
  expect(r.status, rel).toBe(0);
}

function checkTypescript(rels: string[], dir: string): void {
  // The project's compiler options, on these files and what they import.
  const config = join(dir, "tsconfig.json");
  writeFileSync(
    config,
    JSON.stringify({
      extends: join(ROOT, "tsconfig.json"),
      compilerOptions: { typeRoots: [join(ROOT, "node_modules", "@types")] },
      include: [],
      files: rels.map((r) => join(CONF_EXAMPLES, r)),
    }),
  );
  const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", config], { encoding: "utf8", timeout: 120_000 });
  expect(out(r)).toBe("");
  expect(r.status).toBe(0);
}

const scratch = (rel: string) => {
  const dir = join(tmp, rel.replaceAll("/", "_"));
  mkdirSync(dir, { recursive: true });
  return dir;
};

describe("every file of conf-examples/ passes its tool's check", () => {
  test("every file has a kind a tool checks", () => {
    expect(EXAMPLES.filter((rel) => kindOf(rel) === null)).toEqual([]);
  });

  const byTool = EXAMPLES.filter((rel) => kindOf(rel) !== null && kindOf(rel) !== "typescript");
  test.each(byTool.map((rel) => [kindOf(rel)!, rel] as const))("%s: conf-examples/%s", (kind, rel) => {
    const text = readFileSync(join(CONF_EXAMPLES, rel), "utf8");
    const dir = scratch(rel);
    if (kind === "nginx") checkNginx(rel, text, dir);
    else if (kind === "apache") checkApache(rel, text, dir);
    else if (kind === "tsgi") checkTsgi(rel, text, dir);
    else if (kind === "systemd") checkSystemd(rel, dir);
    else checkLogrotate(rel, dir);
  });

  const ts = EXAMPLES.filter((rel) => kindOf(rel) === "typescript");
  test(`typescript: tsc with the project's options on ${ts.join(", ")}`, () => checkTypescript(ts, scratch("typescript")), 120_000);
});

/** `a/{b,c}/d` → a/b/d, a/c/d. */
function expandBraces(s: string): string[] {
  const m = /\{([^{}]*)\}/.exec(s);
  if (!m) return [s];
  return m[1]!.split(",").flatMap((alt) => expandBraces(s.slice(0, m.index) + alt + s.slice(m.index + m[0].length)));
}

/** The conf-examples/ files a test source names, in any of the three forms. */
function named(text: string): Set<string> {
  const found = new Set<string>();
  for (const m of text.matchAll(/conf-examples\/([\w./{},-]+)/g)) for (const p of expandBraces(m[1]!.replace(/[.,]+$/, ""))) found.add(p);
  for (const m of text.matchAll(/(?:"conf-examples"|CONF_EXAMPLES)((?:\s*,\s*"[^"]+")+)/g)) found.add([...m[1]!.matchAll(/"([^"]+)"/g)].map((s) => s[1]).join("/"));
  if (/conf-examples/.test(text)) for (const m of text.matchAll(/["'`]([\w.-]+(?:\/[\w.-]+)+)["'`]/g)) found.add(m[1]!);
  return found;
}

const SERVES = /\b(?:spawn|startNginx|startApache|startFromFile|startTsgi|startDaemon)\(/;

describe("every file of conf-examples/ is served end to end by a test that names it", () => {
  const sources = walk(join(ROOT, "test"))
    .filter((f) => /\.m?ts$/.test(f) && relative(ROOT, f) !== SELF)
    .map((f) => ({ path: relative(ROOT, f), text: readFileSync(f, "utf8") }))
    .filter((s) => SERVES.test(s.text));
  const names = sources.map((s) => ({ path: s.path, files: named(s.text) }));

  test.each(EXAMPLES)("conf-examples/%s", (rel) => {
    const by = names.filter((n) => n.files.has(rel)).map((n) => n.path);
    expect(by, `no test that serves conf-examples/${rel} names it: add one (or name it in the test that does)`).not.toEqual([]);
  });

  test("the guard sees the tests that serve the examples (a sanity check on its search)", () => {
    const fronts = names.find((n) => n.path === join("test", "integration", "fronts.ts"))!;
    expect([...fronts.files]).toEqual(expect.arrayContaining(["nginx/fastcgi.conf", "apache/proxy-uwsgi.conf"]));
  });
});

// tsgi.toml read by src/daemon/config.ts: inheritance ([defaults] under [site.NAME]), paths
// made absolute against the file's folder, and every kind of problem, each one line naming
// the file, the site and the key, all of them at once; then `tsgi check` through the real
// command, with and without the native addon.
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkConfig, loadConfig } from "../../src/daemon/config.ts";
import type { TsgiError } from "../../src/errors.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A temp folder with `files` (path → content; a path ending in / is a folder); returns its path. */
function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "tsgi-config-"));
  made.push(dir);
  for (const [path, content] of Object.entries(files)) {
    if (path.endsWith("/")) mkdirSync(join(dir, path), { recursive: true });
    else {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
  }
  return dir;
}

/** A tsgi.toml (plus `files`) in a temp folder; returns the file's path. */
function toml(text: string, files: Record<string, string> = {}): string {
  return join(folder({ "tsgi.toml": text, "app.ts": "", ...files }), "tsgi.toml");
}

const SITE = '[site.a]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3031"]\n';

function problems(text: string, files: Record<string, string> = {}): { file: string; problems: string[] } {
  const file = toml(text, files);
  const r = checkConfig(file);
  expect(r.config).toBeNull();
  return { file, problems: r.problems };
}

describe("a valid file", () => {
  it("two sites with [defaults]: inheritance, override, absolute paths, control beside the file", () => {
    const file = toml(
      `error-log = "log/error.log"
[defaults]
processes = 2
request-timeout = "2m"
env = { NODE_ENV = "production" }

[site.blog]
app = "blog/tsgi.ts:application"
listen = ["fastcgi:unix:run/blog.sock", "uwsgi:127.0.0.1:3031"]
cwd = "blog"
access-log = "log/blog.access.log"

[site.shop]
app = "some-package:app"
listen = "uwsgi:0.0.0.0:3032"
allow = ["10.0.0.0/8"]
processes = 4
env = { SHOP = "1" }
access-log = "off"
error-log = "/tmp/shop-error.log"
socket-mode = "0600"
`,
      { "blog/tsgi.ts": "", "run/": "", "log/": "" },
    );
    const dir = dirname(file);
    const config = loadConfig(file);
    expect(config.file).toBe(file);
    expect(config.control).toBe(join(dir, "tsgi.ctl"));
    expect(config.pidfile).toBeNull();
    expect(config.errorLog).toBe(join(dir, "log", "error.log"));
    expect(config.sites.map((s) => s.name)).toEqual(["blog", "shop"]);
    const [blog, shop] = config.sites.map((s) => s.settings);

    expect(blog!.processes).toBe(2); // [defaults]
    expect(shop!.processes).toBe(4); // the site's own
    expect(blog!["request-timeout"]).toBe(120_000);
    expect(blog!["graceful-timeout"]).toBe(30_000); // the table's default, in ms
    expect(blog!.env).toEqual({ NODE_ENV: "production" });
    expect(shop!.env).toEqual({ SHOP: "1" }); // replaced, not merged
    expect(shop!["socket-mode"]).toBe(0o600);
    expect(blog!["socket-mode"]).toBe(0o660);

    expect(blog!.app).toBe(`${join(dir, "blog", "tsgi.ts")}:application`);
    expect(shop!.app).toBe("some-package:app"); // a package specifier as written
    expect(blog!.cwd).toBe(join(dir, "blog"));
    expect(shop!.cwd).toBe(dir); // default: the file's folder
    expect(blog!.listen).toEqual([`fastcgi:unix:${join(dir, "run", "blog.sock")}`, "uwsgi:127.0.0.1:3031"]);
    expect(shop!.listen).toEqual(["uwsgi:0.0.0.0:3032"]);
    expect(blog!["access-log"]).toBe(join(dir, "log", "blog.access.log"));
    expect(shop!["access-log"]).toBe("off");
    expect(blog!["error-log"]).toBe(join(dir, "log", "error.log")); // the daemon's, inherited
    expect(shop!["error-log"]).toBe("/tmp/shop-error.log");
  });

  it("control and pidfile resolve against the file's folder; the control default follows the file's name", () => {
    const dir = folder({ "app.ts": "", "run/": "", "site.toml": `control = "run/ctl.sock"\npidfile = "run/tsgi.pid"\n${SITE}`, "other.toml": SITE });
    const config = loadConfig(join(dir, "site.toml"));
    expect(config.control).toBe(join(dir, "run", "ctl.sock"));
    expect(config.pidfile).toBe(join(dir, "run", "tsgi.pid"));
    expect(loadConfig(join(dir, "other.toml")).control).toBe(join(dir, "other.ctl"));
  });

  it("a relative file name is read from the working directory, and reported absolute", () => {
    const file = toml(SITE);
    const config = loadConfig(relative(process.cwd(), file));
    expect([config.file, config.control, config.sites[0]!.settings.cwd]).toEqual([file, join(dirname(file), "tsgi.ctl"), dirname(file)]);
  });
});

describe("each kind of problem names the file, the site and the key", () => {
  it("a TOML syntax error: one problem with its line and column", () => {
    const { file, problems: p } = problems('[site.a]\napp = "app.ts\n');
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(new RegExp(`^${file}:2:\\d+: TOML syntax error: `));
  });

  it("a file that does not exist", () => {
    const dir = folder({});
    expect(checkConfig(join(dir, "tsgi.toml")).problems).toEqual([`${join(dir, "tsgi.toml")}: no such file`]);
  });

  it("an unknown top-level key, with did-you-mean", () => {
    const { file, problems: p } = problems(`pidfle = "x.pid"\nfrobnicate = 1\n${SITE}`);
    expect(p).toEqual([`${file}: pidfle: unknown key; did you mean \`pidfile\`?`, `${file}: frobnicate: unknown key`]);
  });

  it("an unknown key in [defaults], with did-you-mean", () => {
    const { file, problems: p } = problems(`[defaults]\nproceses = 2\n${SITE}`);
    expect(p).toEqual([`${file}: [defaults]: proceses: unknown key; did you mean \`processes\`?`]);
  });

  it("an unknown key in a site, with did-you-mean (and not for a key far from every other)", () => {
    const { file, problems: p } = problems(`${SITE}max_requests = 10\nvhost = true\n`);
    expect(p).toEqual([`${file}: site a: max_requests: unknown key; did you mean \`max-requests\`?`, `${file}: site a: vhost: unknown key`]);
  });

  it("an unknown top-level table, with did-you-mean", () => {
    const { file, problems: p } = problems(`${SITE}[sites.b]\napp = "app.ts"\n`);
    expect(p).toEqual([`${file}: [sites]: unknown table; did you mean [site]?`]);
  });

  it("a site key at the top level, a daemon key in a site", () => {
    const { file, problems: p } = problems(`processes = 2\n${SITE}control = "x.ctl"\n`);
    expect(p).toEqual([
      `${file}: processes: a site key: put it under [defaults] (for every site) or under [site.NAME]`,
      `${file}: site a: control: only at the top of the file: it belongs to the daemon, not to a site`,
    ]);
  });

  it("app in [defaults]", () => {
    const { file, problems: p } = problems(`[defaults]\napp = "app.ts"\n${SITE}`);
    expect(p).toEqual([`${file}: [defaults]: app: not allowed in [defaults]: each site names its own application`]);
  });

  it("a site without app or listen", () => {
    const { file, problems: p } = problems('[site.a]\nprocesses = 2\n[site.b]\napp = "app.ts"\nlisten = []\n');
    expect(p).toEqual([
      `${file}: site a: app: missing: every site needs app = "MODULE:CALLABLE", or settings = "MODULE" whose TSGI_APPLICATION names it`,
      `${file}: site a: listen: missing: every site needs at least one, listen = ["PROTO:HOST:PORT"] or ["PROTO:unix:PATH"]`,
      `${file}: site b: listen: missing: every site needs at least one, listen = ["PROTO:HOST:PORT"] or ["PROTO:unix:PATH"]`,
    ]);
  });

  it("a site without app whose settings module is nowhere; one whose module is there; settings beside app is only the variable", () => {
    const { file, problems: p } = problems(
      '[site.a]\nsettings = "a/settings"\nlisten = ["uwsgi:127.0.0.1:3031"]\n[site.b]\nsettings = "b/settings"\nlisten = ["uwsgi:127.0.0.1:3032"]\n' +
        '[site.c]\napp = "app.ts"\nsettings = "c.settings"\nlisten = ["uwsgi:127.0.0.1:3033"]\n',
      { "b/settings.ts": 'export const TSGI_APPLICATION = "app.ts";\n', "app.ts": "export const application = () => [];\n" },
    );
    const dir = dirname(file);
    expect(p).toEqual([
      `${file}: site a: settings: no module a/settings: no file ${dir}/a/settings{.ts,.mts,.cts,.js,.mjs,.cjs,/index.ts,/index.js}, and no package of that name`,
    ]);
  });

  it("a bad site name", () => {
    const { file, problems: p } = problems('[site."my blog"]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3031"]\n');
    expect(p).toEqual([`${file}: site "my blog": a site name may only contain letters, digits, "_", "." and "-"`]);
  });

  it("no site at all", () => {
    const { file, problems: p } = problems('error-log = "-"\n[defaults]\nprocesses = 2\n');
    expect(p).toEqual([`${file}: no site: add at least one [site.NAME] with its app and listen`]);
  });

  it("wrong types, durations, sizes and modes: the table's messages", () => {
    const { file, problems: p } = problems(
      `${SITE}processes = "two"\nrequest-timeout = "soon"\nmax-params = "lots"\nsocket-mode = "0999"\nenv = { PORT = 3000 }\ndebug = "yes"\nconcurrency = 0\n`,
    );
    expect(p).toEqual([
      `${file}: site a: processes: processes must be an integer, got "two"`,
      `${file}: site a: request-timeout: request-timeout must be a duration such as "30s", "500ms" or "2m", got "soon"`,
      `${file}: site a: max-params: max-params must be a size in bytes such as 65536 or "64k", got "lots"`,
      `${file}: site a: socket-mode: socket-mode must be an octal mode such as "0660", got "0999"`,
      `${file}: site a: env: env must be a table of string values, got {"PORT":3000}`,
      `${file}: site a: debug: debug must be true or false, got "yes"`,
      `${file}: site a: concurrency: concurrency must be an integer >= 1, got 0`,
    ]);
  });

  it("a wrong type at the top level and in [defaults]", () => {
    const { file, problems: p } = problems(`error-log = 3\n[defaults]\nprocesses = 0\n${SITE}`);
    expect(p).toEqual([`${file}: error-log: error-log must be a string, got 3`, `${file}: [defaults]: processes: processes must be an integer >= 1, got 0`]);
  });

  it("a listen address that is not PROTO:HOST:PORT or PROTO:unix:PATH", () => {
    const { file, problems: p } = problems('[site.a]\napp = "app.ts"\nlisten = ["fcgi:127.0.0.1:9000", "uwsgi:127.0.0.1:99999"]\n');
    expect(p).toEqual([
      `${file}: site a: listen: listen "fcgi:127.0.0.1:9000" is not PROTO:HOST:PORT or PROTO:unix:PATH with PROTO fastcgi, uwsgi or http`,
      `${file}: site a: listen: listen "uwsgi:127.0.0.1:99999" is not PROTO:HOST:PORT or PROTO:unix:PATH with PROTO fastcgi, uwsgi or http`,
    ]);
  });

  it("a cwd that does not exist or is not a folder", () => {
    const { file, problems: p } = problems(`${SITE}cwd = "nowhere"\n[site.b]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3032"]\ncwd = "app.ts"\n`);
    const dir = dirname(file);
    expect(p).toEqual([`${file}: site a: cwd: ${join(dir, "nowhere")} does not exist`, `${file}: site b: cwd: ${join(dir, "app.ts")} is not a folder`]);
  });

  it("an app module that does not exist (resolved against the file's folder, not cwd)", () => {
    const { file, problems: p } = problems('[site.a]\napp = "./missing.mjs:app"\nlisten = ["uwsgi:127.0.0.1:3031"]\ncwd = "sub"\n', { "sub/missing.mjs": "" });
    expect(p).toEqual([`${file}: site a: app: ${join(dirname(file), "missing.mjs")} does not exist`]);
  });

  it("a package's file named with its extension (mypkg/lib/app.js) stays as written when no project file has that path", () => {
    const dir = folder({ "tsgi.toml": '[site.a]\napp = "mypkg/lib/app.js:handler"\nlisten = ["uwsgi:127.0.0.1:3031"]\n', "node_modules/mypkg/lib/app.js": "" });
    expect(loadConfig(join(dir, "tsgi.toml")).sites[0]!.settings.app).toBe("mypkg/lib/app.js:handler");
    const { file, problems: p } = problems('[site.a]\napp = "nopkg/app.js"\nlisten = ["uwsgi:127.0.0.1:3031"]\n');
    expect(p).toEqual([`${file}: site a: app: ${join(dirname(file), "nopkg", "app.js")} does not exist`]);
  });

  it("the folder of a unix socket or of a log file that does not exist", () => {
    const { file, problems: p } = problems(`[site.a]\napp = "app.ts"\nlisten = ["fastcgi:unix:run/a.sock"]\naccess-log = "logs/access.log"\nerror-log = "/nonexistent/error.log"\n`);
    const dir = dirname(file);
    expect(p).toEqual([
      `${file}: site a: listen: ${join(dir, "run")} (the folder of ${join(dir, "run", "a.sock")}) does not exist`,
      `${file}: site a: access-log: ${join(dir, "logs")} (the folder of ${join(dir, "logs", "access.log")}) does not exist`,
      `${file}: site a: error-log: /nonexistent (the folder of /nonexistent/error.log) does not exist`,
    ]);
  });

  it("a [defaults] path is reported once, under [defaults], not for every site", () => {
    const { file, problems: p } = problems(`[defaults]\naccess-log = "logs/access.log"\n${SITE}[site.b]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3032"]\n`);
    const dir = dirname(file);
    expect(p).toEqual([`${file}: [defaults]: access-log: ${join(dir, "logs")} (the folder of ${join(dir, "logs", "access.log")}) does not exist`]);
  });

  it("two sites on one unix socket (the same absolute path, written differently)", () => {
    const { file, problems: p } = problems(
      `[site.a]\napp = "app.ts"\nlisten = ["fastcgi:unix:run/x.sock"]\n[site.b]\napp = "app.ts"\nlisten = ["uwsgi:unix:./run/../run/x.sock"]\n`,
      { "run/": "" },
    );
    const sock = join(dirname(file), "run", "x.sock");
    expect(p).toEqual([`${file}: site b: listen: uwsgi:unix:${sock} is the same socket as fastcgi:unix:${sock} of site a`]);
  });

  it("two sites on one TCP port: the same host, or a wildcard; other hosts and port 0 are no conflict", () => {
    const { file, problems: p } = problems(
      `[defaults]\nallow = ["0.0.0.0/0", "::/0"]
[site.a]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3031", "http:127.0.0.1:0"]
[site.b]\napp = "app.ts"\nlisten = ["fastcgi:0.0.0.0:3031", "http:127.0.0.1:0", "http:127.0.0.2:8000"]
[site.c]\napp = "app.ts"\nlisten = ["http:127.0.0.1:8000", "uwsgi:[::]:8000", "uwsgi:127.0.0.1:3031"]\n`,
    );
    expect(p).toEqual([
      `${file}: site b: listen: fastcgi:0.0.0.0:3031 is the same socket as uwsgi:127.0.0.1:3031 of site a`,
      `${file}: site c: listen: uwsgi:[::]:8000 is the same socket as http:127.0.0.2:8000 of site b`,
      `${file}: site c: listen: uwsgi:127.0.0.1:3031 is the same socket as uwsgi:127.0.0.1:3031 of site a`,
    ]);
  });

  it("one site twice on the same socket", () => {
    const { file, problems: p } = problems('[site.a]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3031", "http:127.0.0.1:3031"]\n');
    expect(p).toEqual([`${file}: site a: listen: http:127.0.0.1:3031 is the same socket as uwsgi:127.0.0.1:3031 of site a`]);
  });
});

describe("allow, status and metrics", () => {
  const site = (listen: string, extra = "") => `[site.a]\napp = "app.ts"\nlisten = ["${listen}"]\n${extra}`;
  const exposed = (file: string, address: string) =>
    `${file}: site a: allow: missing: the site listens on ${address} (not a loopback address) without allow; list the peers that may connect (the front servers), e.g. allow = ["10.0.0.5"], or allow = ["0.0.0.0/0", "::/0"] for every peer`;

  it("a TCP listener on 0.0.0.0, on :: or on another host's address without allow is refused; loopback and unix sockets need none", () => {
    for (const [listen, address] of [["fastcgi:0.0.0.0:9000", "0.0.0.0:9000"], ["uwsgi:[::]:9000", "[::]:9000"], ["http:192.0.2.1:80", "192.0.2.1:80"], ["http:example.com:80", "example.com:80"]] as const) {
      const { file, problems: p } = problems(site(listen));
      expect(p).toEqual([exposed(file, address)]);
    }
    for (const listen of ["fastcgi:127.0.0.1:9000", "fastcgi:127.1.2.3:9000", "uwsgi:[::1]:9000", "http:localhost:8000", "fastcgi:unix:app.sock"]) {
      expect(checkConfig(toml(site(listen))).problems).toEqual([]);
    }
  });

  it("an explicit allow, in the site or in [defaults], lets it listen beyond loopback; the default is loopback", () => {
    expect(checkConfig(toml(site("fastcgi:0.0.0.0:9000", 'allow = ["10.0.0.5", "fd00::/8"]\n'))).problems).toEqual([]);
    const config = loadConfig(toml(`[defaults]\nallow = ["192.0.2.0/24"]\n${site("fastcgi:0.0.0.0:9000")}[site.b]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3031"]\n`));
    expect(config.sites.map((s) => s.settings.allow)).toEqual([["192.0.2.0/24"], ["192.0.2.0/24"]]);
    const plain = loadConfig(toml(site("fastcgi:127.0.0.1:9000")));
    expect(plain.sites[0]!.settings).toMatchObject({ allow: ["127.0.0.0/8", "::1"], status: "", metrics: "" });
  });

  it("a bad address or network names the file, the site and the key (reported once, not also as missing)", () => {
    const { file, problems: p } = problems(site("fastcgi:0.0.0.0:9000", 'allow = ["10.0.0.5", "10.0.0.0/33", "::1"]\n'));
    expect(p).toEqual([
      `${file}: site a: allow: allow must list IPv4 or IPv6 addresses or networks (such as "10.0.0.5", "10.0.0.0/8", "fd00::/8"): "10.0.0.0/33" has a prefix length out of 0–32`,
    ]);
    const zone = problems(`[defaults]\nallow = "fe80::1%eth0"\n${site("fastcgi:127.0.0.1:9000")}`);
    expect(zone.problems).toEqual([
      `${zone.file}: [defaults]: allow: allow must list IPv4 or IPv6 addresses or networks (such as "10.0.0.5", "10.0.0.0/8", "fd00::/8"): "fe80::1%eth0" is not an IPv4 or IPv6 address or network`,
    ]);
  });

  it("status and metrics: a path or \"\" (off), not the same path", () => {
    const { file, problems: p } = problems(site("fastcgi:127.0.0.1:9000", 'status = "tsgi-status"\nmetrics = "/m?x"\n'));
    expect(p).toEqual([
      `${file}: site a: status: status must be "" (off) or a path such as "/tsgi-status", got "tsgi-status"`,
      `${file}: site a: metrics: metrics must be "" (off) or a path such as "/tsgi-status", got "/m?x"`,
    ]);
    const same = problems(site("fastcgi:127.0.0.1:9000", 'status = "/s"\nmetrics = "/s"\n'));
    expect(same.problems).toEqual([`${same.file}: site a: metrics: the same path as status ("/s"): give each its own`]);
  });
});

describe("every problem at once", () => {
  const FOUR = `pidfle = "x"\n[defaults]\nproceses = 2\n[site.a]\napp = "missing.ts"\nlisten = ["uwsgi:127.0.0.1:3031"]\nprocesses = "two"\n`;

  it("a file with 4 errors gives 4 problems", () => {
    const { file, problems: p } = problems(FOUR);
    expect(p).toEqual([
      `${file}: pidfle: unknown key; did you mean \`pidfile\`?`,
      `${file}: [defaults]: proceses: unknown key; did you mean \`processes\`?`,
      `${file}: site a: processes: processes must be an integer, got "two"`,
      `${file}: site a: app: ${join(dirname(file), "missing.ts")} does not exist`,
    ]);
  });

  it("loadConfig throws TSGI_ERR_CONFIG_FILE: the first problem and how many more, all in details.problems", () => {
    const file = toml(FOUR);
    let caught: TsgiError | undefined;
    try {
      loadConfig(file);
    } catch (err) {
      caught = err as TsgiError;
    }
    expect(caught?.code).toBe("TSGI_ERR_CONFIG_FILE");
    expect(caught?.message).toBe(`${file}: pidfle: unknown key; did you mean \`pidfile\`? (and 3 more)`);
    expect(caught?.details).toMatchObject({ file, count: 4 });
    expect(caught?.details.problems).toEqual(checkConfig(file).problems);
  });
});

describe("tsgi check", () => {
  const run = (args: string[], o: { bin?: string; cwd?: string; env?: Record<string, string | undefined> } = {}) => {
    const env = { ...process.env, ...o.env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    return spawnSync(process.execPath, [o.bin ?? join(ROOT, "bin", "tsgi.js"), ...args], { cwd: o.cwd ?? ROOT, env, encoding: "utf8", timeout: 60_000 });
  };
  const GOOD = `[site.blog]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3031"]\n[site.shop]\napp = "app.ts"\nlisten = ["uwsgi:127.0.0.1:3032"]\n`;
  const BAD = `pidfle = "x"\n[defaults]\nproceses = 2\n[site.a]\napp = "missing.ts"\nlisten = ["nope"]\nprocesses = "two"\n`;

  it("exits 1 and prints every problem, one a line, on stderr", () => {
    const file = toml(BAD);
    const r = run(["check", "-c", file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(checkConfig(file).problems.map((l) => `${l}\n`).join(""));
    expect(r.stderr.split("\n").filter(Boolean)).toHaveLength(5);
  });

  it("exits 0 with one summary line on a good file; -c defaults to ./tsgi.toml", () => {
    const file = toml(GOOD);
    const r = run(["check", "-c", file]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toBe(`${file}: 2 sites, no problems (blog, shop)\n`);
    const inFolder = run(["check"], { cwd: dirname(file) });
    expect([inFolder.status, inFolder.stdout]).toEqual([0, "tsgi.toml: 2 sites, no problems (blog, shop)\n"]);
  });

  it("with TSGI_NATIVE pointing nowhere", () => {
    const file = toml(GOOD);
    const r = run(["check", "-c", file], { env: { TSGI_NATIVE: "/nonexistent/tsgi.node" } });
    expect([r.status, r.stdout]).toEqual([0, `${file}: 2 sites, no problems (blog, shop)\n`]);
  });

  it("in an install with no native addon at all (the addon is loaded when src/native.ts is imported)", () => {
    // TSGI_NATIVE only adds a first place to look: the checkout's build/ would still be found.
    const install = folder({});
    for (const part of ["package.json", "bin", "src", "scripts/bundle-fresh.mjs"]) cpSync(join(ROOT, part), join(install, part), { recursive: true });
    symlinkSync(join(ROOT, "node_modules"), join(install, "node_modules"));
    const bin = join(install, "bin", "tsgi.js");
    const env = { TSGI_NATIVE: undefined, TSGI_FROM_SOURCE: undefined };
    // The install is one without the addon: serving says so.
    const serve = run(["serve", "x.mjs", "--listen", "http:127.0.0.1:0"], { bin, env, cwd: install });
    expect(serve.stderr).toMatch(/TSGI_ERR_NATIVE_LOAD/);
    const good = toml(GOOD);
    const ok = run(["check", "-c", good], { bin, env });
    expect([ok.status, ok.stderr, ok.stdout]).toEqual([0, "", `${good}: 2 sites, no problems (blog, shop)\n`]);
    const bad = toml(BAD);
    const failed = run(["check", "-c", bad], { bin, env });
    expect([failed.status, failed.stderr]).toEqual([1, checkConfig(bad).problems.map((l) => `${l}\n`).join("")]);
  });

  it("src/daemon/config.ts imports nothing that reaches src/native.ts", () => {
    const seen = new Set<string>();
    const walk = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/^import\s+(?!type\s)[\s\S]*?from\s+"(\.[^"]+)"|import\("(\.[^"]+)"\)/gm)) {
        walk(resolve(dirname(file), m[1] ?? m[2]!));
      }
    };
    walk(join(ROOT, "src", "daemon", "config.ts"));
    expect(seen.size).toBeGreaterThan(3);
    expect([...seen]).not.toContain(join(ROOT, "src", "native.ts"));
  });
});

// A project's settings module (TSGI_SETTINGS_MODULE, getTsgiApplication, ROOT_APPLICATION,
// MIDDLEWARE, ALLOWED_HOSTS, DEBUG) through a real `tsgi serve` over HTTP, and the errors of
// loadSettings a user meets first.

import http from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadSettings } from "../../src/project/settings.ts";
import { hostAllowed, hostOf } from "../../src/project/allowed-hosts.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { freePort } from "../support/front-servers.ts";
import { poll, startDaemon } from "../support/daemon.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
const SETTINGS_TS = join(ROOT, "src", "project", "settings.ts");
let project: string;

function get(port: number, path: string, host: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((res, rej) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers: { Host: host }, agent: false }, (r) => {
      let body = "";
      r.setEncoding("utf8").on("data", (d: string) => (body += d));
      r.on("end", () => res({ status: r.statusCode!, headers: r.headers, body }));
    });
    req.on("error", rej).end();
  });
}

function write(rel: string, text: string): void {
  mkdirSync(join(project, rel, ".."), { recursive: true });
  writeFileSync(join(project, rel), text);
}

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), "tsgi-settings-"));
  write("package.json", JSON.stringify({ name: "mysite", private: true, type: "module" }));
  write(
    "mysite/settings.ts",
    `export const TSGI_APPLICATION = "mysite/tsgi.ts:application";
export const ROOT_APPLICATION = "mysite/app.ts:application";
export const DEBUG = false;
export const MIDDLEWARE = ["mysite/middleware.ts:stamp", "mysite/middleware.ts:Timing"];
export const ALLOWED_HOSTS = ["example.com", ".shop.test"];
export const GREETING = "from settings";
`,
  );
  write("mysite/other_settings.ts", `export const ROOT_APPLICATION = "mysite/app.ts:application";\nexport const ALLOWED_HOSTS = ["*"];\n`);
  write(
    "mysite/app.ts",
    `let served = 0;
export function application(environ: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => void) {
  served++;
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ settings: process.env.TSGI_SETTINGS_MODULE, served, host: environ.HTTP_HOST })];
}
`,
  );
  // A functional middleware, and a class one whose instances are applications.
  write(
    "mysite/middleware.ts",
    `type App = (e: Record<string, unknown>, sr: (s: string, h: [string, string][]) => unknown) => unknown;
export const stamp = (app: App): App => (e, sr) => app(e, (s, h) => sr(s, [...h, ["X-Stamp", "outer"]]));
export class Timing extends Function {
  constructor(app: App) {
    super();
    return (e: Record<string, unknown>, sr: (s: string, h: [string, string][]) => unknown) => app(e, (s, h) => sr(s, [...h, ["X-Timing", "inner"]]));
  }
}
`,
  );
  write(
    "mysite/tsgi.ts",
    `process.env.TSGI_SETTINGS_MODULE ??= "mysite/settings"; // setdefault: the environment wins
import { getTsgiApplication } from ${JSON.stringify(SETTINGS_TS)};
export const application = await getTsgiApplication();
`,
  );
});

afterAll(() => rmSync(project, { recursive: true, force: true }));

describe("getTsgiApplication through tsgi serve", () => {
  let tsgi: TsgiProcess;
  afterAll(async () => tsgi?.stop());

  test("ROOT_APPLICATION wrapped in MIDDLEWARE (first outermost); a Host outside ALLOWED_HOSTS is 400 before the application", async () => {
    const env = { ...process.env } as Record<string, string>;
    delete env.TSGI_SETTINGS_MODULE;
    tsgi = await startTsgi({ app: join(project, "mysite", "tsgi.ts"), listen: [{ proto: "http" }], args: ["--cwd", project], env });
    const { port } = tsgi.tcp("http");
    const ok = await get(port, "/", "example.com");
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ settings: "mysite/settings", served: 1, host: "example.com" });
    expect(ok.headers["x-stamp"]).toBe("outer");
    expect(ok.headers["x-timing"]).toBe("inner");

    const refused = await get(port, "/", "evil.test");
    expect(refused.status).toBe(400);
    expect(refused.body).toBe("Bad Request (400)\n");
    await tsgi.waitForStderr(/TSGI_ERR_SETTINGS_HOST: the Host "evil.test" is not in ALLOWED_HOSTS/);

    // A subdomain of ".shop.test" with a port passes; the refused request never reached the application.
    const sub = await get(port, "/", "a.shop.test:8080");
    expect(sub.status).toBe(200);
    expect(JSON.parse(sub.body)).toMatchObject({ served: 2 });
    expect((await get(port, "/", "shop.test")).status).toBe(200);
  });

  test("the environment wins over tsgi.ts's default", async () => {
    await tsgi.stop();
    tsgi = await startTsgi({
      app: join(project, "mysite", "tsgi.ts"),
      listen: [{ proto: "http" }],
      args: ["--cwd", project],
      env: { TSGI_SETTINGS_MODULE: "mysite/other_settings" },
    });
    const r = await get(tsgi.tcp("http").port, "/", "anything.example");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ settings: "mysite/other_settings" });
    expect(r.headers["x-stamp"]).toBeUndefined();
  });
});

describe("tsgi daemon: a site's settings key", () => {
  test("two sites of one project, each with its own settings module in its own workers; a site without app serves its settings' TSGI_APPLICATION", async () => {
    write("mysite/blog_settings.ts", `export const TSGI_APPLICATION = "mysite/tsgi.ts:application";\nexport const ROOT_APPLICATION = "mysite/app.ts:application";\nexport const ALLOWED_HOSTS = ["blog.test"];\n`);
    const [shop, blog] = [await freePort(), await freePort()];
    const file = join(project, "tsgi.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\n\n` +
        `[site.shop]\napp = "mysite/tsgi.ts"\nlisten = ["http:127.0.0.1:${shop}"]\n\n` +
        `[site.blog]\nsettings = "mysite/blog_settings"\nlisten = ["http:127.0.0.1:${blog}"]\n`,
    );
    const daemon = startDaemon(project, file);
    try {
      await poll("the daemon ready", 20_000, () => /ready: 2 of 2 sites running/.test(daemon.stderr()) || /failed/.test(daemon.stderr()));
      expect(daemon.stderr()).toMatch(/ready: 2 of 2 sites running/);
      const a = await get(shop, "/", "example.com");
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body)).toMatchObject({ settings: "mysite/settings" });
      expect(a.headers["x-stamp"]).toBe("outer");
      const b = await get(blog, "/", "blog.test");
      expect(b.status).toBe(200);
      expect(JSON.parse(b.body)).toMatchObject({ settings: "mysite/blog_settings" });
      expect(b.headers["x-stamp"]).toBeUndefined();
      // Each site's ALLOWED_HOSTS are its own.
      expect((await get(shop, "/", "blog.test")).status).toBe(400);
      expect((await get(blog, "/", "example.com")).status).toBe(400);
    } finally {
      await daemon.stop();
    }
  });
});

describe("loadSettings", () => {
  test("reads the settings and their defaults", async () => {
    const s = await loadSettings(project, "mysite/settings");
    expect(s).toMatchObject({
      module: "mysite/settings",
      TSGI_APPLICATION: "mysite/tsgi.ts:application",
      ROOT_APPLICATION: "mysite/app.ts:application",
      DEBUG: false,
      ALLOWED_HOSTS: ["example.com", ".shop.test"],
    });
    expect(s.all.GREETING).toBe("from settings");
    expect(await loadSettings(project, "mysite/other_settings")).toMatchObject({ DEBUG: false, MIDDLEWARE: [], TSGI_APPLICATION: null });
  });

  test("coded errors: unset, missing (with the files tried), a setting of the wrong type", async () => {
    await expect(loadSettings(project, "")).rejects.toMatchObject({ code: "TSGI_ERR_SETTINGS_UNSET" });
    const missing = loadSettings(project, "mysite/nope");
    await expect(missing).rejects.toMatchObject({ code: "TSGI_ERR_SETTINGS_MODULE" });
    await expect(missing).rejects.toThrow(`no file ${join(project, "mysite", "nope")}{.ts,`);
    write("mysite/bad_settings.ts", `export const DEBUG = "yes";\n`);
    await expect(loadSettings(project, "mysite/bad_settings")).rejects.toThrow("settings mysite/bad_settings: DEBUG must be true or false, not string");
    write("mysite/bad_hosts.ts", `export const ALLOWED_HOSTS = "example.com";\n`);
    await expect(loadSettings(project, "mysite/bad_hosts")).rejects.toMatchObject({ code: "TSGI_ERR_SETTINGS_INVALID" });
  });
});

describe("ALLOWED_HOSTS matching", () => {
  test("names, subdomain patterns, ports and IPv6 literals", () => {
    expect(hostOf("Example.COM:8000")).toBe("example.com");
    expect(hostOf("[::1]:8000")).toBe("[::1]");
    expect(hostOf("example.com.")).toBe("example.com");
    expect(hostAllowed("example.com", ["example.com"])).toBe(true);
    expect(hostAllowed("www.example.com", ["example.com"])).toBe(false);
    expect(hostAllowed("www.example.com", [".example.com"])).toBe(true);
    expect(hostAllowed("badexample.com", [".example.com"])).toBe(false);
    expect(hostAllowed("[::1]", ["[::1]"])).toBe(true);
    expect(hostAllowed("", ["*"])).toBe(false);
    expect(hostAllowed("a b", ["*"])).toBe(false);
  });
});

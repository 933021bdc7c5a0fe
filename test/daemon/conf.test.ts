// `tsgi conf nginx|apache|systemd SITE -c tsgi.toml` against the real servers: one daemon
// with three sites (FastCGI over a unix socket under /blog, uwsgi over TCP under /shop, HTTP
// over TCP at the root); each site's generated nginx and Apache configurations are wrapped in
// a minimal nginx.conf / httpd.conf of the test's own, checked with `nginx -t` / `apache2 -t`,
// and a request is served through them, asserting what the application saw (SCRIPT_NAME,
// PATH_INFO, the body) and that a request running past request-timeout gets tsgi's 504, not
// the front server's. The systemd units are checked with `systemd-analyze verify` (no
// systemd as PID 1 is needed) and their paths and listen addresses asserted.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort, startFromFile, type FrontServer } from "../support/front-servers.ts";
import { header, request } from "../integration/client.ts";
import { apacheModulesDir } from "../../src/daemon/front-conf.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");
const isRoot = process.getuid?.() === 0;

const APP = `
export function application(environ, startResponse) {
  return (async function* () {
    if (environ.PATH_INFO === "/slow") await new Promise((r) => setTimeout(r, 3500));
    let body = 0;
    for await (const c of environ["tsgi.input"]) body += c.length;
    startResponse("200 OK", [["Content-Type", "application/json"]]);
    yield JSON.stringify({ site: process.env.SITE, SCRIPT_NAME: environ.SCRIPT_NAME, PATH_INFO: environ.PATH_INFO, QUERY_STRING: environ.QUERY_STRING, body });
  })();
}
`;

let dir: string;
let file: string;
let daemon: { proc: ChildProcess; stderr(): string; exited: Promise<unknown> } | null = null;
const fronts: FrontServer[] = [];
let tcp: { shop: number; root: number };

function tsgi(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function conf(front: string, site: string, port: number): string {
  const r = tsgi(["conf", front, site, "-c", file, "--port", String(port)]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

async function poll(what: string, timeoutMs: number, fn: () => boolean): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Seen = { site: string; SCRIPT_NAME: string; PATH_INFO: string; QUERY_STRING: string; body: number };

async function get(url: string, o: Parameters<typeof request>[1] = {}): Promise<{ status: number; seen: Seen | null; body: string; location?: string }> {
  const r = await request(url, { timeoutMs: 15_000, ...o });
  const body = r.body.toString();
  const seen = r.status === 200 ? (JSON.parse(body) as Seen) : null;
  return { status: r.status, seen, body, location: header(r, "location") };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-conf-"));
  // nginx's and Apache's workers (an unprivileged user when started as root) reach the socket here.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "app.mjs"), APP);
  tcp = { shop: await freePort(), root: await freePort() };
  file = join(dir, "tsgi.toml");
  writeFileSync(
    file,
    [
      "[defaults]",
      "run-as-root = true",
      'graceful-timeout = "5s"',
      "",
      "[site.blog]",
      'app = "app.mjs"',
      `listen = ["fastcgi:unix:${join(dir, "blog.sock")}"]`,
      'mount = "/blog"',
      'request-timeout = "2s"',
      '# nginx\'s and Apache\'s workers connect to it',
      'socket-mode = "0666"',
      'env = { SITE = "blog" }',
      "",
      "[site.shop]",
      'app = "app.mjs"',
      `listen = ["uwsgi:127.0.0.1:${tcp.shop}"]`,
      'mount = "/shop"',
      'max-body = "1m"',
      'env = { SITE = "shop" }',
      "",
      "[site.root]",
      'app = "app.mjs"',
      `listen = ["http:127.0.0.1:${tcp.root}"]`,
      'env = { SITE = "root" }',
      "",
    ].join("\n"),
  );
  let err = "";
  const proc = spawn(process.execPath, [BIN, "daemon", "-c", file], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  daemon = { proc, stderr: () => err, exited };
  await poll(`the daemon ready (stderr: ${err})`, 30_000, () => /ready: 3 of 3 sites running/.test(err));
}, 60_000);

afterAll(async () => {
  for (const f of fronts) await f.stop();
  if (daemon && daemon.proc.exitCode === null && daemon.proc.signalCode === null) {
    process.kill(daemon.proc.pid!, "SIGTERM");
    const timer = setTimeout(() => daemon!.proc.kill("SIGKILL"), 15_000);
    await daemon.exited;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** The three sites' outputs in one server, each on its own port. */
async function ports(): Promise<{ blog: number; shop: number; root: number }> {
  return { blog: await freePort(), shop: await freePort(), root: await freePort() };
}

describe("tsgi conf nginx", () => {
  let p: { blog: number; shop: number; root: number };
  let server: FrontServer;

  beforeAll(async () => {
    p = await ports();
    const d = join(dir, "nginx");
    mkdirSync(join(d, "tmp"), { recursive: true });
    const confPath = join(d, "nginx.conf");
    const errorLogPath = join(d, "error.log");
    writeFileSync(
      confPath,
      [
        // startFromFile adds `-g "daemon off;"`.
        "worker_processes 1;",
        ...(isRoot ? ["user www-data www-data;"] : []),
        `pid ${d}/nginx.pid;`,
        `error_log ${errorLogPath} info;`,
        "events { worker_connections 64; }",
        "http {",
        `  access_log ${d}/access.log;`,
        `  client_body_temp_path ${d}/tmp/client_body;`,
        `  proxy_temp_path ${d}/tmp/proxy;`,
        `  fastcgi_temp_path ${d}/tmp/fastcgi;`,
        `  uwsgi_temp_path ${d}/tmp/uwsgi;`,
        `  scgi_temp_path ${d}/tmp/scgi;`,
        conf("nginx", "blog", p.blog),
        conf("nginx", "shop", p.shop),
        conf("nginx", "root", p.root),
        "}",
        "",
      ].join("\n"),
    );
    const t = spawnSync("nginx", ["-t", "-c", confPath, "-e", errorLogPath], { encoding: "utf8" });
    expect(t.stderr, readFileSync(confPath, "utf8")).toMatch(/syntax is ok[\s\S]*test is successful/);
    expect(t.status).toBe(0);
    server = await startFromFile("nginx", { dir: d, confPath, errorLogPath, port: p.blog });
    fronts.push(server);
  }, 60_000);

  test("blog, FastCGI over a unix socket under /blog: SCRIPT_NAME /blog, PATH_INFO the rest; /blog is nginx's 301 to /blog/", async () => {
    const r = await get(`http://127.0.0.1:${p.blog}/blog/a/b%20c?x=1`);
    expect(r.status).toBe(200);
    expect(r.seen).toEqual({ site: "blog", SCRIPT_NAME: "/blog", PATH_INFO: "/a/b c", QUERY_STRING: "x=1", body: 0 });
    const post = await get(`http://127.0.0.1:${p.blog}/blog/upload`, { method: "POST", body: Buffer.alloc(200_000, 0x61) });
    expect(post.seen?.body).toBe(200_000);
    const bare = await get(`http://127.0.0.1:${p.blog}/blog`);
    expect(bare.status).toBe(301);
    expect(bare.location).toMatch(/\/blog\/$/);
    // Outside the location: nginx's own 404 page, tsgi never asked.
    const other = await get(`http://127.0.0.1:${p.blog}/blogx`);
    expect(other.status).toBe(404);
    expect(other.body).toMatch(/<center>nginx/);
  });

  test("blog: a request running past request-timeout (2s) gets tsgi's 504, not nginx's", async () => {
    const r = await get(`http://127.0.0.1:${p.blog}/blog/slow`);
    expect(r.status).toBe(504);
    expect(r.body).toBe("the application did not answer in time\n");
  });

  test("shop, uwsgi over TCP under /shop: SCRIPT_NAME /shop, PATH_INFO the rest; a body above max-body is nginx's 413", async () => {
    const r = await get(`http://127.0.0.1:${p.shop}/shop/cart/1?y=2`);
    expect(r.seen).toEqual({ site: "shop", SCRIPT_NAME: "/shop", PATH_INFO: "/cart/1", QUERY_STRING: "y=2", body: 0 });
    const post = await get(`http://127.0.0.1:${p.shop}/shop/cart`, { method: "POST", body: Buffer.alloc(1024 * 1024, 0x62) });
    expect(post.seen?.body).toBe(1024 * 1024);
    // nginx's page, not tsgi's plain-text 413: refused before it reached tsgi.
    const big = await get(`http://127.0.0.1:${p.shop}/shop/cart`, { method: "POST", body: Buffer.alloc(1024 * 1024 + 1, 0x62) });
    expect(big.status).toBe(413);
    expect(big.body).toMatch(/<center>nginx/);
  });

  test("root, HTTP over TCP at /: the whole path is PATH_INFO; nginx logged no upstream error for any request of these tests", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await get(`http://127.0.0.1:${p.root}/x/y`);
      expect(r.seen).toEqual({ site: "root", SCRIPT_NAME: "", PATH_INFO: "/x/y", QUERY_STRING: "", body: 0 });
    }
    expect(server.errorLog()).not.toMatch(/upstream/);
  });
});

describe("tsgi conf apache", () => {
  let p: { blog: number; shop: number; root: number };
  let server: FrontServer;

  beforeAll(async () => {
    p = await ports();
    const d = join(dir, "apache");
    mkdirSync(join(d, "run"), { recursive: true });
    const confPath = join(d, "httpd.conf");
    const errorLogPath = join(d, "error.log");
    writeFileSync(
      confPath,
      [
        `ServerRoot "${d}"`,
        `PidFile "${d}/run/httpd.pid"`,
        `DefaultRuntimeDir "${d}/run"`,
        `ErrorLog "${errorLogPath}"`,
        "LogLevel info",
        "ServerName 127.0.0.1",
        ...Object.values(p).map((port) => `Listen 127.0.0.1:${port}`),
        ...(isRoot ? ["User www-data", "Group www-data"] : []),
        "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so",
        "LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so",
        "StartServers 1",
        "ServerLimit 1",
        "ThreadsPerChild 8",
        "MaxRequestWorkers 8",
        conf("apache", "blog", p.blog),
        conf("apache", "shop", p.shop),
        conf("apache", "root", p.root),
        "",
      ].join("\n"),
    );
    const t = spawnSync("apache2", ["-t", "-f", confPath], { encoding: "utf8" });
    expect(`${t.stdout}${t.stderr}`, readFileSync(confPath, "utf8")).toMatch(/Syntax OK/);
    expect(t.status).toBe(0);
    server = await startFromFile("apache", { dir: d, confPath, errorLogPath, port: p.blog });
    fronts.push(server);
  }, 60_000);

  test("blog, mod_proxy_fcgi over a unix socket under /blog: SCRIPT_NAME /blog, PATH_INFO the rest; /blog itself served, /blogx not passed", async () => {
    const r = await get(`http://127.0.0.1:${p.blog}/blog/a/b%20c?x=1`);
    expect(r.status).toBe(200);
    expect(r.seen).toEqual({ site: "blog", SCRIPT_NAME: "/blog", PATH_INFO: "/a/b c", QUERY_STRING: "x=1", body: 0 });
    const post = await get(`http://127.0.0.1:${p.blog}/blog/upload`, { method: "POST", body: Buffer.alloc(200_000, 0x61) });
    expect(post.seen?.body).toBe(200_000);
    const bare = await get(`http://127.0.0.1:${p.blog}/blog`);
    expect(bare.seen).toMatchObject({ SCRIPT_NAME: "/blog", PATH_INFO: "" });
    const other = await get(`http://127.0.0.1:${p.blog}/blogx`);
    // Apache's own 404 page (no ProxyPass matched), not tsgi's "outside the site's mount".
    expect(other.status).toBe(404);
    expect(other.body).toMatch(/<title>404 Not Found<\/title>/);
  });

  test("blog: a request running past request-timeout (2s) gets tsgi's 504, not Apache's", async () => {
    const r = await get(`http://127.0.0.1:${p.blog}/blog/slow`);
    expect(r.status).toBe(504);
    expect(r.body).toBe("the application did not answer in time\n");
  });

  test("shop, mod_proxy_uwsgi over TCP under /shop: SCRIPT_NAME /shop, PATH_INFO the rest; a body above max-body is Apache's 413", async () => {
    const r = await get(`http://127.0.0.1:${p.shop}/shop/cart/1?y=2`);
    expect(r.seen).toEqual({ site: "shop", SCRIPT_NAME: "/shop", PATH_INFO: "/cart/1", QUERY_STRING: "y=2", body: 0 });
    const bare = await get(`http://127.0.0.1:${p.shop}/shop`);
    expect(bare.seen).toMatchObject({ SCRIPT_NAME: "/shop", PATH_INFO: "" });
    const post = await get(`http://127.0.0.1:${p.shop}/shop/cart`, { method: "POST", body: Buffer.alloc(1024 * 1024, 0x62) });
    expect(post.seen?.body).toBe(1024 * 1024);
    // Apache's page, not tsgi's plain-text 413: refused before it reached tsgi.
    const big = await get(`http://127.0.0.1:${p.shop}/shop/cart`, { method: "POST", body: Buffer.alloc(1024 * 1024 + 1, 0x62) });
    expect(big.status).toBe(413);
    expect(big.body).toMatch(/<title>413 Request Entity Too Large<\/title>/);
  });

  test("root, mod_proxy_http over TCP at /: the whole path is PATH_INFO; Apache logged no proxy error for any request of these tests", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await get(`http://127.0.0.1:${p.root}/x/y`);
      expect(r.seen).toEqual({ site: "root", SCRIPT_NAME: "", PATH_INFO: "/x/y", QUERY_STRING: "", body: 0 });
    }
    expect(server.errorLog()).not.toMatch(/\[proxy\w*:error\]/);
  });
});

describe("tsgi conf systemd", () => {
  test("tsgi.service runs this tsgi on the absolute file; tsgi-blog.socket listens on the site's socket; systemd-analyze verify accepts both", () => {
    const r = tsgi(["conf", "systemd", "blog", "-c", "tsgi.toml"]);
    expect(r.code, r.stderr).toBe(0);
    const files = Object.fromEntries(
      r.stdout
        .split(/^# --- file: (\S+) ---\n/m)
        .slice(1)
        .reduce<[string, string][]>((acc, part, i, all) => (i % 2 === 0 ? [...acc, [part, all[i + 1]!]] : acc), []),
    );
    expect(Object.keys(files)).toEqual(["tsgi.service", "tsgi-blog.socket"]);
    const service = files["tsgi.service"]!;
    expect(service).toContain(`ExecStart=${process.execPath} ${BIN} daemon -c ${file}\n`);
    expect(service).toMatch(/^Type=notify$/m);
    expect(service).toMatch(/^KillMode=mixed$/m);
    expect(service).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    // Above the sites' graceful-timeout (5s).
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(service)![1])).toBeGreaterThan(5);
    const socket = files["tsgi-blog.socket"]!;
    expect(socket.match(/^ListenStream=.*$/gm)).toEqual([`ListenStream=${join(dir, "blog.sock")}`]);
    expect(socket).toMatch(/^FileDescriptorName=blog$/m);
    expect(socket).toMatch(/^SocketMode=0666$/m);
    expect(socket).toMatch(/^Service=tsgi\.service$/m);

    const units = join(dir, "units");
    mkdirSync(units, { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(units, name), text);
    const v = spawnSync("systemd-analyze", ["verify", join(units, "tsgi.service"), join(units, "tsgi-blog.socket")], { encoding: "utf8", timeout: 30_000 });
    expect(v.stderr).toBe("");
    expect(v.status).toBe(0);
  });

  test("a site with TCP listeners: one ListenStream per entry, host:port", () => {
    const r = tsgi(["conf", "systemd", "shop", "-c", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.match(/^ListenStream=.*$/gm)).toEqual([`ListenStream=127.0.0.1:${tcp.shop}`]);
    expect(r.stdout).not.toMatch(/SocketMode/);
  });
});

describe("tsgi conf errors", () => {
  test("an unknown site names the file's sites; an unknown front names the fronts; a --listen that is no entry names them; exit 1", () => {
    const site = tsgi(["conf", "nginx", "blgo", "-c", file]);
    expect(site.code).toBe(1);
    expect(site.stderr).toBe(`tsgi: TSGI_ERR_CONFIG_NO_SITE: ${file} has no site "blgo"; its sites: blog, shop, root\n`);
    const front = tsgi(["conf", "lighttpd", "blog", "-c", file]);
    expect(front.code).toBe(1);
    expect(front.stderr).toBe('tsgi: TSGI_ERR_CONFIG_UNKNOWN_FRONT: tsgi conf writes no configuration for "lighttpd"; it writes one for nginx, apache, systemd\n');
    const listen = tsgi(["conf", "apache", "shop", "-c", file, "--listen", "2"]);
    expect(listen.code).toBe(1);
    expect(listen.stderr).toMatch(/TSGI_ERR_CONFIG_FRONT: tsgi conf apache shop: --listen 2 is none of the site's listen entries \(1: uwsgi:127\.0\.0\.1:\d+\)/);
    expect(listen.stdout).toBe("");
  });
});

describe("tsgi conf apache: the module folder", () => {
  test("LoadModule names the first distribution's folder that exists (modules/ under ServerRoot when none), or the one --apache-modules gives", () => {
    const having = (dir: string) => (path: string) => path === `${dir}/mod_proxy.so`;
    expect(apacheModulesDir(having("/usr/lib/apache2/modules"))).toBe("/usr/lib/apache2/modules");
    expect(apacheModulesDir(having("/usr/lib64/httpd/modules"))).toBe("/usr/lib64/httpd/modules");
    expect(apacheModulesDir(having("/usr/local/apache2/modules"))).toBe("/usr/local/apache2/modules");
    expect(apacheModulesDir(() => false)).toBe("modules");
    // This machine (Debian): Debian's folder, said to be found here.
    const here = conf("apache", "blog", 8080);
    expect(here).toContain("LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so");
    expect(here).toMatch(/from \/usr\/lib\/apache2\/modules \(found on this machine; --apache-modules DIR for another\)/);
    const r = tsgi(["conf", "apache", "blog", "-c", file, "--apache-modules", "/opt/httpd/modules/"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("LoadModule proxy_module /opt/httpd/modules/mod_proxy.so");
    expect(r.stdout).toContain("LoadModule proxy_fcgi_module /opt/httpd/modules/mod_proxy_fcgi.so");
    expect(r.stdout).not.toContain("/usr/lib/apache2");
  });
});


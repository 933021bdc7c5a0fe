// `tsgi daemon -c tsgi.toml` with real processes (issue 9): two sites with their own
// settings modules, a worker killed with -9 under load, SIGHUP under a GET and POST load
// through real nginx (FastCGI keep-conn over a unix socket) with every request counted, a
// site whose application throws at import (backoff, then `failed` in `tsgi status`, the other
// site serving), a broken tsgi.toml on reload, a changed one (a site added and removed), and
// `tsgi stop` draining a request in flight.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";
import { request } from "../integration/client.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");

const APP = `
export function application(environ, startResponse) {
  const url = new URL(environ.PATH_INFO || "/", "http://x");
  if (environ.PATH_INFO === "/slow") {
    return (async function* () {
      await new Promise((r) => setTimeout(r, 1500));
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      yield "slow done\\n";
    })();
  }
  if (environ.REQUEST_METHOD === "POST") {
    return (async function* () {
      let n = 0;
      for await (const c of environ["tsgi.input"]) n += c.length;
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      yield \`posted \${n}\\n\`;
    })();
  }
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ settings: process.env.TSGI_SETTINGS_MODULE ?? null, pid: process.pid, url: url.pathname })];
}
`;

const THROWS = `throw new Error("database unreachable at boot");\nexport const application = null;\n`;

interface Daemon {
  proc: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let dir: string;
const running: Daemon[] = [];
const fronts: FrontServer[] = [];

/** The test runner's environment, minus a TSGI_SETTINGS_MODULE it may carry. */
function withoutSettings(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TSGI_SETTINGS_MODULE;
  return env;
}

function startDaemon(file: string): Daemon {
  let err = "";
  const proc = spawn(process.execPath, [BIN, "daemon", "-c", file], { cwd: dir, stdio: ["ignore", "ignore", "pipe"], env: withoutSettings() });
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const d = { proc, stderr: () => err, exited };
  running.push(d);
  return d;
}

async function poll<T>(what: string, timeoutMs: number, fn: () => T | Promise<T>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tsgi(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface StatusJson {
  sites: { name: string; state: string; failure: string | null; workers: { pid: number; index: number; state: string }[] }[];
}

function status(file: string): StatusJson {
  const r = tsgi(["status", "--json", "-c", file]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusJson;
}

const site = (s: StatusJson, name: string) => s.sites.find((x) => x.name === name)!;

async function getJson(port: number, path = "/"): Promise<{ settings: string | null; pid: number }> {
  const r = await request(`http://127.0.0.1:${port}${path}`);
  expect(r.status).toBe(200);
  return JSON.parse(r.body.toString()) as { settings: string | null; pid: number };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-daemon-"));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "app.mjs"), APP);
  writeFileSync(join(dir, "throws.mjs"), THROWS);
});

afterAll(async () => {
  for (const f of fronts) await f.stop();
  for (const d of running) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function twoSites(name: string, extra = ""): Promise<{ file: string; blog: number; shop: number; sock: string; daemon: Daemon }> {
  const blog = await freePort();
  const shop = await freePort();
  const sock = join(dir, `${name}-blog.sock`);
  const file = join(dir, `${name}.toml`);
  writeFileSync(
    file,
    `[defaults]\nrun-as-root = true\ngraceful-timeout = "5s"\n# nginx's workers (nobody) connect to it\nsocket-mode = "0666"\n\n` +
      `[site.blog]\napp = "app.mjs"\nsettings = "blog.settings"\nprocesses = 2\nlisten = ["http:127.0.0.1:${blog}", "fastcgi:unix:${sock}"]\n\n` +
      `[site.shop]\napp = "app.mjs"\nsettings = "shop.settings"\nlisten = ["http:127.0.0.1:${shop}"]\n${extra}`,
  );
  const daemon = startDaemon(file);
  await poll("both sites ready", 20_000, () => /ready: 2 of 2 sites running/.test(daemon.stderr()));
  return { file, blog, shop, sock, daemon };
}

describe("tsgi daemon", () => {
  test("two sites with different settings modules each see only their own; status lists them; socket files and control socket as configured", async () => {
    const { file, blog, shop, sock, daemon } = await twoSites("two");
    expect((await getJson(blog)).settings).toBe("blog.settings");
    expect((await getJson(shop)).settings).toBe("shop.settings");
    const s = status(file);
    expect(s.sites.map((x) => [x.name, x.state, x.workers.length])).toEqual([
      ["blog", "running", 2],
      ["shop", "running", 1],
    ]);
    expect(statSync(sock).mode & 0o777).toBe(0o666);
    expect(statSync(join(dir, "two.ctl")).mode & 0o777).toBe(0o600);
    // The process titles name the role and the site.
    const titles = spawnSync("ps", ["-o", "args=", "--ppid", String(daemon.proc.pid)], { encoding: "utf8" }).stdout;
    expect(titles).toMatch(/tsgi: blog worker 1/);
    expect(titles).toMatch(/tsgi: shop worker 1/);
    const text = tsgi(["status", "-c", file]);
    expect(text.stdout).toMatch(/site blog: running, 2 processes/);
    expect(tsgi(["stop", "-c", file]).code).toBe(0);
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(join(dir, "two.ctl"))).toBe(false);
  });

  test("kill -9 of a worker under load: no request fails, the worker comes back, the other site untouched", async () => {
    const { file, blog, shop, daemon } = await twoSites("kill");
    const victim = site(status(file), "blog").workers[0]!.pid;
    const shopPid = (await getJson(shop)).pid;
    let failed = 0;
    let ok = 0;
    let stop = false;
    const load = Array.from({ length: 4 }, async () => {
      while (!stop) {
        // A request already accepted by the killed worker is lost with it (nothing can serve it);
        // new ones go to the surviving worker: count only connection-level outcomes.
        const r = await request(`http://127.0.0.1:${shop}/`).catch(() => null);
        if (r?.status === 200) ok++;
        else failed++;
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    process.kill(victim, "SIGKILL");
    await poll("a new blog worker 1", 10_000, () => site(status(file), "blog").workers.some((w) => w.index === 1 && w.state === "ready" && w.pid !== victim));
    stop = true;
    await Promise.all(load);
    expect(failed).toBe(0);
    expect(ok).toBeGreaterThan(10);
    expect((await getJson(shop)).pid).toBe(shopPid);
    expect(daemon.stderr()).toMatch(new RegExp(`worker 1 \\(pid ${victim}\\) killed by SIGKILL; starting a new one`));
    expect(site(status(file), "blog").workers.filter((w) => w.state === "ready")).toHaveLength(2);
    process.kill(daemon.proc.pid!, "SIGTERM");
    expect((await daemon.exited).code).toBe(0);
  });

  test("SIGHUP three times under a GET and POST load through nginx (FastCGI keep-conn, unix socket): zero failed, nginx retried nothing, the keep-conn connections handed to the new workers", async () => {
    const { blog, sock, daemon } = await twoSites("hup");
    void blog;
    const nginx = await startNginx({
      conf: `
        upstream tsgi { server unix:{{SOCK}}; keepalive 8; }
        server {
          listen {{HOST}}:{{PORT}};
          location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass tsgi;
          }
        }`,
      vars: { SOCK: sock },
    });
    fronts.push(nginx);
    const url = `http://127.0.0.1:${nginx.port}`;
    const body = Buffer.alloc(256, 0x61);
    let failed = 0;
    let gets = 0;
    let posts = 0;
    const failures: string[] = [];
    let stop = false;
    const load = Array.from({ length: 6 }, async (_, i) => {
      while (!stop) {
        const post = i % 2 === 1;
        const r = await request(`${url}/x`, post ? { method: "POST", body } : {}).catch((e: Error) => ({ status: -1, body: Buffer.from(e.message), complete: false }));
        const good = r.status === 200 && r.complete !== false && (post ? r.body.toString() === "posted 256\n" : r.body.includes("blog.settings"));
        if (!good) {
          failed++;
          failures.push(`${post ? "POST" : "GET"} ${r.status} ${r.body.toString().slice(0, 80)}`);
        } else if (post) posts++;
        else gets++;
      }
    });
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 700));
      process.kill(daemon.proc.pid!, "SIGHUP");
    }
    await poll("the reloads done", 20_000, () => (daemon.stderr().match(/\[blog\] reloaded: 2 new workers serving/g) ?? []).length >= 1 && !/reloading/.test(JSON.stringify(site(status(join(dir, "hup.toml")), "blog").state)));
    // The old workers handed their keep-conn connections to the new ones (and said so as they exited).
    await poll("the old workers' handoffs logged", 10_000, () => /handed \d+ persistent connections/.test(daemon.stderr()));
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await Promise.all(load);
    // Zero failed, GETs and POSTs alike (nginx retries neither a POST nor a request already
    // sent), and nginx saw no upstream error either: none was retried behind the client's back.
    // A draining worker closes no keep-conn connection nginx may be reusing: each, between
    // requests, is handed (its socket, over IPC) to a new worker, which serves what nginx sends
    // on it next.
    const raced = nginx.errorLog().split("\n").filter((l) => /upstream|recv\(\) failed|Connection reset/.test(l));
    const handed = [...daemon.stderr().matchAll(/handed (\d+) persistent connections/g)].reduce((n, m) => n + Number(m[1]), 0);
    console.log(`SIGHUP x3 under load: ${gets} GETs, ${posts} POSTs ok; failed: ${failures.length} (${failures.join("; ")}); nginx upstream errors: ${raced.length}; connections handed off: ${handed}`);
    expect(failures).toEqual([]);
    expect(raced).toEqual([]);
    expect(handed).toBeGreaterThan(0);
    expect(gets).toBeGreaterThan(50);
    expect(posts).toBeGreaterThan(50);
    // After the reloads, exactly `processes` workers of blog.
    const b = site(status(join(dir, "hup.toml")), "blog");
    await poll("old workers gone", 10_000, () => site(status(join(dir, "hup.toml")), "blog").workers.length === 2);
    expect(b.state).toBe("running");
    process.kill(daemon.proc.pid!, "SIGTERM");
    expect((await daemon.exited).code).toBe(0);
  });

  test("a site whose application throws at import: retried with backoff, then failed in status with the error, while the other site serves", async () => {
    const good = await freePort();
    const bad = await freePort();
    const file = join(dir, "failing.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\n[site.good]\napp = "app.mjs"\nlisten = ["http:127.0.0.1:${good}"]\n[site.broken]\napp = "throws.mjs"\nlisten = ["http:127.0.0.1:${bad}"]\n`,
    );
    const daemon = startDaemon(file);
    await poll("ready", 20_000, () => /ready: 1 of 2 sites running/.test(daemon.stderr()));
    expect((daemon.stderr().match(/\[broken\] worker 1 could not start; retrying in \d+ ms/g) ?? []).length).toBe(4);
    expect(daemon.stderr()).toMatch(/\[error\] \[broken\] site broken failed: its workers cannot start \(5 attempts\).*database unreachable at boot/);
    const s = site(status(file), "broken");
    expect(s.state).toBe("failed");
    expect(s.failure).toMatch(/database unreachable at boot/);
    expect((await getJson(good)).settings).toBeNull();
    // Nothing more is tried until a reload.
    const attempts = (daemon.stderr().match(/could not start/g) ?? []).length;
    await new Promise((r) => setTimeout(r, 1500));
    expect((daemon.stderr().match(/could not start/g) ?? []).length).toBe(attempts);
    // Fixed and reloaded: it serves.
    writeFileSync(join(dir, "throws.mjs"), APP);
    expect(tsgi(["reload", "broken", "-c", file]).code).toBe(0);
    await poll("broken running", 15_000, () => site(status(file), "broken").state === "running");
    expect((await getJson(bad)).pid).toBeGreaterThan(0);
    writeFileSync(join(dir, "throws.mjs"), THROWS);
    process.kill(daemon.proc.pid!, "SIGTERM");
    expect((await daemon.exited).code).toBe(0);
  });

  test("a broken tsgi.toml on reload is refused and the sites go on; a changed one adds and removes sites", async () => {
    const { file, blog, shop, daemon } = await twoSites("change");
    const before = (await getJson(shop)).pid;
    writeFileSync(file, `${readFileSync(file, "utf8")}\nprocesses = "two"\n`);
    process.kill(daemon.proc.pid!, "SIGHUP");
    await poll("refused", 10_000, () => /not reloaded, the sites go on as they were/.test(daemon.stderr()));
    expect(daemon.stderr()).toMatch(/site shop: processes: processes must be an integer/);
    expect((await getJson(shop)).pid).toBe(before);
    expect((await getJson(shop)).settings).toBe("shop.settings");
    expect((await getJson(blog)).settings).toBe("blog.settings");
    // Now a valid change: shop goes away, news arrives.
    const news = await freePort();
    const text = readFileSync(file, "utf8") as string;
    writeFileSync(file, `${text.slice(0, text.indexOf("[site.shop]"))}[site.news]\napp = "app.mjs"\nsettings = "news.settings"\nlisten = ["http:127.0.0.1:${news}"]\n`);
    process.kill(daemon.proc.pid!, "SIGHUP");
    await poll("news serving", 15_000, async () => (await request(`http://127.0.0.1:${news}/`).catch(() => null))?.status === 200);
    expect((await getJson(news)).settings).toBe("news.settings");
    await poll("shop gone", 10_000, async () => (await request(`http://127.0.0.1:${shop}/`, { timeoutMs: 1000 }).catch(() => null)) === null);
    expect(status(file).sites.map((x) => x.name)).toEqual(["blog", "news"]);
    process.kill(daemon.proc.pid!, "SIGTERM");
    expect((await daemon.exited).code).toBe(0);
  });

  test("tsgi stop drains a request in flight; a second SIGTERM stops at once", async () => {
    const { file, blog, daemon } = await twoSites("drain");
    const slow = request(`http://127.0.0.1:${blog}/slow`);
    await new Promise((r) => setTimeout(r, 300));
    expect(tsgi(["stop", "-c", file]).code).toBe(0);
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe("slow done\n");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });

    const second = await twoSites("twice");
    const cut = request(`http://127.0.0.1:${second.blog}/slow`).catch(() => null);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(second.daemon.proc.pid!, "SIGTERM");
    await new Promise((r) => setTimeout(r, 100));
    process.kill(second.daemon.proc.pid!, "SIGTERM");
    const started = Date.now();
    expect((await second.daemon.exited).code).toBe(130);
    expect(Date.now() - started).toBeLessThan(1000);
    await cut;
  });
});

// `allow`, `status` and `metrics` (DESIGN §4, issue 9) with real processes: a daemon whose TCP
// listeners (FastCGI, uwsgi, HTTP) allow 127.0.0.1 only, reached from 127.0.0.2 (closed at
// accept, one log line per listener and second, every refusal counted) and from 127.0.0.1
// (served); `tsgi check`, `tsgi daemon` and `tsgi serve` refusing a listener on 0.0.0.0
// without allow; and the status page and metrics through real nginx over FastCGI — from
// an allowed REMOTE_ADDR the site's workers (the pids of `tsgi status --json`) and their
// requests, as text, JSON and strictly parsed Prometheus text; from a REMOTE_ADDR outside
// allow (nginx sending a fixed one), the application's own answer.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { binding } from "../../src/native.ts";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";
import { request } from "../integration/client.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");

const APP = `
export function application(environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ app: true, pid: process.pid, path: environ.PATH_INFO, remote: environ.REMOTE_ADDR })];
}
`;

interface Daemon {
  proc: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let dir: string;
const running: Daemon[] = [];
const fronts: FrontServer[] = [];

function startDaemon(file: string): Daemon {
  let err = "";
  const proc = spawn(process.execPath, [BIN, "daemon", "-c", file], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const d = { proc, stderr: () => err, exited };
  running.push(d);
  return d;
}

async function stopDaemon(d: Daemon): Promise<void> {
  d.proc.kill("SIGTERM");
  expect((await d.exited).code).toBe(0);
}

type Falsy = null | undefined | false;

async function poll<T>(what: string, timeoutMs: number, fn: () => T | Falsy | Promise<T | Falsy>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tsgi(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface WorkerJson {
  pid: number;
  index: number;
  state: string;
  served: number;
  inFlight: number;
  rssBytes: number;
}
interface StatusJson {
  master: { pid: number };
  sites: { name: string; state: string; processes: number; workers: WorkerJson[] }[];
}

/**
 * Sends `bytes` from `localAddress` and collects what comes back until the peer closes: the
 * bytes and how long the connection lived.
 */
function exchange(port: number, bytes: Buffer, localAddress: string, timeoutMs = 15_000): Promise<{ data: Buffer; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const sock = connect({ host: "127.0.0.1", port, localAddress });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no close within ${timeoutMs} ms from ${localAddress} to port ${port}`));
    }, timeoutMs);
    sock.on("connect", () => sock.write(bytes));
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ms: Date.now() - started });
    });
  });
}

const FCGI_PARAMS = 4;
const FCGI_STDIN = 5;
const CGI = ["REQUEST_METHOD", "GET", "SCRIPT_NAME", "", "PATH_INFO", "/", "REQUEST_URI", "/", "QUERY_STRING", "", "SERVER_PROTOCOL", "HTTP/1.1", "REMOTE_ADDR", "127.0.0.1", "SERVER_NAME", "x", "SERVER_PORT", "80"];
const REQUESTS = {
  fastcgi: Buffer.concat([
    binding.fcgiEncodeBeginRequest(1, 1, 0),
    binding.fcgiEncodeStream(FCGI_PARAMS, 1, binding.fcgiEncodePairs(CGI), 65535),
    binding.fcgiEncodeStreamEnd(FCGI_PARAMS, 1),
    binding.fcgiEncodeStreamEnd(FCGI_STDIN, 1),
  ]),
  uwsgi: binding.uwsgiEncodeRequest(CGI, 0, 0),
  http: Buffer.from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
};

/** Prometheus text format 0.0.4, checked strictly: every sample's family has HELP and TYPE before it, names and labels are legal, values are numbers, no series twice. */
function parsePrometheus(text: string): { type: Map<string, string>; samples: { name: string; labels: Record<string, string>; value: number }[] } {
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const type = new Map<string, string>();
  const help = new Set<string>();
  const seen = new Set<string>();
  const done = new Set<string>();
  let current: string | null = null;
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  expect(text.endsWith("\n")).toBe(true);
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      expect(name, line).toMatch(NAME);
      if (kind === "TYPE") {
        expect(["counter", "gauge", "histogram", "summary", "untyped"], line).toContain(rest);
        expect(type.has(name), `TYPE ${name} twice`).toBe(false);
        type.set(name, rest);
      } else {
        expect(help.has(name), `HELP ${name} twice`).toBe(false);
        help.add(name);
      }
      if (current !== name) {
        if (current) done.add(current);
        expect(done.has(name), `family ${name} not contiguous`).toBe(false);
        current = name;
      }
      continue;
    }
    expect(line.startsWith("#"), `a comment that is not HELP or TYPE: ${line}`).toBe(false);
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `not a sample line: ${JSON.stringify(line)}`).not.toBeNull();
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string];
    expect(name, line).toMatch(NAME);
    expect(name, `${name}'s samples under another family`).toBe(current);
    expect(type.has(name) && help.has(name), `${name} without HELP and TYPE before it`).toBe(true);
    const labels: Record<string, string> = {};
    if (labelText !== undefined) {
      const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let at = 0;
      while (at < labelText.length) {
        LABEL.lastIndex = at;
        const l = LABEL.exec(labelText);
        expect(l, `bad labels in ${line}`).not.toBeNull();
        expect(l![1]! in labels, `label ${l![1]} twice in ${line}`).toBe(false);
        labels[l![1]!] = l![2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
        at = LABEL.lastIndex;
      }
    }
    expect(valueText, line).toMatch(/^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    expect(seen.has(key), `series twice: ${line}`).toBe(false);
    seen.add(key);
    samples.push({ name, labels, value: Number(valueText) });
  }
  return { type, samples };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-allow-"));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "app.mjs"), APP);
});

afterAll(async () => {
  for (const f of fronts) await f.stop();
  for (const d of running) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("allow", () => {
  test("TCP listeners with allow = [127.0.0.1]: a peer from 127.0.0.2 is closed at accept with a log line (FastCGI, uwsgi, HTTP); 127.0.0.1 is served", async () => {
    const ports = { fastcgi: await freePort(), uwsgi: await freePort(), http: await freePort() };
    const file = join(dir, "refuse.toml");
    writeFileSync(
      file,
      `[site.guarded]\napp = "app.mjs"\nrun-as-root = true\nallow = ["127.0.0.1"]\n# an idle allowed connection stays this long: a refused one is closed long before\nheader-timeout = "30s"\n` +
        `listen = ["fastcgi:127.0.0.1:${ports.fastcgi}", "uwsgi:127.0.0.1:${ports.uwsgi}", "http:127.0.0.1:${ports.http}"]\n`,
    );
    const daemon = startDaemon(file);
    await poll("ready", 20_000, () => /ready: 1 of 1 sites running/.test(daemon.stderr()));
    for (const proto of ["fastcgi", "uwsgi", "http"] as const) {
      const ok = await exchange(ports[proto], REQUESTS[proto], "127.0.0.1");
      expect(ok.data.toString("latin1"), proto).toMatch(/"app":true/);
      const refused = await exchange(ports[proto], REQUESTS[proto], "127.0.0.2");
      expect(refused.data.length, proto).toBe(0);
      expect(refused.ms, proto).toBeLessThan(5000);
      await poll(`the ${proto} refusal logged`, 5000, () =>
        new RegExp(`\\[warn\\] \\[guarded\\] TSGI_ERR_POOL_PEER_REFUSED: 127\\.0\\.0\\.2:\\d+ is not in allow: its connection to ${proto} 127\\.0\\.0\\.1:${ports[proto]} was closed`).test(daemon.stderr()),
      );
    }

    // A peer retrying in a loop: at most a line a second, and every refusal counted in them.
    const linesOf = () => daemon.stderr().split("\n").filter((l) => l.includes(`connection to uwsgi 127.0.0.1:${ports.uwsgi}`));
    await new Promise((r) => setTimeout(r, 1100));
    const before = linesOf().length;
    for (let i = 0; i < 20; i++) expect((await exchange(ports.uwsgi, REQUESTS.uwsgi, "127.0.0.2")).data.length).toBe(0);
    await new Promise((r) => setTimeout(r, 1100));
    await exchange(ports.uwsgi, REQUESTS.uwsgi, "127.0.0.2");
    await poll("the last refusal logged", 5000, () => linesOf().length > before + 1);
    const burst = linesOf().slice(before);
    const counted = burst.reduce((n, l) => n + 1 + Number(/\(and (\d+) more since the last such line\)/.exec(l)?.[1] ?? 0), 0);
    expect(counted).toBe(21);
    expect(burst.length).toBeLessThanOrEqual(10);
    await stopDaemon(daemon);
  });

  test("a TCP listener on 0.0.0.0 without allow: refused by tsgi check, tsgi daemon and tsgi serve; with allow it starts", async () => {
    const port = await freePort();
    const file = join(dir, "open.toml");
    writeFileSync(file, `[site.open]\napp = "app.mjs"\nrun-as-root = true\nlisten = ["fastcgi:0.0.0.0:${port}"]\n`);
    const expected = `${file}: site open: allow: missing: the site listens on 0.0.0.0:${port} (not a loopback address) without allow; list the peers that may connect (the front servers), e.g. allow = ["10.0.0.5"], or allow = ["0.0.0.0/0", "::/0"] for every peer`;
    const check = tsgi(["check", "-c", file]);
    expect(check.code).toBe(1);
    expect(check.stderr).toBe(`${expected}\n`);
    const daemon = tsgi(["daemon", "-c", file]);
    expect(daemon.code).not.toBe(0);
    expect(daemon.stderr).toContain(expected);
    const serve = tsgi(["serve", join(dir, "app.mjs"), "--listen", `fastcgi:0.0.0.0:${port}`]);
    expect(serve.code).not.toBe(0);
    expect(serve.stderr).toContain(`tsgi serve: TSGI_ERR_CONFIG_INVALID: allow: missing: the site listens on 0.0.0.0:${port} (not a loopback address) without --allow`);
    expect(tsgi(["serve", join(dir, "app.mjs"), "--listen", `fastcgi:127.0.0.1:${port}`, "--allow", "10.0.0.0/33"]).stderr).toContain(
      'tsgi serve: TSGI_ERR_CONFIG_INVALID: allow must list IPv4 or IPv6 addresses or networks (such as "10.0.0.5", "10.0.0.0/8", "fd00::/8"): "10.0.0.0/33" has a prefix length out of 0–32',
    );

    writeFileSync(file, `${readFileSync(file, "utf8")}allow = ["127.0.0.1", "192.0.2.0/24"]\n`);
    expect(tsgi(["check", "-c", file]).code).toBe(0);
    const d = startDaemon(file);
    await poll("ready", 20_000, () => /ready: 1 of 1 sites running/.test(d.stderr()));
    expect((await exchange(port, REQUESTS.fastcgi, "127.0.0.1")).data.toString("latin1")).toMatch(/"app":true/);
    await stopDaemon(d);
  });
});

describe("status page and metrics", () => {
  test("through nginx (FastCGI, TCP, mount /app): from an allowed REMOTE_ADDR the site's workers and requests as text, JSON and Prometheus; from another, the application answers", async () => {
    const port = await freePort();
    const file = join(dir, "status.toml");
    writeFileSync(
      file,
      `[site.shop]\napp = "app.mjs"\nrun-as-root = true\nprocesses = 2\nmount = "/app"\nallow = ["127.0.0.1"]\n` +
        `status = "/tsgi-status"\nmetrics = "/tsgi-metrics"\nlisten = ["fastcgi:127.0.0.1:${port}"]\n`,
    );
    const daemon = startDaemon(file);
    await poll("ready", 20_000, () => /ready: 1 of 1 sites running/.test(daemon.stderr()));
    // Two front doors: the usual params (REMOTE_ADDR the client, 127.0.0.1 here), and the same
    // params with REMOTE_ADDR fixed to an address outside allow.
    const outsideParams = readFileSync("/etc/nginx/fastcgi_params", "utf8")
      .split("\n")
      .filter((l) => !/\bREMOTE_ADDR\b/.test(l))
      .join("\n");
    const outsidePort = await freePort();
    const nginx = await startNginx({
      conf: `
        server {
          listen {{HOST}}:{{PORT}};
          location /app/ { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:{{TSGI}}; }
        }
        server {
          listen {{HOST}}:{{OUTSIDE}};
          location /app/ { include {{DIR}}/outside_params; fastcgi_param REMOTE_ADDR 192.0.2.7; fastcgi_pass 127.0.0.1:{{TSGI}}; }
        }`,
      vars: { TSGI: port, OUTSIDE: outsidePort },
      files: { outside_params: outsideParams },
    });
    fronts.push(nginx);
    const base = `http://127.0.0.1:${nginx.port}/app`;
    const outside = `http://127.0.0.1:${outsidePort}/app`;

    const N = 30;
    for (let i = 0; i < N; i++) expect((await request(`${base}/page`)).status).toBe(200);
    const fromCli = JSON.parse(tsgi(["status", "--json", "-c", file]).stdout) as StatusJson;
    const pids = fromCli.sites[0]!.workers.map((w) => w.pid).sort();
    expect(pids).toHaveLength(2);

    // JSON: the shape of `tsgi status --json` for this one site; the requests counted once a
    // heartbeat carried them (the page's own requests count too).
    const page = await poll("the page with every request counted", 15_000, async () => {
      const r = await request(`${base}/tsgi-status?json`);
      if (r.status !== 200) return null;
      const s = JSON.parse(r.body.toString()) as StatusJson;
      const site = s.sites[0]!;
      return site.state === "running" && site.workers.reduce((n, w) => n + w.served, 0) >= N ? { r, s } : null;
    });
    expect(page.r.headers).toContainEqual(["content-type", "application/json"]);
    expect(page.s.master.pid).toBe(daemon.proc.pid);
    expect(page.s.sites.map((x) => x.name)).toEqual(["shop"]);
    expect(page.s.sites[0]!.workers.map((w) => w.pid).sort()).toEqual(pids);
    expect(Object.keys(page.s.sites[0]!).sort()).toEqual(Object.keys(fromCli.sites[0]!).sort());
    expect(Object.keys(page.s.sites[0]!.workers[0]!).sort()).toEqual(Object.keys(fromCli.sites[0]!.workers[0]!).sort());
    // The worker answering is counting this very request.
    expect(page.s.sites[0]!.workers.some((w) => w.inFlight >= 1)).toBe(true);

    // Text, as `tsgi status` prints it.
    const text = await request(`${base}/tsgi-status`);
    expect(text.status).toBe(200);
    expect(text.headers).toContainEqual(["content-type", "text/plain; charset=utf-8"]);
    expect(text.body.toString()).toMatch(new RegExp(`^master pid ${daemon.proc.pid}, up `));
    expect(text.body.toString()).toMatch(/site shop: running, 2 processes, generation 1/);
    for (const pid of pids) expect(text.body.toString()).toMatch(new RegExp(`\\n  [12]\\s+${pid}\\s+ready\\s+\\d+`));

    // Prometheus. Each worker answers from its own latest snapshot (up to two heartbeats old
    // for the other worker's figures): polled until it counts the N requests too.
    const m = await poll("the metrics with every request counted", 15_000, async () => {
      const r = await request(`${base}/tsgi-metrics`);
      const total = [...r.body.toString().matchAll(/^tsgi_requests_total\{.*\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
      return r.status === 200 && total >= N ? r : null;
    });
    expect(m.headers).toContainEqual(["content-type", "text/plain; version=0.0.4; charset=utf-8"]);
    const { type, samples } = parsePrometheus(m.body.toString());
    const of = (name: string) => samples.filter((s) => s.name === name);
    expect(type.get("tsgi_requests_total")).toBe("counter");
    expect(type.get("tsgi_workers")).toBe("gauge");
    expect(of("tsgi_workers").find((s) => s.labels.state === "ready")).toMatchObject({ labels: { site: "shop", state: "ready" }, value: 2 });
    expect(of("tsgi_site_state").find((s) => s.value === 1)?.labels).toEqual({ site: "shop", state: "running" });
    expect(of("tsgi_requests_total").map((s) => Number(s.labels.pid)).sort()).toEqual(pids);
    expect(of("tsgi_requests_total").reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(N);
    for (const name of ["tsgi_requests_in_flight", "tsgi_worker_rss_bytes", "tsgi_worker_uptime_seconds", "tsgi_worker_info"]) {
      expect(of(name).map((s) => s.labels.worker).sort(), name).toEqual(["1", "2"]);
    }
    expect(of("tsgi_worker_rss_bytes").every((s) => s.value > 1024 * 1024)).toBe(true);
    expect(type.get("tsgi_worker_restarts_total")).toBe("counter");
    expect(of("tsgi_worker_restarts_total").every((s) => s.value === 0)).toBe(true);

    // A reload restarts both places: counted as such once the new workers report.
    process.kill(daemon.proc.pid!, "SIGHUP");
    const restarts = await poll("the reload's restarts in the metrics", 20_000, async () => {
      const r = await request(`${base}/tsgi-metrics`);
      const { samples: now } = parsePrometheus(r.body.toString());
      const reload = now.find((s) => s.name === "tsgi_worker_restarts_total" && s.labels.cause === "reload");
      return reload?.value === 2 ? now.filter((s) => s.name === "tsgi_worker_restarts_total") : null;
    });
    expect(restarts.map((s) => s.labels.cause).sort()).toEqual(["exception", "exit", "inactivity-timeout", "max-requests", "ondemand", "reload"]);
    expect(restarts.filter((s) => s.labels.cause !== "reload").every((s) => s.value === 0)).toBe(true);

    // From a REMOTE_ADDR outside allow: the application's, as any other request.
    for (const path of ["/tsgi-status", "/tsgi-status?json", "/tsgi-metrics"]) {
      const r = await request(`${outside}${path}`);
      expect(r.status, path).toBe(200);
      expect(JSON.parse(r.body.toString()), path).toMatchObject({ app: true, path: path.split("?")[0], remote: "192.0.2.7" });
    }
    // Other paths are the application's from anywhere; the page is only at the mount's path.
    expect(JSON.parse((await request(`${base}/tsgi-status/x`)).body.toString())).toMatchObject({ app: true, path: "/tsgi-status/x" });
    await stopDaemon(daemon);
  });
});

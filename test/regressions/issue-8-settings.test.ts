// Issue 8, point 3: no `tsgi serve` flag is accepted and does nothing. The test walks
// SETTING_LIST (src/daemon/settings/index.ts): every key but `app` (the positional argument)
// has one check here, a test fails when a key has none, and each check starts a real
// `tsgi serve` with that flag and shows what changes for a user against a `tsgi serve` with
// the defaults (the baseline, started once).

import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, existsSync, readFileSync, chmodSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SETTING_LIST } from "../../src/daemon/settings/index.ts";
import { uwsgi } from "../../src/native.ts";
import { request, type Reply } from "../integration/client.ts";
import {
  cgiParams,
  fcgiRequest,
  groupId,
  openSocket,
  PROBE_APP,
  poll,
  ROOT,
  runTsgi,
  serve,
  sleep,
  statusIds,
  stopAll,
  userIds,
  uwsgiRequest,
  workersOf,
  type Proc,
} from "./support/serve.ts";

// Every process here inherits these: the baseline shows what a worker gets by default.
const ENV = { PROBE_INHERITED: "yes", TSGI_SETTINGS_MODULE: "from.environment" };

let dir: string;
/** `tsgi serve` with every setting at its default: HTTP, uwsgi and a FastCGI unix socket. */
let base: Proc;
let baseSocket: string;

interface Info {
  pid: number;
  ppid: number;
  cwd: string;
  uid: number;
  gid: number;
  env: Record<string, string>;
  environ: Record<string, string>;
}

interface Slow {
  pid: number;
  active: number;
  start: number;
  end: number;
}

const json = <T>(r: Reply | { body: string | Buffer }) => JSON.parse(r.body.toString()) as T;

async function get(p: Proc, path: string, n = 0): Promise<Reply> {
  return request(`${p.url(n)}${path}`);
}

async function info(p: Proc, n = 0): Promise<Info> {
  const r = await get(p, "/info", n);
  expect(r.status, r.body.toString()).toBe(200);
  return json<Info>(r);
}

/** `tsgi serve probe.mjs ARGS…` with ENV, remembered for afterAll. */
function start(args: string[], o: { app?: string; env?: Record<string, string | null> } = {}): Promise<Proc> {
  return serve(o.app ?? PROBE_APP, args, { env: { ...ENV, ...o.env } });
}

const HTTP = ["--listen", "http:127.0.0.1:0"];
const UWSGI = ["--listen", "uwsgi:127.0.0.1:0"];

/** A connection that sends `bytes` and stays open: resolves with when it closed (ms after connect), or null after `waitMs`. */
async function closedWithin(address: { host: string; port: number }, bytes: Buffer, waitMs: number): Promise<{ ms: number | null; received: number }> {
  const sock = await openSocket(address);
  const t0 = Date.now();
  let received = 0;
  sock.on("data", (b: Buffer) => (received += b.length));
  sock.on("error", () => undefined);
  if (bytes.length) sock.write(bytes);
  const closed = await Promise.race([new Promise<number>((r) => sock.once("close", () => r(Date.now() - t0))), sleep(waitMs).then(() => null)]);
  sock.destroy();
  return { ms: closed, received };
}

/** `poll` for a check that has to wait for a reply. */
async function pollAsync<T>(what: string, timeoutMs: number, check: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

type Check = { sees: string; run: () => Promise<void> };

const checks: Record<string, Check> = {
  listen: {
    sees: "each --listen (http, uwsgi, a FastCGI unix socket) answers; none at all is an error",
    async run() {
      const path = join(dir, "listen.sock");
      const p = await start([...HTTP, ...UWSGI, "--listen", `fastcgi:unix:${path}`]);
      expect(p.listening).toEqual([expect.stringMatching(/^http 127\.0\.0\.1:\d+$/), expect.stringMatching(/^uwsgi 127\.0\.0\.1:\d+$/), `fastcgi unix:${path}`]);
      const viaHttp = await info(p, 0);
      const viaUwsgi = await uwsgiRequest(p.tcp(1), "/info");
      const viaFcgi = await fcgiRequest({ path }, "/info");
      expect([viaUwsgi.status, viaFcgi.status]).toEqual([200, 200]);
      expect(json<Info>(viaUwsgi).pid).toBe(viaHttp.pid);
      expect(json<Info>(viaFcgi).pid).toBe(viaHttp.pid);
      const none = await runTsgi(["serve", PROBE_APP]);
      expect(none.code).not.toBe(0);
      expect(none.stderr).toMatch(/give at least one --listen/);
    },
  },

  settings: {
    sees: "the workers' TSGI_SETTINGS_MODULE is the flag's value, over the one inherited",
    async run() {
      const p = await start([...HTTP, "--settings", "from.flag"]);
      expect((await info(p)).env.TSGI_SETTINGS_MODULE).toBe("from.flag");
      expect((await info(base)).env.TSGI_SETTINGS_MODULE).toBe("from.environment");
    },
  },

  "socket-mode": {
    sees: "the unix socket's permissions are the flag's (default 0660)",
    async run() {
      const path = join(dir, "mode.sock");
      await start(["--listen", `uwsgi:unix:${path}`, "--socket-mode", "0604"]);
      expect(statSync(path).mode & 0o777).toBe(0o604);
      expect(statSync(baseSocket).mode & 0o777).toBe(0o660);
      expect((await uwsgiRequest({ path }, "/info")).status).toBe(200);
    },
  },

  "socket-owner": {
    sees: "the unix socket belongs to the named user (default: tsgi's own)",
    async run() {
      const path = join(dir, "owner.sock");
      await start(["--listen", `uwsgi:unix:${path}`, "--socket-owner", "nobody", "--run-as-root"]);
      expect(statSync(path).uid).toBe(userIds("nobody").uid);
      expect(statSync(baseSocket).uid).toBe(process.getuid!());
    },
  },

  "socket-group": {
    sees: "the unix socket belongs to the named group (default: tsgi's own)",
    async run() {
      const path = join(dir, "group.sock");
      await start(["--listen", `uwsgi:unix:${path}`, "--socket-group", "nogroup", "--run-as-root"]);
      expect(statSync(path).gid).toBe(groupId("nogroup"));
      expect(statSync(baseSocket).gid).toBe(process.getgid!());
    },
  },

  processes: {
    sees: "three worker processes serve the site (default one)",
    async run() {
      const p = await start([...HTTP, "--processes", "3"]);
      expect(p.errorLog()).toMatch(/listening on http \S+ \(3 workers\)/);
      const workers = workersOf(p.pid);
      expect(workers).toHaveLength(3);
      const seen = await Promise.all([1, 2, 3, 4, 5, 6].map(() => info(p)));
      for (const i of seen) expect(workers).toContain(i.pid);
      expect(workersOf(base.pid)).toHaveLength(1);
    },
  },

  concurrency: {
    sees: "with 1, a slow route never runs twice at once in a worker and every request is answered; with 2 workers the second runs at once on the other",
    async run() {
      const events = join(dir, "concurrency-events");
      const [one, two] = await Promise.all([
        start([...UWSGI, "--concurrency", "1"]),
        start([...UWSGI, "--processes", "2", "--concurrency", "1"], { env: { PROBE_EVENTS: events } }),
      ]);
      // One worker, concurrency 1: three requests at once run one after the other.
      const serial = await Promise.all([1, 2, 3].map(() => uwsgiRequest(one.tcp(), "/slow?ms=300")));
      expect(serial.map((r) => r.status)).toEqual([200, 200, 200]);
      const runs = serial.map((r) => json<Slow>(r)).sort((a, b) => a.start - b.start);
      expect(runs.map((r) => r.active)).toEqual([1, 1, 1]);
      for (let i = 1; i < runs.length; i++) expect(runs[i]!.start).toBeGreaterThanOrEqual(runs[i - 1]!.end);
      // The default (100): the same three requests are in the application together.
      const together = await Promise.all([1, 2, 3].map(() => uwsgiRequest(base.tcp(1), "/slow?ms=300")));
      expect(Math.max(...together.map((r) => json<Slow>(r).active))).toBeGreaterThanOrEqual(2);
      // Two workers, concurrency 1: a busy worker stops accepting, and the other takes every
      // request that comes meanwhile at once. Which worker the kernel hands a connection to is
      // chance: short requests one after the other for 500 ms, twice, give it many tries.
      const rounds: { long: Slow; shorts: Slow[] }[] = [];
      for (let i = 0; i < 2; i++) {
        const long = uwsgiRequest(two.tcp(), `/slow?ms=800&id=long${i}`);
        await poll("the long request in the application", 5000, () => existsSync(events) && readFileSync(events, "utf8").includes(`long${i} start`));
        const shorts: Slow[] = [];
        for (const until = Date.now() + 500; Date.now() < until; ) shorts.push(json<Slow>(await uwsgiRequest(two.tcp(), "/slow?ms=10")));
        rounds.push({ long: json<Slow>(await long), shorts });
      }
      const waited = rounds.flatMap(({ long, shorts }) =>
        shorts.filter((s) => s.pid === long.pid || s.end > long.end).map((s) => `a request waited ${s.start - long.start} ms behind the busy worker ${long.pid}`),
      );
      expect(waited).toEqual([]);
      for (const { long, shorts } of rounds) {
        expect(shorts.length).toBeGreaterThan(3);
        expect([long.active, ...shorts.map((s) => s.active)].every((a) => a === 1)).toBe(true);
      }
    },
  },

  cwd: {
    sees: "the workers run in the given folder, and a relative application path is found from it",
    async run() {
      const where = join(dir, "cwd-here");
      mkdirSync(where);
      const apps = join(ROOT, "test", "regressions", "apps");
      const p = await start([...HTTP, "--cwd", apps], { app: "probe.mjs" });
      expect((await info(p)).cwd).toBe(realpathSync(apps));
      const q = await start([...HTTP, "--cwd", where]);
      expect((await info(q)).cwd).toBe(realpathSync(where));
      expect((await info(base)).cwd).toBe(realpathSync(ROOT));
    },
  },

  env: {
    sees: "each --env NAME=VALUE is in the workers' environment, with the inherited one",
    async run() {
      const p = await start([...HTTP, "--env", "GREETING=hello", "--env", "EQUATION=a=b"]);
      const { env } = await info(p);
      expect(env.GREETING).toBe("hello");
      expect(env.EQUATION).toBe("a=b");
      expect(env.PROBE_INHERITED).toBe("yes");
      expect((await info(base)).env.GREETING).toBeUndefined();
    },
  },

  "clear-env": {
    sees: "the workers see only PATH, --env and tsgi's own variables, not tsgi's environment",
    async run() {
      const p = await start([...HTTP, "--clear-env", "--env", "KEPT=1"]);
      const { env } = await info(p);
      expect(env.KEPT).toBe("1");
      expect(env.PATH).toBe(process.env.PATH);
      expect(env.PROBE_INHERITED).toBeUndefined();
      expect(Object.keys(env).filter((k) => k !== "PATH" && k !== "KEPT" && !k.startsWith("TSGI_"))).toEqual([]);
      expect((await info(base)).env.PROBE_INHERITED).toBe("yes");
    },
  },

  user: {
    sees: "the workers run as the named user (uid and its group in /proc/PID/status)",
    async run() {
      const nobody = userIds("nobody");
      const p = await start([...HTTP, "--user", "nobody"]);
      const i = await info(p);
      expect(statusIds(i.pid, "Uid")).toEqual([nobody.uid, nobody.uid, nobody.uid, nobody.uid]);
      expect(statusIds(i.pid, "Gid")).toEqual([nobody.gid, nobody.gid, nobody.gid, nobody.gid]);
      // No supplementary group of root's is kept.
      const groups = /^Groups:(.*)$/m.exec(readFileSync(`/proc/${i.pid}/status`, "utf8"))![1]!.trim().split(/\s+/).filter(Boolean).map(Number);
      expect(groups.filter((g) => g !== nobody.gid)).toEqual([]);
      expect(statusIds((await info(base)).pid, "Uid")).toEqual([0, 0, 0, 0]);
    },
  },

  group: {
    sees: "the workers run with the named group (Gid in /proc/PID/status)",
    async run() {
      const gid = groupId("www-data");
      const p = await start([...HTTP, "--group", "www-data", "--run-as-root"]);
      const i = await info(p);
      expect(statusIds(i.pid, "Gid")).toEqual([gid, gid, gid, gid]);
      expect(statusIds((await info(base)).pid, "Gid")).toEqual([0, 0, 0, 0]);
    },
  },

  "run-as-root": {
    sees: "started as root without --user, no 'running as root' warning (the default prints one)",
    async run() {
      const p = await start([...HTTP, "--run-as-root"]);
      expect((await info(p)).uid).toBe(0);
      expect(p.errorLog()).not.toMatch(/running as root without --user/);
      expect(base.errorLog()).toMatch(/\[warn\] \[probe\] running as root without --user/);
    },
  },

  mount: {
    sees: "SCRIPT_NAME is the mount, PATH_INFO the rest, and a path outside it is 404",
    async run() {
      const p = await start([...HTTP, "--mount", "/app"]);
      const r = await get(p, "/app/info");
      expect(r.status).toBe(200);
      expect(json<Info>(r).environ).toMatchObject({ SCRIPT_NAME: "/app", PATH_INFO: "/info" });
      expect((await get(p, "/info")).status).toBe(404);
      expect((await info(base)).environ).toMatchObject({ SCRIPT_NAME: "", PATH_INFO: "/info" });
    },
  },

  "max-requests": {
    sees: "with 3, the worker is replaced after 3 requests and no request fails",
    async run() {
      const p = await start([...HTTP, "--max-requests", "3"]);
      const pids: number[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < 60 && new Set(pids).size < 2; i++) {
        const r = await get(p, "/info");
        statuses.push(r.status);
        if (r.status === 200) pids.push(json<Info>(r).pid);
        await sleep(30);
      }
      expect(statuses.every((s) => s === 200), `statuses ${statuses.join(",")}`).toBe(true);
      expect(new Set(pids).size).toBe(2);
      // The first worker served its three (and any that came while its successor booted).
      expect(pids.filter((x) => x === pids[0]).length).toBeGreaterThanOrEqual(3);
      await p.waitForLog(/\[info\] \[probe\] worker 1 \(pid \d+\) is replaced: max-requests \(3 served\)/);
      // The default never recycles: the baseline's worker serves ten in a row.
      const basePids = new Set<number>();
      for (let i = 0; i < 10; i++) basePids.add((await info(base)).pid);
      expect(basePids.size).toBe(1);
    },
  },

  "request-timeout": {
    sees: "a route slower than it gets 504 when it runs out; the default lets it finish",
    async run() {
      const p = await start([...HTTP, "--request-timeout", "300ms"]);
      const t0 = Date.now();
      const r = await get(p, "/slow?ms=3000");
      expect(r.status).toBe(504);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect((await get(p, "/slow?ms=20")).status).toBe(200);
      expect((await get(base, "/slow?ms=600")).status).toBe(200);
    },
  },

  "graceful-timeout": {
    sees: "a stop waits for a request in flight up to it (default 30 s), and one longer than it is cut",
    async run() {
      const [short, dflt] = await Promise.all([start([...HTTP, "--graceful-timeout", "500ms"]), start(HTTP)]);
      const outcome = (p: Proc, ms: number) =>
        get(p, `/slow?ms=${ms}`).then(
          (r) => ({ status: r.status, complete: r.complete, at: Date.now() }),
          (err: Error) => ({ status: 0, complete: false, error: err.message, at: Date.now() }),
        );
      const cut = outcome(short, 6000);
      const waited = outcome(dflt, 1500);
      await sleep(300);
      const t0 = Date.now();
      process.kill(short.pid, "SIGTERM");
      process.kill(dflt.pid, "SIGTERM");
      const [shortExit, dfltExit] = await Promise.all([short.exited.then((e) => ({ ...e, at: Date.now() })), dflt.exited.then((e) => ({ ...e, at: Date.now() }))]);
      const [c, w] = await Promise.all([cut, waited]);
      // 500 ms: the stop does not wait for the 6 s request; the client gets no complete answer.
      expect(shortExit.at - t0).toBeLessThan(3500);
      expect(c.status === 200 && c.complete).toBe(false);
      // Default: the request finishes with its 200, and the master exits after it.
      expect(w).toMatchObject({ status: 200, complete: true });
      expect(dfltExit.code).toBe(0);
      expect(dfltExit.at).toBeGreaterThanOrEqual(w.at - 50);
    },
  },

  "header-timeout": {
    sees: "a connection that sends half a request is closed after it (the default keeps it open for 10 s)",
    async run() {
      const p = await start([...UWSGI, "--header-timeout", "500ms"]);
      const half = Buffer.from([0, 0x40]);
      const [mine, dflt] = await Promise.all([closedWithin(p.tcp(), half, 3000), closedWithin(base.tcp(1), half, 1500)]);
      expect(mine.ms).not.toBeNull();
      expect(mine.ms!).toBeGreaterThanOrEqual(400);
      expect(mine.ms!).toBeLessThan(2500);
      expect(dflt.ms).toBeNull();
      await p.waitForLog(/TSGI_ERR_UWSGI_HEADER_TIMEOUT: no complete uwsgi request head within header-timeout \(0\.5s\)/);
    },
  },

  "inactivity-timeout": {
    sees: "with 1s, a worker idle 1 s after a request is replaced; a fresh worker that served nothing is not",
    async run() {
      const p = await start([...HTTP, "--inactivity-timeout", "1s"]);
      const [fresh] = workersOf(p.pid);
      expect(fresh).toBeDefined();
      await sleep(1500);
      expect(workersOf(p.pid)).toEqual([fresh]);
      expect((await info(p)).pid).toBe(fresh);
      const next = await poll("the idle worker's replacement", 6000, () => {
        const w = workersOf(p.pid);
        return w.length === 1 && w[0] !== fresh ? w[0] : null;
      });
      expect((await info(p)).pid).toBe(next);
      expect(p.errorLog()).toMatch(/worker 1 idle for 1s \(inactivity-timeout\): replacing it/);
    },
  },

  ondemand: {
    sees: "with it, no worker runs until the first request, which a worker started for it answers; idle, it stops (the default starts one at once)",
    async run() {
      const p = await start([...HTTP, "--ondemand", "--inactivity-timeout", "1s"]);
      expect(workersOf(p.pid)).toEqual([]);
      expect(workersOf(base.pid)).toHaveLength(1);
      const r = await get(p, "/info");
      expect(r.status).toBe(200);
      expect(workersOf(p.pid)).toEqual([json<Info>(r).pid]);
      await poll("the idle worker to stop", 8000, () => workersOf(p.pid).length === 0);
      expect(p.errorLog()).toMatch(/worker 1 idle for \d+s \(inactivity-timeout\): stopping it \(ondemand\)/);
      expect((await get(p, "/info")).status).toBe(200);
    },
  },

  "max-connections": {
    sees: "with 2, a third connection is closed at once (the default keeps it)",
    async run() {
      const p = await start([...UWSGI, "--max-connections", "2"]);
      const held = await Promise.all([openSocket(p.tcp()), openSocket(p.tcp())]);
      try {
        await sleep(100);
        const [third, dflt] = await Promise.all([closedWithin(p.tcp(), Buffer.alloc(0), 1000), closedWithin(base.tcp(1), Buffer.alloc(0), 800)]);
        expect(third.ms).not.toBeNull();
        expect(third.ms!).toBeLessThan(500);
        expect(third.received).toBe(0);
        expect(dflt.ms).toBeNull();
      } finally {
        for (const s of held) s.destroy();
      }
      await sleep(100);
      expect((await uwsgiRequest(p.tcp(), "/info")).status).toBe(200);
    },
  },

  "max-params": {
    sees: "with 1k, a request with a 2 KB params block closes the connection with a TOO_LARGE log line (the default serves it)",
    async run() {
      const p = await start([...UWSGI, "--listen", "fastcgi:127.0.0.1:0", "--max-params", "1k"]);
      const big = ["HTTP_X_BIG", "y".repeat(2000)];
      const [u, f] = await Promise.all([uwsgiRequest(p.tcp(0), "/info", { extra: big }), fcgiRequest(p.tcp(1), "/info", { extra: big })]);
      expect(u.raw.toString()).not.toMatch(/200 OK/);
      expect(f.raw.toString()).not.toMatch(/200 OK/);
      await p.waitForLog(/TSGI_ERR_UWSGI_VARS_TOO_LARGE/);
      await p.waitForLog(/TSGI_ERR_FCGI_PARAMS_TOO_LARGE/);
      expect((await uwsgiRequest(p.tcp(0), "/info")).status).toBe(200);
      expect((await uwsgiRequest(base.tcp(1), "/info", { extra: big })).status).toBe(200);
    },
  },

  "max-body": {
    sees: "with 1k, a 2000-byte body gets 413 and a 500-byte one is read (the default reads both)",
    async run() {
      const p = await start([...HTTP, "--max-body", "1k"]);
      const over = await request(`${p.url()}/body`, { body: Buffer.alloc(2000, 0x61) });
      expect(over.status).toBe(413);
      const under = await request(`${p.url()}/body`, { body: Buffer.alloc(500, 0x61) });
      expect(under.status).toBe(200);
      expect(json<{ length: number }>(under).length).toBe(500);
      const dflt = await request(`${base.url()}/body`, { body: Buffer.alloc(2000, 0x61) });
      expect(json<{ length: number }>(dflt).length).toBe(2000);
    },
  },

  "access-log": {
    sees: "a file gets the access lines and stdout none; 'off' writes none (the default writes them to stdout)",
    async run() {
      const file = join(dir, "access.log");
      const [toFile, off] = await Promise.all([start([...HTTP, "--access-log", file]), start([...HTTP, "--access-log", "off"])]);
      expect((await get(toFile, "/info?mark=file")).status).toBe(200);
      expect((await get(off, "/info?mark=off")).status).toBe(200);
      expect((await get(base, "/info?mark=base")).status).toBe(200);
      await poll("the access line in the file", 3000, () => existsSync(file) && readFileSync(file, "utf8").includes('"GET /info?mark=file HTTP/1.1" 200'));
      await poll("the baseline's access line on stdout", 3000, () => base.stdout().includes('"GET /info?mark=base HTTP/1.1" 200'));
      await sleep(300); // access lines are written within 50 ms
      expect(toFile.stdout()).toBe("");
      expect(off.stdout()).toBe("");
      expect(off.errorLog()).not.toMatch(/mark=off/);
    },
  },

  "error-log": {
    sees: "a file gets the error log (listening lines, an application's exception) and stderr stays empty",
    async run() {
      const file = join(dir, "error.log");
      const p = await start([...HTTP, "--error-log", file]);
      expect((await get(p, "/throw")).status).toBe(500);
      await poll("the exception in the error-log file", 3000, () => readFileSync(file, "utf8").includes("probe: the route threw on purpose"));
      const text = readFileSync(file, "utf8");
      expect(text).toMatch(/\[info\] \[probe\] listening on http 127\.0\.0\.1:\d+ \(1 worker\)/);
      expect(text).toMatch(/\[error\] \[probe\] .*probe: the route threw on purpose/);
      expect(p.stderr()).toBe("");
      expect(base.stderr()).toMatch(/listening on http/);
    },
  },

  allow: {
    sees: "with 127.0.0.1, a uwsgi peer from 127.0.0.2 is closed at accept with a TSGI_ERR_POOL_PEER_REFUSED line (the default, loopback, serves it)",
    async run() {
      const p = await start([...UWSGI, "--allow", "127.0.0.1"]);
      const from = async (a: { host: string; port: number }) => {
        const sock = connect({ host: a.host, port: a.port, localAddress: "127.0.0.2" });
        const chunks: Buffer[] = [];
        sock.on("data", (c: Buffer) => chunks.push(c));
        sock.on("error", () => undefined);
        sock.on("connect", () => sock.write(uwsgi.request(cgiParams("/info"))));
        await new Promise((r) => sock.once("close", r));
        return Buffer.concat(chunks).toString("latin1");
      };
      expect(await from(p.tcp())).toBe("");
      await p.waitForLog(/TSGI_ERR_POOL_PEER_REFUSED: 127\.0\.0\.2:\d+ is not in allow: its connection to uwsgi 127\.0\.0\.1:\d+ was closed/);
      expect((await uwsgiRequest(p.tcp(), "/info")).status).toBe(200);
      expect(await from(base.tcp(1))).toMatch(/^HTTP\/1\.1 200/);
    },
  },

  status: {
    sees: "GET /tsgi-status is tsgi's status page, naming the site and its worker (the default passes it to the application: 404)",
    async run() {
      const p = await start([...HTTP, "--status", "/tsgi-status"]);
      const page = await pollAsync("the status page", 5000, async () => {
        const r = await get(p, "/tsgi-status");
        // The first snapshot may be from the instant the worker became ready (the site still "starting").
        return r.status === 200 && r.body.toString().includes("site probe: running") ? r : null;
      });
      expect(page.body.toString()).toMatch(new RegExp(`site probe: running, 1 process, generation 1\\n[^]*\\n  1\\s+${workersOf(p.pid)[0]}\\s+ready`));
      expect((await get(base, "/tsgi-status")).body.toString()).toBe("no route /tsgi-status\n");
    },
  },

  metrics: {
    sees: "GET /tsgi-metrics is Prometheus text counting the worker's requests (the default passes it to the application: 404)",
    async run() {
      const p = await start([...HTTP, "--metrics", "/tsgi-metrics"]);
      for (let i = 0; i < 3; i++) expect((await get(p, "/info")).status).toBe(200);
      const m = await pollAsync("the metrics counting 3 requests", 5000, async () => {
        const r = await get(p, "/tsgi-metrics");
        const served = /^tsgi_requests_total\{site="probe",worker="1",pid="\d+"\} (\d+)$/m.exec(r.body.toString());
        return r.status === 200 && served && Number(served[1]) >= 3 ? r : null;
      });
      expect(m.body.toString()).toMatch(/^# TYPE tsgi_requests_total counter$/m);
      expect((await get(base, "/tsgi-metrics")).body.toString()).toBe("no route /tsgi-metrics\n");
    },
  },

  debug: {
    sees: "a 500 shows the exception to the client (the default does not)",
    async run() {
      const p = await start([...HTTP, "--debug"]);
      const shown = await get(p, "/throw");
      expect(shown.status).toBe(500);
      expect(shown.body.toString()).toMatch(/probe: the route threw on purpose/);
      const hidden = await get(base, "/throw");
      expect(hidden.status).toBe(500);
      expect(hidden.body.toString()).not.toMatch(/probe:|threw/);
    },
  },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-issue8-settings-"));
  chmodSync(dir, 0o755);
  baseSocket = join(dir, "base.sock");
  base = await start([...HTTP, ...UWSGI, "--listen", `fastcgi:unix:${baseSocket}`]);
});

afterAll(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("every setting of the table is a tsgi serve flag that changes what a user sees", () => {
  const keys = SETTING_LIST.filter((s) => s.key !== "app").map((s) => s.key);

  test("every key of SETTING_LIST but app has a check here, and no check is for a key the table lacks", () => {
    expect(Object.keys(checks).sort()).toEqual([...keys].sort());
  });

  test("tsgi serve --help lists every key as a flag", async () => {
    const r = await runTsgi(["serve", "--help"]);
    expect(r.code).toBe(0);
    for (const key of keys) expect(r.stdout).toMatch(new RegExp(`^\\s+--${key}\\b`, "m"));
  });

  for (const key of keys) {
    const check = checks[key];
    test.concurrent(`--${key}: ${check?.sees ?? "(no check written for this setting)"}`, async () => {
      expect(check, `no check for the setting ${key}`).toBeDefined();
      await check!.run();
    });
  }
});

// Issue 8, point 2: a second `tsgi serve` no longer takes over a live unix socket. Started on
// a path another tsgi answers on, it exits 1 with one TSGI_ERR_MASTER_SOCKET_IN_USE line that
// names the path, and the first site keeps serving through real nginx and Apache (before,
// during and after the refused start, the socket file untouched). A stale socket file (its
// server was SIGKILLed) is replaced; a path that is not a socket is refused and left as it
// was; at stop tsgi removes only the socket file it created (same inode) and leaves one that
// replaced it, with a warn line. A TCP address in use is one TSGI_ERR_MASTER_LISTEN line.

import { spawn } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { startApache, startNginx, type FrontServer } from "../support/front-servers.ts";
import { fcgiRequest, lines, openSocket, PROBE_APP, runTsgi, serve, stopAll, uwsgiRequest, type Proc } from "./support/serve.ts";

let dir: string;
let sitePath: string;
let first: Proc;
let nginx: FrontServer;
let apache: FrontServer;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The pid of the worker that answered GET /info through `base` (a front server or tsgi's HTTP). */
async function servedBy(base: string): Promise<number> {
  const r = await request(`${base}/info`);
  expect(r.status, `GET ${base}/info: ${r.body.toString()}`).toBe(200);
  return (JSON.parse(r.body.toString()) as { pid: number }).pid;
}

async function frontsServe(): Promise<number[]> {
  return Promise.all([servedBy(`http://${nginx.host}:${nginx.port}`), servedBy(`http://${apache.host}:${apache.port}`)]);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-issue8-sockets-"));
  // nginx and Apache workers run as www-data: they must reach the socket in here.
  chmodSync(dir, 0o755);
  sitePath = join(dir, "site.sock");
  first = await serve(PROBE_APP, ["--name", "first", "--listen", `fastcgi:unix:${sitePath}`, "--socket-mode", "0666", "--run-as-root"]);
  [nginx, apache] = await Promise.all([
    startNginx({
      conf: "server { listen {{HOST}}:{{PORT}}; location / { fastcgi_pass unix:{{SOCK}}; include /etc/nginx/fastcgi_params; } }",
      vars: { SOCK: sitePath },
    }),
    startApache({ conf: 'ProxyPass "/" "unix:{{SOCK}}|fcgi://localhost/"', vars: { SOCK: sitePath }, modules: ["proxy", "proxy_fcgi"] }),
  ]);
});

afterAll(async () => {
  await Promise.all([nginx?.stop(), apache?.stop(), stopAll()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a unix socket another process answers on", () => {
  test("a second tsgi serve on the live socket exits 1 with one TSGI_ERR_MASTER_SOCKET_IN_USE line; the first keeps serving through nginx and Apache", async () => {
    const before = lstatSync(sitePath);
    const firstWorker = await frontsServe();
    expect(firstWorker[0]).toBe(firstWorker[1]);
    const firstLogBefore = first.stderr();

    const second = await runTsgi(["serve", PROBE_APP, "--name", "second", "--listen", `fastcgi:unix:${sitePath}`, "--run-as-root"]);
    expect(second.code, second.stderr).toBe(1);
    expect(lines(second.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^\\S+ \\[error\\] \\[second\\] site second cannot start: TSGI_ERR_MASTER_SOCKET_IN_USE: unix socket ${escape(sitePath)} is in use: another process answers on it$`,
        ),
      ),
    ]);
    expect(second.stderr).not.toMatch(/listening/);
    expect(second.stdout).toBe("");

    // The second one is gone: the socket file is the first's, and the site answers as before.
    const after = lstatSync(sitePath);
    expect(after.isSocket()).toBe(true);
    expect([after.dev, after.ino]).toEqual([before.dev, before.ino]);
    expect(await frontsServe()).toEqual(firstWorker);
    const raw = await fcgiRequest({ path: sitePath }, "/info");
    expect(raw.status).toBe(200);
    expect(raw.ended).toBe(true);
    // Nothing went wrong on the first site: no error line in its log since.
    expect(first.stderr().slice(firstLogBefore.length)).not.toMatch(/\[error\]/);
    expect(nginx.errorLog()).not.toMatch(/\[error\]|\[crit\]/);
  });

  test("three more refused starts in a row leave the first site's socket and service intact", async () => {
    const before = lstatSync(sitePath);
    const results = await Promise.all(
      [1, 2, 3].map((n) => runTsgi(["serve", PROBE_APP, "--name", `again${n}`, "--listen", `uwsgi:unix:${sitePath}`, "--run-as-root"])),
    );
    for (const r of results) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/TSGI_ERR_MASTER_SOCKET_IN_USE: unix socket \S+ is in use: another process answers on it/);
    }
    expect(lstatSync(sitePath).ino).toBe(before.ino);
    const [viaNginx, viaApache] = await frontsServe();
    expect(viaNginx).toBe(viaApache);
  });
});

describe("a unix socket another program answers on", () => {
  test("a socket a plain node server listens on is refused the same way, and that server keeps its socket", async () => {
    const path = join(dir, "foreign.sock");
    const other: Server = createServer((sock) => sock.on("error", () => undefined).end("foreign\n"));
    await new Promise<void>((resolve) => other.listen(path, resolve));
    try {
      const ino = statSync(path).ino;
      const r = await runTsgi(["serve", PROBE_APP, "--name", "intruder", "--listen", `uwsgi:unix:${path}`, "--run-as-root"]);
      expect(r.code, r.stderr).toBe(1);
      expect(lines(r.stderr)).toEqual([expect.stringMatching(new RegExp(`TSGI_ERR_MASTER_SOCKET_IN_USE: unix socket ${escape(path)} is in use: another process answers on it$`))]);
      expect(statSync(path).ino).toBe(ino);
      const sock = await openSocket({ path });
      const text = await new Promise<string>((resolve) => {
        let got = "";
        sock.on("data", (b: Buffer) => (got += b.toString()));
        sock.on("close", () => resolve(got));
      });
      expect(text).toBe("foreign\n");
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});

describe("socket files that nobody serves", () => {
  test("a stale socket file (its server was SIGKILLed) is replaced: tsgi starts and serves on it, and removes it at stop", async () => {
    const path = join(dir, "stale.sock");
    // A server that dies without cleaning up: the file stays, nothing answers on it.
    const holder = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve()));
    const gone = new Promise((r) => holder.once("exit", r));
    holder.kill("SIGKILL");
    await gone;
    expect(lstatSync(path).isSocket()).toBe(true);
    await expect(openSocket({ path })).rejects.toMatchObject({ code: "ECONNREFUSED" });

    const site = await serve(PROBE_APP, ["--name", "stale", "--listen", `uwsgi:unix:${path}`, "--run-as-root"]);
    expect(site.listening).toEqual([`uwsgi unix:${path}`]);
    const r = await uwsgiRequest({ path }, "/info");
    expect(r.status).toBe(200);
    expect(site.stderr()).not.toMatch(/\[error\]/);
    expect(await site.stop()).toEqual({ code: 0, signal: null });
    expect(existsSync(path)).toBe(false);
  });

  test("a path that exists and is not a socket is refused with one line, and the file is left as it was", async () => {
    const path = join(dir, "not-a-socket");
    writeFileSync(path, "precious data\n");
    const r = await runTsgi(["serve", PROBE_APP, "--name", "plain", "--listen", `fastcgi:unix:${path}`, "--run-as-root"]);
    expect(r.code, r.stderr).toBe(1);
    expect(lines(r.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(`^\\S+ \\[error\\] \\[plain\\] site plain cannot start: TSGI_ERR_MASTER_SOCKET_IN_USE: unix socket ${escape(path)} is in use: the path exists and is not a socket$`),
      ),
    ]);
    expect(readFileSync(path, "utf8")).toBe("precious data\n");
  });
});

describe("at stop, only the socket file tsgi created is removed", () => {
  test("a site stopped with SIGTERM removes its own socket file", async () => {
    const path = join(dir, "own.sock");
    const site = await serve(PROBE_APP, ["--name", "own", "--listen", `fastcgi:unix:${path}`, "--run-as-root"]);
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(await site.stop()).toEqual({ code: 0, signal: null });
    expect(existsSync(path)).toBe(false);
  });

  test("Ctrl-C twice (SIGINT, SIGINT: stop at once) also removes its own socket file, and leaves one that replaced it", async () => {
    const own = join(dir, "int-own.sock");
    const replaced = join(dir, "int-replaced.sock");
    const [a, b] = await Promise.all([
      serve(PROBE_APP, ["--name", "intown", "--listen", `uwsgi:unix:${own}`, "--run-as-root"]),
      serve(PROBE_APP, ["--name", "intrepl", "--listen", `uwsgi:unix:${replaced}`, "--run-as-root"]),
    ]);
    unlinkSync(replaced);
    const other: Server = createServer((sock) => sock.on("error", () => undefined).end());
    await new Promise<void>((resolve) => other.listen(replaced, resolve));
    try {
      const ino = statSync(replaced).ino;
      for (const p of [a, b]) {
        process.kill(p.pid, "SIGINT");
        process.kill(p.pid, "SIGINT");
      }
      const [ea, eb] = await Promise.all([a.exited, b.exited]);
      expect(ea.code === 130 || ea.code === 0, JSON.stringify(ea)).toBe(true);
      expect(eb.code === 130 || eb.code === 0, JSON.stringify(eb)).toBe(true);
      expect(existsSync(own)).toBe(false);
      expect(statSync(replaced).ino).toBe(ino);
      expect(b.stderr()).toMatch(new RegExp(`\\[warn\\] \\[intrepl\\] ${escape(replaced)} is no longer the socket this site created; left in place`));
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  test("a socket file that replaced tsgi's (unlinked, another server bound there) is left in place at stop, with a warn line, and that server still answers", async () => {
    const path = join(dir, "replaced.sock");
    const site = await serve(PROBE_APP, ["--name", "replaced", "--listen", `fastcgi:unix:${path}`, "--run-as-root"]);
    unlinkSync(path);
    const other: Server = createServer((sock) => sock.on("error", () => undefined).end("other server\n"));
    await new Promise<void>((resolve) => other.listen(path, resolve));
    try {
      const ino = statSync(path).ino;
      expect(await site.stop()).toEqual({ code: 0, signal: null });
      expect(lstatSync(path).isSocket()).toBe(true);
      expect(statSync(path).ino).toBe(ino);
      expect(site.stderr()).toMatch(new RegExp(`\\[warn\\] \\[replaced\\] ${escape(path)} is no longer the socket this site created; left in place`));
      const sock = await openSocket({ path });
      const text = await new Promise<string>((resolve) => {
        let got = "";
        sock.on("data", (b: Buffer) => (got += b.toString()));
        sock.on("close", () => resolve(got));
      });
      expect(text).toBe("other server\n");
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});

describe("a TCP address in use", () => {
  test("a second tsgi serve on the first one's TCP port exits 1 with one TSGI_ERR_MASTER_LISTEN line; the first keeps serving", async () => {
    const tcpSite = await serve(PROBE_APP, ["--name", "tcpfirst", "--listen", "http:127.0.0.1:0", "--run-as-root"]);
    const { port } = tcpSite.tcp();
    const pid = await servedBy(tcpSite.url());
    const r = await runTsgi(["serve", PROBE_APP, "--name", "tcpsecond", "--listen", `uwsgi:127.0.0.1:${port}`, "--run-as-root"]);
    expect(r.code, r.stderr).toBe(1);
    expect(lines(r.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(`^\\S+ \\[error\\] \\[tcpsecond\\] site tcpsecond cannot start: TSGI_ERR_MASTER_LISTEN: cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use$`),
      ),
    ]);
    expect(await servedBy(tcpSite.url())).toBe(pid);
  });

  test("a TCP port held by another program: one TSGI_ERR_MASTER_LISTEN line, exit 1", async () => {
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const port = (other.address() as { port: number }).port;
    try {
      const r = await runTsgi(["serve", PROBE_APP, "--name", "taken", "--listen", `fastcgi:127.0.0.1:${port}`, "--run-as-root"]);
      expect(r.code, r.stderr).toBe(1);
      expect(lines(r.stderr)).toEqual([expect.stringMatching(new RegExp(`TSGI_ERR_MASTER_LISTEN: cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use$`))]);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});

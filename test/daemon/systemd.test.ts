// `tsgi daemon` under systemd's two protocols, with real processes and sockets, no systemd
// needed. The notify protocol: the test's own NOTIFY_SOCKET (a unix datagram socket, read by a
// small python3 program: Node has no unix datagram sockets) receives READY=1 only once every
// site serves, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM, STATUS= lines
// that name a failed site. Socket activation: the test binds a unix and two TCP sockets
// itself, as systemd's socket units do, and starts the daemon with them at fd 3, 4, 5
// (LISTEN_PID set by the shell that execs it, so it is the daemon's own pid); the site serves
// on them, the one no listen entry names is logged and closed, the socket file outlives the
// daemon, and a connection made while no daemon runs is served by the next one.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort } from "../support/front-servers.ts";
import { binding } from "../../src/native.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");

// Reports what a worker sees of the master's plumbing; `slow.mjs` takes a while to import and
// counts its imports, so READY=1 can be checked against a site that is late.
const APP = `
import { readdirSync, readlinkSync } from "node:fs";
export function application(environ, startResponse) {
  const fds = readdirSync("/proc/self/fd").map((fd) => { try { return readlinkSync("/proc/self/fd/" + fd); } catch { return ""; } });
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({
    site: process.env.TSGI_SETTINGS_MODULE,
    pid: process.pid,
    notify: process.env.NOTIFY_SOCKET ?? null,
    listen: [process.env.LISTEN_FDS, process.env.LISTEN_PID, process.env.LISTEN_FDNAMES].filter((v) => v !== undefined),
    fds,
  })];
}
`;
const SLOW = `
import { appendFileSync } from "node:fs";
await new Promise((r) => setTimeout(r, 1500));
appendFileSync(process.env.IMPORTS, "imported\\n");
export { application } from "./app.mjs";
`;
const THROWS = `throw new Error("database unreachable at boot");\nexport const application = null;\n`;

// Prints every datagram received on the path it binds, as one JSON string a line.
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
# "@name": the abstract namespace, as systemd writes it in NOTIFY_SOCKET
s.bind("\\0" + sys.argv[1][1:] if sys.argv[1].startswith("@") else sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

interface Proc {
  proc: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let dir: string;
const started: ChildProcess[] = [];

function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; fds?: number[] } = {}): Proc {
  let out = "";
  let err = "";
  const proc = spawn(cmd, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe", ...(options.fds ?? [])], env: options.env ?? process.env });
  started.push(proc);
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  return { proc, out: () => out, err: () => err, exited };
}

/** The daemon's environment: the runner's, without a settings module or systemd variables of its own. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, IMPORTS: join(dir, "imports.log") };
  for (const k of ["TSGI_SETTINGS_MODULE", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]) delete e[k];
  return { ...e, ...extra };
}

async function poll<T>(what: string, timeoutMs: number, fn: () => T | Promise<T>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Seen {
  site: string;
  pid: number;
  notify: string | null;
  listen: string[];
  fds: string[];
}

function get(target: { port: number } | { socketPath: string }, timeoutMs = 20_000): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const req = http.get({ ...("port" in target ? { host: "127.0.0.1", port: target.port } : { socketPath: target.socketPath }), path: "/", agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body) as Seen) : reject(new Error(`status ${res.statusCode}: ${body}`))));
    });
    req.on("timeout", () => req.destroy(new Error("no answer")));
    req.on("error", reject);
  });
}

/** The datagrams received so far, in order. */
function datagrams(receiver: Proc): string[] {
  return receiver
    .out()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as string)
    .filter((d) => d !== "bound");
}

/** The datagrams from index `from` on that set `variable` (e.g. "READY=1"). */
const withLine = (all: string[], line: string, from = 0) => all.slice(from).filter((d) => d.split("\n").includes(line));

async function receiver(name: string, abstract = false): Promise<{ path: string; r: Proc }> {
  const path = abstract ? `@tsgi-test-${process.pid}-${name}` : join(dir, `${name}.notify`);
  const r = run("python3", ["-u", "-c", RECEIVER, path]);
  await poll("the datagram receiver", 10_000, () => {
    if (r.proc.exitCode !== null) throw new Error(`python3 exited: ${r.err()}`);
    return r.out().includes('"bound"');
  });
  return { path, r };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-systemd-"));
  writeFileSync(join(dir, "app.mjs"), APP);
  writeFileSync(join(dir, "slow.mjs"), SLOW);
  writeFileSync(join(dir, "throws.mjs"), THROWS);
});

afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("systemd's notify protocol", () => {
  test("READY=1 only once both sites answer; SIGHUP: RELOADING=1 (MONOTONIC_USEC) then READY=1 once the new workers serve; SIGTERM: STOPPING=1; the workers never see NOTIFY_SOCKET", async () => {
    const [fast, slow] = [await freePort(), await freePort()];
    const file = join(dir, "notify.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\ngraceful-timeout = "5s"\n\n` +
        `[site.fast]\napp = "app.mjs"\nsettings = "fast"\nprocesses = 2\nlisten = ["http:127.0.0.1:${fast}"]\n\n` +
        `[site.slow]\napp = "slow.mjs"\nsettings = "slow"\nlisten = ["http:127.0.0.1:${slow}"]\n`,
    );
    const { path, r } = await receiver("notify");
    const imports = () => (existsSync(join(dir, "imports.log")) ? readFileSync(join(dir, "imports.log"), "utf8").split("\n").filter(Boolean).length : 0);
    const daemon = run(process.execPath, [BIN, "daemon", "-c", file], { env: env({ NOTIFY_SOCKET: path }) });

    await poll("READY=1", 30_000, () => withLine(datagrams(r), "READY=1").length > 0);
    // The slow site had imported by then, and both answer at once.
    expect(imports()).toBe(1);
    const [a, b] = await Promise.all([get({ port: fast }, 2000), get({ port: slow }, 2000)]);
    expect([a.site, b.site]).toEqual(["fast", "slow"]);
    expect(a.notify).toBeNull();
    expect(a.listen).toEqual([]);
    const first = datagrams(r);
    expect(first.at(-1)).toBe("READY=1\nSTATUS=2 sites running, 0 failed");
    // What came before told systemd how far the start had got.
    expect(first.slice(0, -1).every((d) => d.startsWith("STATUS=") && !d.includes("READY=1"))).toBe(true);
    expect(first.some((d) => /STATUS=.*1 starting/.test(d))).toBe(true);

    const before = first.length;
    const clockAtHup = process.hrtime.bigint() / 1000n;
    process.kill(daemon.proc.pid!, "SIGHUP");
    await poll("READY=1 after the reload", 30_000, () => withLine(datagrams(r), "READY=1", before).length > 0);
    expect(imports()).toBe(2);
    const reload = datagrams(r).slice(before);
    const reloading = reload.findIndex((d) => d.split("\n").includes("RELOADING=1"));
    const ready = reload.findIndex((d) => d.split("\n").includes("READY=1"));
    expect(reloading).toBeGreaterThanOrEqual(0);
    expect(ready).toBeGreaterThan(reloading);
    // MONOTONIC_USEC is CLOCK_MONOTONIC, the clock this process reads too: taken at the reload.
    const usec = BigInt(/MONOTONIC_USEC=(\d+)/.exec(reload[reloading]!)![1]!);
    expect(usec >= clockAtHup && usec - clockAtHup < 10_000_000n).toBe(true);
    expect(reload[ready]).toBe("READY=1\nSTATUS=2 sites running, 0 failed");
    expect((await get({ port: slow }, 2000)).site).toBe("slow");

    const beforeStop = datagrams(r).length;
    process.kill(daemon.proc.pid!, "SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    await poll("STOPPING=1", 5000, () => withLine(datagrams(r), "STOPPING=1", beforeStop).length > 0);
    expect(datagrams(r).slice(beforeStop)[0]).toMatch(/^STOPPING=1\nSTATUS=stopping: 2 sites running, 0 failed$/);
    expect(withLine(datagrams(r), "READY=1", beforeStop)).toEqual([]);
    r.proc.kill("SIGTERM");
  });

  test("a site that cannot import does not hold READY=1 back: it comes, and STATUS names the failed site (NOTIFY_SOCKET in the abstract namespace)", async () => {
    const [good, bad] = [await freePort(), await freePort()];
    const file = join(dir, "failing.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\n\n[site.good]\napp = "app.mjs"\nsettings = "good"\nlisten = ["http:127.0.0.1:${good}"]\n\n` +
        `[site.broken]\napp = "throws.mjs"\nlisten = ["http:127.0.0.1:${bad}"]\n`,
    );
    const { path, r } = await receiver("failing", true);
    const daemon = run(process.execPath, [BIN, "daemon", "-c", file], { env: env({ NOTIFY_SOCKET: path }) });
    await poll("READY=1", 45_000, () => withLine(datagrams(r), "READY=1").length > 0);
    expect(withLine(datagrams(r), "READY=1")).toEqual(["READY=1\nSTATUS=1 site running, 1 failed (broken)"]);
    expect(daemon.err()).toMatch(/database unreachable at boot/);
    expect((await get({ port: good }, 2000)).site).toBe("good");
    process.kill(daemon.proc.pid!, "SIGTERM");
    expect((await daemon.exited).code).toBe(0);
    r.proc.kill("SIGTERM");
  });
});

describe("systemd socket activation", () => {
  test("the site serves on the sockets passed at fd 3 and 4, the stray fd 5 (no listen entry) is logged and closed, the socket file outlives the daemon, and a connection queued while no daemon runs is served by the next", async () => {
    // Bound and listening, never accepted on, as systemd's socket units hold them (a net.Server
    // would accept connections itself, and remove its socket file when closed).
    const sockPath = join(dir, "web.sock");
    const unix = binding.bindUnix(sockPath, 64);
    const tcp = binding.bindTcp("127.0.0.1", 0, 64);
    const extra = binding.bindTcp("127.0.0.1", 0, 64);
    const inode = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`);
    const extraInode = inode(extra.fd);
    const file = join(dir, "activated.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\ngraceful-timeout = "5s"\n\n[site.web]\napp = "app.mjs"\nsettings = "web"\nprocesses = 2\n` +
        `listen = ["http:unix:${sockPath}", "http:127.0.0.1:${tcp.port}"]\n`,
    );
    const activate = () =>
      run("sh", ["-c", `LISTEN_PID=$$ LISTEN_FDS=3 LISTEN_FDNAMES=web.socket:web-tcp.socket:stray.socket exec "${process.execPath}" "${BIN}" daemon -c "${file}"`], {
        env: env(),
        fds: [unix.fd, tcp.fd, extra.fd],
      });
    try {
      const daemon = activate();
      await poll("the site ready", 30_000, () => /ready: 1 of 1 sites running/.test(daemon.err()));
      const overUnix = await get({ socketPath: sockPath });
      const overTcp = await get({ port: tcp.port });
      expect([overUnix.site, overTcp.site]).toEqual(["web", "web"]);
      const err = daemon.err();
      expect(err).toMatch(new RegExp(`http:unix:${sockPath}: the socket systemd passed, fd 3 \\(web\\.socket, unix:${sockPath}\\)`));
      expect(err).toMatch(new RegExp(`http:127\\.0\\.0\\.1:${tcp.port}: the socket systemd passed, fd 4 \\(web-tcp\\.socket, 127\\.0\\.0\\.1:${tcp.port}\\)`));
      expect(err).toMatch(new RegExp(`\\[warn\\] .*systemd passed fd 5 \\(stray\\.socket, 127\\.0\\.0\\.1:${extra.port}\\), which no site's listen entry names; closed`));
      // Neither the master nor a worker holds the stray socket; the workers see no LISTEN_*.
      const masterFds = readdirSync(`/proc/${daemon.proc.pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${daemon.proc.pid}/fd/${fd}`);
        } catch {
          return "";
        }
      });
      expect(masterFds).toContain(inode(unix.fd));
      expect(masterFds).not.toContain(extraInode);
      expect(overTcp.fds).not.toContain(extraInode);
      expect(overTcp.fds).toContain(inode(tcp.fd));
      expect(overTcp.listen).toEqual([]);

      process.kill(daemon.proc.pid!, "SIGTERM");
      expect(await daemon.exited).toEqual({ code: 0, signal: null });
      // systemd's socket: its file stays (the socket unit removes it when it stops).
      expect(existsSync(sockPath)).toBe(true);

      // The sockets are still open here (as in systemd): a request made now waits in the
      // backlog and the next daemon answers it.
      const queued = get({ port: tcp.port }, 30_000);
      const next = activate();
      expect((await queued).site).toBe("web");
      process.kill(next.proc.pid!, "SIGTERM");
      expect((await next.exited).code).toBe(0);
      expect(existsSync(sockPath)).toBe(true);
    } finally {
      for (const fd of [unix.fd, tcp.fd, extra.fd]) binding.closeFd(fd);
    }
  });

  test("under systemd-socket-activate (systemd's own tool): the daemon starts at the first connection and answers it on the sockets it passed; a NOTIFY_SOCKET nobody reads is one warning", async () => {
    const port = await freePort();
    const sockPath = join(dir, "tool.sock");
    const file = join(dir, "tool.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\n\n[site.tool]\napp = "app.mjs"\nsettings = "tool"\nlisten = ["http:unix:${sockPath}", "http:127.0.0.1:${port}"]\n`,
    );
    const nobody = join(dir, "nobody.notify");
    const tool = run(
      "systemd-socket-activate",
      ["-l", sockPath, "-l", `127.0.0.1:${port}`, "--fdname=tool-unix:tool-tcp", "-E", `NOTIFY_SOCKET=${nobody}`, "-E", `PATH=${process.env.PATH}`, process.execPath, BIN, "daemon", "-c", file],
      { env: env() },
    );
    await poll("systemd-socket-activate listening", 10_000, () => {
      if (tool.proc.exitCode !== null) throw new Error(`systemd-socket-activate exited: ${tool.err()}`);
      return /Listening on 127\.0\.0\.1:\d+ as 4/.test(tool.err());
    });
    // Nothing runs yet: this connection is what starts the daemon (the tool execs it in place).
    const first = await get({ port }, 30_000);
    expect(first.site).toBe("tool");
    expect((await get({ socketPath: sockPath })).site).toBe("tool");
    const err = tool.err();
    expect(err).toMatch(/fd 3 \(tool-unix, unix:/);
    expect(err).toMatch(new RegExp(`fd 4 \\(tool-tcp, 127\\.0\\.0\\.1:${port}\\)`));
    expect(err.match(/NOTIFY_SOCKET=.*systemd is not told how the daemon is doing/g)).toHaveLength(1);
    process.kill(tool.proc.pid!, "SIGTERM");
    expect(await tool.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(sockPath)).toBe(true);
  });
});

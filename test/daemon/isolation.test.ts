// `tsgi daemon` with real processes (issue 9): what separates a site's workers from the master,
// from the other sites and from the wire. Started as root: a site's workers run as its `user`
// (/proc shows nobody's ids and groups) while the master stays root; unix sockets get the
// configured mode, owner and group; `env`, `clear-env` and `cwd` per site; uwsgi "magic"
// variables sent on the wire (raw, and through nginx's uwsgi_param) are never honoured; an
// application's exception reaches the client as a bare 500 unless the site has `debug`, and
// its stack goes to the site's error log.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, chmodSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { daemonEnv, poll, siteStatus, startDaemon, type Daemon } from "../support/daemon.ts";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";

const isRoot = process.getuid?.() === 0;

const APP = `
export function application(environ, startResponse) {
  const uri = String(environ.REQUEST_URI ?? environ.PATH_INFO ?? "/");
  if (uri.includes("/throw-async")) return (async () => { throw new Error("async failure with password=hunter2"); })();
  if (uri.includes("/throw")) throw new Error("database password=hunter2 rejected");
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ app: "report", pid: process.pid, uid: process.getuid(), cwd: process.cwd(), env: process.env })];
}
`;

// What a honoured UWSGI_FILE / UWSGI_SCRIPT would run instead: it leaves a mark when imported.
const EVIL = (mark: string) => `
import { writeFileSync } from "node:fs";
writeFileSync(${JSON.stringify(mark)}, "imported");
export function application(environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["evil"];
}
export const evil = application;
`;

interface Report {
  app: string;
  pid: number;
  uid: number;
  cwd: string;
  env: Record<string, string>;
}

let dir: string;
let file: string;
let daemon: Daemon;
let nginx: FrontServer;
const ports: Record<string, number> = {};
let mark: string;

const sock = (name: string) => join(dir, `${name}.sock`);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-isolation-"));
  // The workers of `priv` run as nobody: the folder and the application must be readable by it.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "report.mjs"), APP, { mode: 0o644 });
  mark = join(dir, "evil-was-imported");
  writeFileSync(join(dir, "evil.mjs"), EVIL(mark), { mode: 0o644 });
  mkdirSync(join(dir, "work"), { mode: 0o755 });
  mkdirSync(join(dir, "work2"), { mode: 0o755 });
  for (const k of ["priv", "inherit", "inheritUwsgi", "clean", "boom", "shown"]) ports[k] = await freePort();
  file = join(dir, "tsgi.toml");
  const privSite = isRoot
    ? `[site.priv]\napp = "report.mjs"\nuser = "nobody"\ngroup = "nogroup"\nlisten = ["http:127.0.0.1:${ports.priv}", "fastcgi:unix:${sock("priv")}"]\n\n` +
      `[site.owned]\napp = "report.mjs"\nrun-as-root = true\nsocket-mode = "0640"\nsocket-owner = "nobody"\nsocket-group = "www-data"\nlisten = ["fastcgi:unix:${sock("owned")}"]\n\n`
    : "";
  writeFileSync(
    file,
    `[defaults]\ngraceful-timeout = "2s"\naccess-log = "off"\n${isRoot ? "" : "# not root: no identity to change\n"}\n` +
      privSite +
      `[site.inherit]\napp = "report.mjs"\nrun-as-root = true\ncwd = "work"\nenv = { B = "2" }\n` +
      `listen = ["http:127.0.0.1:${ports.inherit}", "uwsgi:127.0.0.1:${ports.inheritUwsgi}"]\n\n` +
      `[site.clean]\napp = "report.mjs"\nrun-as-root = true\nclear-env = true\nenv = { A = "1" }\nsettings = "clean.settings"\ncwd = "${join(dir, "work2")}"\n` +
      `listen = ["http:127.0.0.1:${ports.clean}"]\n\n` +
      `[site.boom]\napp = "report.mjs"\nrun-as-root = true\nerror-log = "${join(dir, "boom-error.log")}"\nsocket-mode = "0666"\n` +
      `listen = ["http:127.0.0.1:${ports.boom}", "fastcgi:unix:${sock("boom")}"]\n\n` +
      `[site.shown]\napp = "report.mjs"\nrun-as-root = true\ndebug = true\nlisten = ["http:127.0.0.1:${ports.shown}"]\n`,
  );
  daemon = startDaemon(dir, file, daemonEnv({ DAEMON_SECRET: "from-the-daemon", B: "inherited" }));
  const sites = isRoot ? 6 : 4;
  await poll("every site ready", 40_000, () => {
    if (daemon.proc.exitCode !== null) throw new Error(`tsgi daemon exited:\n${daemon.stderr()}`);
    return new RegExp(`ready: ${sites} of ${sites} sites running`).test(daemon.stderr());
  });
  nginx = await startNginx({
    conf: `
      server {
        listen {{HOST}}:{{PORT}};
        location /magic/ {
          include /etc/nginx/uwsgi_params;
          uwsgi_param UWSGI_FILE {{DIR2}}/evil.mjs;
          uwsgi_param UWSGI_SCRIPT evil;
          uwsgi_param UWSGI_MODULE evil;
          uwsgi_param UWSGI_CALLABLE evil;
          uwsgi_param UWSGI_CHDIR /;
          uwsgi_param UWSGI_SETENV DAEMON_SECRET=from-the-wire;
          uwsgi_param UWSGI_APPID evil;
          uwsgi_param UWSGI_PYHOME /;
          uwsgi_pass 127.0.0.1:{{UWSGI}};
        }
        location /boom/ {
          include /etc/nginx/fastcgi_params;
          fastcgi_pass unix:{{BOOM}};
        }
      }`,
    vars: { UWSGI: ports.inheritUwsgi!, BOOM: sock("boom"), DIR2: dir },
  });
}, 90_000);

afterAll(async () => {
  await nginx?.stop();
  await daemon?.stop(10_000);
  rmSync(dir, { recursive: true, force: true });
});

async function report(port: number, path = "/"): Promise<Report> {
  const r = await request(`http://127.0.0.1:${port}${path}`);
  expect(r.status, r.body.toString()).toBe(200);
  return JSON.parse(r.body.toString()) as Report;
}

/** /proc/PID/status's Uid, Gid and Groups lines, as numbers. */
function ids(pid: number): { uid: number[]; gid: number[]; groups: number[] } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const line = (name: string) =>
    (new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text)?.[1] ?? "")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  return { uid: line("Uid"), gid: line("Gid"), groups: line("Groups") };
}

describe("privileges", () => {
  test("a site with user = nobody: its worker's real, effective, saved and fs ids are nobody's, its groups nogroup only; the master stays root; the app serves", async () => {
    if (!isRoot) {
      console.log("privileges: not root, so no identity can be dropped: the /proc checks need tsgi started as root (skipped at run time)");
      return;
    }
    const r = await report(ports.priv!);
    expect(r.app).toBe("report");
    expect(r.uid).toBe(65534);
    const worker = (await siteStatus(dir, file, "priv")).workers[0]!.pid;
    expect(worker).toBe(r.pid);
    expect(ids(worker)).toEqual({ uid: [65534, 65534, 65534, 65534], gid: [65534, 65534, 65534, 65534], groups: [65534] });
    // The master keeps root: it binds the sockets and starts the workers.
    const master = ids(daemon.proc.pid!);
    expect(master.uid).toEqual([0, 0, 0, 0]);
    expect(master.gid).toEqual([0, 0, 0, 0]);
    // A run-as-root site beside it really is root.
    expect(ids((await report(ports.inherit!)).pid).uid).toEqual([0, 0, 0, 0]);
  });
});

describe("unix sockets", () => {
  test("socket-mode, socket-owner and socket-group as configured; without them, the site's user and group own its socket", () => {
    if (!isRoot) {
      console.log("socket owners: not root, so no socket can be given away (skipped at run time); modes checked below");
      expect(statSync(sock("boom")).mode & 0o777).toBe(0o666);
      return;
    }
    const owned = statSync(sock("owned"));
    expect(owned.isSocket()).toBe(true);
    expect([owned.mode & 0o777, owned.uid, owned.gid]).toEqual([0o640, 65534, 33]);
    const priv = statSync(sock("priv"));
    expect([priv.mode & 0o777, priv.uid, priv.gid]).toEqual([0o660, 65534, 65534]);
    const boom = statSync(sock("boom"));
    expect([boom.mode & 0o777, boom.uid, boom.gid]).toEqual([0o666, 0, 0]);
  });
});

describe("env, clear-env, cwd", () => {
  test("a site inherits the daemon's environment plus its env (env wins); its cwd is as set, relative to tsgi.toml's folder", async () => {
    const r = await report(ports.inherit!);
    expect(r.env.DAEMON_SECRET).toBe("from-the-daemon");
    expect(r.env.B).toBe("2");
    expect(r.env.PATH).toBe(process.env.PATH);
    expect(r.cwd).toBe(join(dir, "work"));
    // The master's plumbing stays out.
    expect(r.env.TSGI_WORKER).toBeUndefined();
  });

  test("clear-env = true: only env, TSGI_SETTINGS_MODULE and PATH; nothing of the daemon's environment", async () => {
    const r = await report(ports.clean!);
    expect(Object.keys(r.env).sort()).toEqual(["A", "PATH", "TSGI_SETTINGS_MODULE"]);
    expect(r.env.A).toBe("1");
    expect(r.env.TSGI_SETTINGS_MODULE).toBe("clean.settings");
    expect(r.cwd).toBe(join(dir, "work2"));
  });
});

/** A uwsgi packet: modifier1 0, the vars block's size (little-endian), modifier2 0, then each var as (u16 size, bytes) pairs. */
function uwsgiPacket(vars: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of vars) {
    for (const s of [k, v]) {
      const b = Buffer.from(s, "latin1");
      const len = Buffer.alloc(2);
      len.writeUInt16LE(b.length);
      parts.push(len, b);
    }
  }
  const body = Buffer.concat(parts);
  const head = Buffer.from([0, body.length & 0xff, body.length >> 8, 0]);
  return Buffer.concat([head, body]);
}

/** Sends `packet` on a fresh TCP connection and reads the whole reply (the worker closes after it). */
function rawExchange(port: number, packet: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(new Error("no complete uwsgi reply within 15 s")), 15_000);
    s.on("connect", () => s.write(packet));
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", reject);
    s.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("latin1");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? -1);
      resolve({ status, body: text.slice(text.indexOf("\r\n\r\n") + 4) });
    });
  });
}

const MAGIC = (): [string, string][] => [
  ["UWSGI_FILE", join(dir, "evil.mjs")],
  ["UWSGI_SCRIPT", "evil"],
  ["UWSGI_MODULE", "evil"],
  ["UWSGI_CALLABLE", "evil"],
  ["UWSGI_CHDIR", "/"],
  ["UWSGI_SETENV", "DAEMON_SECRET=from-the-wire"],
  ["UWSGI_APPID", "evil"],
  ["UWSGI_PYHOME", "/"],
  ["UWSGI_SCHEME", "https"],
];

describe("uwsgi magic variables", () => {
  test("sent in a raw uwsgi packet: the configured application answers, its cwd and environment unchanged, nothing named is loaded", async () => {
    const before = await report(ports.inherit!);
    const packet = uwsgiPacket([
      ["REQUEST_METHOD", "GET"],
      ["REQUEST_URI", "/raw"],
      ["PATH_INFO", "/raw"],
      ["QUERY_STRING", ""],
      ["SERVER_PROTOCOL", "HTTP/1.1"],
      ["SERVER_NAME", "localhost"],
      ["SERVER_PORT", "80"],
      ["REMOTE_ADDR", "127.0.0.1"],
      ["HTTP_HOST", "localhost"],
      ...MAGIC(),
    ]);
    const r = await rawExchange(ports.inheritUwsgi!, packet);
    expect(r.status, r.body).toBe(200);
    const got = JSON.parse(r.body) as Report;
    expect(got.app).toBe("report");
    expect(got.cwd).toBe(join(dir, "work"));
    expect(got.env.DAEMON_SECRET).toBe("from-the-daemon");
    // Nothing the wire said reached the worker's process: same worker, same environment after it.
    const after = await report(ports.inherit!);
    expect(after.pid).toBe(before.pid);
    expect(after.cwd).toBe(join(dir, "work"));
    expect(after.env).toEqual(before.env);
    expect(existsSync(mark)).toBe(false);
  });

  test("set by nginx with uwsgi_param: the same", async () => {
    const r = await request(`http://127.0.0.1:${nginx.port}/magic/x`);
    expect(r.status, r.body.toString()).toBe(200);
    const got = JSON.parse(r.body.toString()) as Report;
    expect(got.app).toBe("report");
    expect(got.cwd).toBe(join(dir, "work"));
    expect(got.env.DAEMON_SECRET).toBe("from-the-daemon");
    expect(existsSync(mark)).toBe(false);
  });
});

describe("tracebacks", () => {
  const leaks = (body: string) => /hunter2|password|Error:|\bat \S|\.mjs/.test(body);

  test("an application that throws: a bare 500 to the client (raw HTTP and through nginx), the stack in the site's error log", async () => {
    for (const url of [
      `http://127.0.0.1:${ports.boom}/throw`,
      `http://127.0.0.1:${ports.boom}/throw-async`,
      `http://127.0.0.1:${nginx.port}/boom/throw`,
      `http://127.0.0.1:${nginx.port}/boom/throw-async`,
    ]) {
      const r = await request(url);
      expect(r.status, url).toBe(500);
      expect(r.body.toString(), url).toBe("Internal Server Error\n");
      expect(leaks(r.body.toString())).toBe(false);
    }
    const log = await poll("the stack in boom's error log", 10_000, () => {
      const text = existsSync(join(dir, "boom-error.log")) ? readFileSync(join(dir, "boom-error.log"), "utf8") : "";
      return /async failure/.test(text) && text;
    });
    expect(log).toMatch(/\[error\] \[boom\] .*the application failed on GET \/throw/);
    expect(log).toMatch(/database password=hunter2 rejected/);
    expect(log).toMatch(/at application \(.*report\.mjs:\d+/);
    // Nothing of it went to the daemon's own error output.
    expect(daemon.stderr()).not.toMatch(/hunter2/);
  });

  test("with debug = true the 500 body shows the exception and its stack", async () => {
    const r = await request(`http://127.0.0.1:${ports.shown}/throw`);
    expect(r.status).toBe(500);
    const body = r.body.toString();
    expect(body).toMatch(/^Internal Server Error\n\nError: database password=hunter2 rejected\n\s+at application \(.*report\.mjs:\d+/);
  });
});

// conf-examples/tsgi.toml (blog over FastCGI on a unix socket, shop over uwsgi on loopback TCP)
// with conf-examples/systemd/tsgi.service and conf-examples/systemd/tsgi-blog.socket. Checked
// by each tool: `tsgi check` on a copy whose absolute paths (/srv, /run/tsgi, /var/log/tsgi)
// point at folders of this test; `systemd-analyze verify` on copies whose commands point at
// this checkout's bin/tsgi.js (it needs no systemd as PID 1: it runs here). The units agree
// with the file: the socket unit's [Socket] is what `tsgi conf systemd blog` writes for it,
// and TimeoutStopSec is above graceful-timeout. Then served end to end the way systemd runs
// them: ExecStartPre, then ExecStart under systemd-socket-activate (systemd's own tool, which
// binds the socket unit's ListenStream, passes it at fd 3 named by FileDescriptorName and
// execs the service at the first connection) with SocketMode/SocketUser/SocketGroup applied
// to the socket file as systemd does, NOTIFY_SOCKET read by the test, and a real nginx in
// front (conf-examples/nginx/fastcgi.conf for blog, conf-examples/nginx/uwsgi.conf for shop)
// whose www-data workers reach blog only through that inherited socket; ExecReload and the
// stop (KillMode=mixed: SIGTERM to the master) as systemd sends them. Only paths and shop's
// port are rewritten in the copies.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CONF_EXAMPLES, rewrite } from "../support/conf-example.ts";
import { poll } from "../support/daemon.ts";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";
import { execArgv, notifyReceiver, parseUnit, sets, timeSpanSeconds, unitValue, unitValues, type NotifyReceiver, type Unit } from "../support/systemd-unit.ts";
import { request } from "./client.ts";

const BIN = join(import.meta.dirname, "..", "..", "bin", "tsgi.js");
const TOML = join(CONF_EXAMPLES, "tsgi.toml");
const SERVICE = join(CONF_EXAMPLES, "systemd", "tsgi.service");
const SOCKET = join(CONF_EXAMPLES, "systemd", "tsgi-blog.socket");
const isRoot = process.getuid?.() === 0;

// Each site answers with the folder it was deployed to and what its worker is.
const APP = `
import { basename } from "node:path";
export function application(environ: Record<string, unknown>, startResponse: (status: string, headers: [string, string][]) => void) {
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({
    site: basename(process.cwd()),
    pid: process.pid,
    uid: process.getuid?.(),
    nodeEnv: process.env.NODE_ENV,
    listen: process.env.LISTEN_FDS ?? null,
    notify: process.env.NOTIFY_SOCKET ?? null,
    path: environ.PATH_INFO,
  })];
}
`;

interface Seen {
  site: string;
  pid: number;
  uid: number;
  nodeEnv: string;
  listen: string | null;
  notify: string | null;
  path: string;
}

const tmp = mkdtempSync(join(tmpdir(), "tsgi-confex-systemd-"));
// nginx's workers and the sites' workers (www-data, when started as root) reach the sockets,
// the applications and the logs under this folder.
chmodSync(tmp, 0o755);
const paths = {
  srv: join(tmp, "srv"),
  run: join(tmp, "run", "tsgi"),
  log: join(tmp, "log", "tsgi"),
  etc: join(tmp, "etc", "tsgi"),
  units: join(tmp, "units"),
};
const file = join(paths.etc, "tsgi.toml");

/** The copy of tsgi.toml: its absolute paths under `tmp`, and shop on `shopPort` when given. */
function tomlCopy(shopPort?: number): string {
  return rewrite(TOML, [
    [/\/srv\//, `${paths.srv}/`],
    [/\/run\/tsgi\//, `${paths.run}/`],
    [/\/var\/log\/tsgi\//, `${paths.log}/`],
    ...(shopPort ? ([[/127\.0\.0\.1:3031/, `127.0.0.1:${shopPort}`]] as [RegExp, string][]) : []),
  ]);
}

/** The copies of the units: commands at bin/tsgi.js, the file and the socket under `tmp`. */
function unitCopies(): { service: string; socket: string } {
  return {
    service: rewrite(SERVICE, [
      [/\/usr\/local\/bin\/tsgi /, `${BIN} `],
      [/\/etc\/tsgi\/tsgi\.toml/, file],
    ]),
    socket: rewrite(SOCKET, [[/\/run\/tsgi\//, `${paths.run}/`]]),
  };
}

beforeAll(() => {
  for (const dir of Object.values(paths)) mkdirSync(dir, { recursive: true });
  for (const site of ["blog", "shop"]) {
    mkdirSync(join(paths.srv, site));
    writeFileSync(join(paths.srv, site, "tsgi.ts"), APP);
  }
  for (const dir of [join(tmp, "srv"), join(tmp, "run"), join(tmp, "log"), join(tmp, "etc"), ...Object.values(paths)]) chmodSync(dir, 0o755);
  const { service, socket } = unitCopies();
  writeFileSync(join(paths.units, "tsgi.service"), service);
  writeFileSync(join(paths.units, "tsgi-blog.socket"), socket);
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("conf-examples/tsgi.toml and conf-examples/systemd/ pass each tool's own check", () => {
  test("tsgi check -c conf-examples/tsgi.toml (its /srv, /run/tsgi and /var/log/tsgi made real folders)", () => {
    writeFileSync(file, tomlCopy());
    const run = spawnSync(process.execPath, [BIN, "check", "-c", file], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.stdout).toBe(`${file}: 2 sites, no problems (blog, shop)\n`);
    expect(run.status).toBe(0);
  });

  test("systemd-analyze verify tsgi.service tsgi-blog.socket (their commands pointed at this checkout): not a word", () => {
    const run = spawnSync("systemd-analyze", ["verify", join(paths.units, "tsgi.service"), join(paths.units, "tsgi-blog.socket")], { encoding: "utf8", timeout: 30_000 });
    expect(`${run.stdout}${run.stderr}`).toBe("");
    expect(run.status).toBe(0);
  });

  test("the units match tsgi.toml: [Socket] as `tsgi conf systemd blog` writes it; Type=notify, SIGHUP reload, KillMode=mixed, TimeoutStopSec above graceful-timeout, tsgi check before the start", () => {
    writeFileSync(file, tomlCopy());
    const conf = spawnSync(process.execPath, [BIN, "conf", "systemd", "blog", "-c", file], { encoding: "utf8" });
    expect(conf.status, conf.stderr).toBe(0);
    const generated = parseUnit(conf.stdout.split(/^# --- file: tsgi-blog\.socket ---\n/m)[1]!);
    const socket = parseUnit(unitCopies().socket);
    expect(socket.get("Socket")).toEqual(generated.get("Socket"));

    const service = parseUnit(readFileSync(SERVICE, "utf8"));
    expect(unitValue(service, "Service", "Type")).toBe("notify");
    expect(unitValue(service, "Service", "ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(unitValue(service, "Service", "KillMode")).toBe("mixed");
    expect(unitValue(service, "Service", "ExecStartPre")).toBe("/usr/local/bin/tsgi check -c /etc/tsgi/tsgi.toml");
    expect(unitValue(service, "Service", "ExecStart")).toBe("/usr/local/bin/tsgi daemon -c /etc/tsgi/tsgi.toml");
    expect(unitValues(service, "Service", "Sockets")).toEqual(["tsgi-blog.socket"]);
    const graceful = Number(/^graceful-timeout = "(\d+)s"$/m.exec(readFileSync(TOML, "utf8"))![1]);
    expect(timeSpanSeconds(unitValue(service, "Service", "TimeoutStopSec"))).toBeGreaterThan(graceful);
    // The pid file logrotate/tsgi signals, and the folders the file's paths live in.
    expect(readFileSync(TOML, "utf8")).toMatch(/^pidfile = "\/run\/tsgi\/tsgi\.pid"$/m);
    expect(readFileSync(join(CONF_EXAMPLES, "logrotate", "tsgi"), "utf8")).toContain("/run/tsgi/tsgi.pid");
    expect([unitValue(service, "Service", "RuntimeDirectory"), unitValue(service, "Service", "LogsDirectory")]).toEqual(["tsgi", "tsgi"]);
  });
});

describe("tsgi.service run as systemd runs it, with tsgi-blog.socket's socket, behind nginx", () => {
  let service: Unit;
  let socket: Unit;
  let sockPath: string;
  let shopPort: number;
  let notify: NotifyReceiver;
  let tool: ChildProcess;
  let toolErr = "";
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  const fronts: { blog?: FrontServer; shop?: FrontServer } = {};

  const errorLog = () => (existsSync(join(paths.log, "error.log")) ? readFileSync(join(paths.log, "error.log"), "utf8") : "");
  const datagrams = () => notify.datagrams();
  async function get(front: FrontServer, path: string): Promise<Seen> {
    const r = await request(`http://127.0.0.1:${front.port}${path}`, { timeoutMs: 30_000 });
    expect(r.status, r.body.toString()).toBe(200);
    return JSON.parse(r.body.toString()) as Seen;
  }

  beforeAll(async () => {
    shopPort = await freePort();
    writeFileSync(file, tomlCopy(shopPort));
    const units = unitCopies();
    service = parseUnit(units.service);
    socket = parseUnit(units.socket);
    sockPath = unitValue(socket, "Socket", "ListenStream");

    // ExecStartPre first: systemd starts nothing when it fails.
    const [pre, ...preArgs] = execArgv(unitValue(service, "Service", "ExecStartPre"));
    const check = spawnSync(pre!, preArgs, { encoding: "utf8" });
    if (check.status !== 0) throw new Error(`ExecStartPre failed: ${check.stdout}${check.stderr}`);

    notify = await notifyReceiver(join(tmp, "notify.sock"));
    // systemd's environment for a service: a standard PATH, NOTIFY_SOCKET, LISTEN_*; nothing of the runner's.
    tool = spawn(
      "systemd-socket-activate",
      [
        "-l",
        sockPath,
        `--fdname=${unitValue(socket, "Socket", "FileDescriptorName")}`,
        "-E",
        `NOTIFY_SOCKET=${notify.path}`,
        "-E",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ...execArgv(unitValue(service, "Service", "ExecStart")),
      ],
      { stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env.PATH } },
    );
    tool.stderr!.setEncoding("utf8").on("data", (d: string) => (toolErr += d));
    exited = new Promise((resolve) => tool.on("exit", (code, signal) => resolve({ code, signal })));
    await poll("systemd-socket-activate listening", 10_000, () => {
      if (tool.exitCode !== null) throw new Error(`systemd-socket-activate exited: ${toolErr}`);
      return toolErr.includes(`Listening on ${sockPath} as 3`);
    });
    // What the socket unit asks of the file, applied as systemd applies it after bind().
    chmodSync(sockPath, parseInt(unitValue(socket, "Socket", "SocketMode"), 8));
    if (isRoot) chownSync(sockPath, id("-u", unitValue(socket, "Socket", "SocketUser")), id("-g", unitValue(socket, "Socket", "SocketGroup")));

    fronts.blog = await startNginx({ conf: readFileSync(join(CONF_EXAMPLES, "nginx", "fastcgi.conf"), "utf8"), vars: { TSGI_FASTCGI: `unix:${sockPath}` } });
    fronts.shop = await startNginx({ conf: readFileSync(join(CONF_EXAMPLES, "nginx", "uwsgi.conf"), "utf8"), vars: { TSGI_UWSGI: `127.0.0.1:${shopPort}` } });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(Object.values(fronts).map((f) => f?.stop()));
    if (tool && tool.exitCode === null && tool.signalCode === null) {
      tool.kill("SIGTERM");
      const timer = setTimeout(() => tool.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    }
    notify?.stop();
  }, 60_000);

  test("nothing runs until nginx's first request; that connection starts the daemon, and blog answers it on the inherited socket, from a www-data worker", async () => {
    expect(datagrams()).toEqual([]);
    expect(statSync(sockPath).mode & 0o777).toBe(0o660);
    const first = await get(fronts.blog!, "/posts/1");
    expect(first).toMatchObject({ site: "blog", nodeEnv: "production", listen: null, notify: null, path: "/posts/1" });
    if (isRoot) expect(first.uid).toBe(id("-u", "www-data"));
    // The master took systemd's socket for the listen entry instead of binding one.
    await poll("the error log", 10_000, () => /the socket systemd passed, fd 3/.test(errorLog()));
    expect(errorLog()).toContain(`fastcgi:unix:${sockPath}: the socket systemd passed, fd 3 (blog, unix:${sockPath})`);
  });

  test("READY=1 once both sites serve, STATUS naming them; the pid file holds the master's pid (the process systemd started); shop answers over uwsgi through nginx", async () => {
    await poll("READY=1", 30_000, () => datagrams().some((d) => sets(d, "READY=1")));
    expect(datagrams().filter((d) => sets(d, "READY=1"))).toEqual(["READY=1\nSTATUS=2 sites running, 0 failed"]);
    expect(readFileSync(join(paths.run, "tsgi.pid"), "utf8").trim()).toBe(String(tool.pid));
    const shop = await get(fronts.shop!, "/cart");
    expect(shop).toMatchObject({ site: "shop", nodeEnv: "production", listen: null, path: "/cart" });
    expect(existsSync(join(paths.log, "blog-access.log")) && readFileSync(join(paths.log, "blog-access.log"), "utf8")).toMatch(/"GET \/posts\/1 HTTP\/1\.1" 200/);
  });

  test("ExecReload (kill -HUP $MAINPID): RELOADING=1 then READY=1, new workers, blog still served on the same socket", async () => {
    const before = await get(fronts.blog!, "/");
    const from = datagrams().length;
    const [kill, ...args] = execArgv(unitValue(service, "Service", "ExecReload"), { MAINPID: String(tool.pid) });
    expect(spawnSync(kill!, args).status).toBe(0);
    await poll("READY=1 after the reload", 30_000, () => datagrams().slice(from).some((d) => sets(d, "READY=1")));
    const reload = datagrams().slice(from);
    expect(reload.findIndex((d) => sets(d, "RELOADING=1"))).toBeLessThan(reload.findIndex((d) => sets(d, "READY=1")));
    expect(reload.findIndex((d) => sets(d, "RELOADING=1"))).toBeGreaterThanOrEqual(0);
    const after = await get(fronts.blog!, "/");
    expect(after.site).toBe("blog");
    expect(after.pid).not.toBe(before.pid);
  });

  test("stop (KillMode=mixed: SIGTERM to the master): STOPPING=1, exit 0 within TimeoutStopSec; the socket file, systemd's, stays", async () => {
    const from = datagrams().length;
    const t0 = Date.now();
    tool.kill("SIGTERM");
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(timeSpanSeconds(unitValue(service, "Service", "TimeoutStopSec")) * 1000);
    await poll("STOPPING=1", 5000, () => datagrams().slice(from).some((d) => sets(d, "STOPPING=1")));
    expect(existsSync(sockPath)).toBe(true);
    expect(existsSync(join(paths.run, "tsgi.pid"))).toBe(false);
  });
});

/** `id -u NAME` / `id -g NAME` as a number. */
function id(flag: "-u" | "-g", name: string): number {
  const r = spawnSync("id", [flag, name], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`id ${flag} ${name}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

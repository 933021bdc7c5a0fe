// Issue 8, point 4: SIGUSR1 never opens Node's inspector in a tsgi process; it reopens the log
// files, as logrotate expects. After the access and error logs are renamed, `kill -USR1` of
// the master (which tells its workers) and of a worker itself makes the next lines go to new
// files at the configured paths, the old lines staying in the renamed ones. After SIGUSR1 the
// only listening TCP sockets of the master and the worker (/proc/PID/fd socket inodes matched
// to LISTEN rows of /proc/net/tcp and tcp6) are the two tsgi was told to open, 127.0.0.1:9229
// refuses connections (when nothing else listened there before), and both still serve.

import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import {
  alive,
  listeningPortsOf,
  listeningTcp,
  openSocket,
  poll,
  PROBE_APP,
  serve,
  sleep,
  stopAll,
  uwsgiRequest,
  workersOf,
  type Proc,
} from "./support/serve.ts";

const INSPECTOR_PORT = 9229;

let dir: string;
let site: Proc;
let accessLog: string;
let errorLog: string;
let worker: number;
/** Whether something on this machine listened on 9229 before the test (then connecting there proves nothing). */
let inspectorPortTakenBefore: boolean;

const read = (path: string) => (existsSync(path) ? readFileSync(path, "utf8") : "");

async function get(path: string): Promise<number> {
  const r = await request(`${site.url(0)}${path}`);
  return r.status;
}

/** Whether connecting to 127.0.0.1:9229 succeeds. */
async function inspectorAnswers(): Promise<boolean> {
  try {
    const sock = await openSocket({ host: "127.0.0.1", port: INSPECTOR_PORT });
    sock.destroy();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ECONNREFUSED") return false;
    throw err;
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-issue8-sigusr1-"));
  accessLog = join(dir, "access.log");
  errorLog = join(dir, "error.log");
  inspectorPortTakenBefore = listeningTcp().some((r) => r.port === INSPECTOR_PORT);
  site = await serve(PROBE_APP, ["--listen", "http:127.0.0.1:0", "--listen", "uwsgi:127.0.0.1:0", "--access-log", accessLog, "--error-log", errorLog, "--run-as-root"]);
  worker = workersOf(site.pid)[0]!;
});

afterAll(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("SIGUSR1 reopens the log files (logrotate)", () => {
  test("after the logs are renamed, kill -USR1 of the master sends the next lines to new files at the configured paths", async () => {
    expect(await get("/info?n=1")).toBe(200);
    await poll("request 1 in the access log", 3000, () => read(accessLog).includes("/info?n=1"));
    expect(read(errorLog)).toMatch(/listening on http/);

    renameSync(accessLog, `${accessLog}.1`);
    renameSync(errorLog, `${errorLog}.1`);
    process.kill(site.pid, "SIGUSR1");
    // The master opens the files again at once; its workers on its message.
    await poll("the new log files", 3000, () => existsSync(accessLog) && existsSync(errorLog));
    await sleep(300);

    expect(await get("/info?n=2")).toBe(200);
    expect(await get("/throw")).toBe(500);
    await poll("request 2 and /throw in the new access log", 3000, () => read(accessLog).includes("/info?n=2") && read(accessLog).includes("/throw"));
    await poll("the exception in the new error log", 3000, () => read(errorLog).includes("probe: the route threw on purpose"));

    const oldAccess = read(`${accessLog}.1`);
    const oldError = read(`${errorLog}.1`);
    expect(oldAccess).toMatch(/"GET \/info\?n=1 HTTP\/1\.1" 200/);
    expect(oldAccess).not.toMatch(/n=2|\/throw/);
    expect(read(accessLog)).toMatch(/"GET \/info\?n=2 HTTP\/1\.1" 200/);
    expect(read(accessLog)).toMatch(/"GET \/throw HTTP\/1\.1" 500/);
    expect(read(accessLog)).not.toMatch(/n=1/);
    expect(oldError).toMatch(/listening on http/);
    expect(oldError).not.toMatch(/threw on purpose/);
    expect(read(errorLog)).not.toMatch(/listening on/);
    expect(read(errorLog)).not.toMatch(/cannot reopen/);
    expect(site.stderr()).toBe("");
    expect(site.stdout()).toBe("");
  });

  test("kill -USR1 of a worker reopens that worker's log files", async () => {
    renameSync(accessLog, `${accessLog}.2`);
    process.kill(worker, "SIGUSR1");
    await poll("the worker's new access log", 3000, () => existsSync(accessLog));
    expect(await get("/info?n=3")).toBe(200);
    await poll("request 3 in the new access log", 3000, () => read(accessLog).includes("/info?n=3"));
    expect(read(`${accessLog}.2`)).not.toMatch(/n=3/);
    expect(workersOf(site.pid)).toEqual([worker]);
  });
});

describe("SIGUSR1 opens no inspector", () => {
  test("after SIGUSR1 to the master and to a worker, neither listens on anything but tsgi's two listeners, and 9229 refuses", async () => {
    const told = [site.tcp(0).port, site.tcp(1).port].sort((a, b) => a - b);
    expect(listeningPortsOf(site.pid)).toEqual(told);
    expect(listeningPortsOf(worker)).toEqual(told);

    process.kill(site.pid, "SIGUSR1");
    process.kill(worker, "SIGUSR1");
    // Node's inspector, when a signal starts it, listens within a few milliseconds.
    await sleep(700);

    expect(listeningPortsOf(site.pid)).toEqual(told);
    expect(listeningPortsOf(worker)).toEqual(told);
    for (const pid of [site.pid, worker]) expect(listeningPortsOf(pid)).not.toContain(INSPECTOR_PORT);
    if (!inspectorPortTakenBefore) {
      expect(listeningTcp().some((r) => r.port === INSPECTOR_PORT)).toBe(false);
      expect(await inspectorAnswers()).toBe(false);
    }

    // Both still there, the same worker, serving on both listeners.
    expect(alive(site.pid)).toBe(true);
    expect(workersOf(site.pid)).toEqual([worker]);
    expect(await get("/info?n=4")).toBe(200);
    const viaUwsgi = await uwsgiRequest(site.tcp(1), "/info");
    expect(viaUwsgi.status).toBe(200);
    expect((JSON.parse(viaUwsgi.body) as { pid: number }).pid).toBe(worker);
    expect(read(errorLog)).not.toMatch(/Debugger listening|inspector/i);
    expect(site.stderr()).not.toMatch(/Debugger listening/);
  });
});

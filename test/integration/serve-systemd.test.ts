// `tsgi serve` under systemd, as `tsgi daemon` is (DESIGN §4: a unit may be Type=notify and
// take its sockets from a socket unit): with NOTIFY_SOCKET set it says READY=1 once it
// listens, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM; under
// systemd-socket-activate (systemd's own tool) the first connection starts it and is answered
// on the socket the tool passed, which serves the --listen entry of the same address.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { poll } from "../support/daemon.ts";
import { freePort } from "../support/front-servers.ts";
import { notifyReceiver, sets, type NotifyReceiver } from "../support/systemd-unit.ts";
import { ECHO_APP } from "../support/tsgi-process.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");

let dir: string;
const children: ChildProcess[] = [];
const receivers: NotifyReceiver[] = [];

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  const proc = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  children.push(proc);
  let err = "";
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  return { proc, err: () => err, exited };
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      // A connection of its own each time (agent: false): Node 20's global agent keeps one
      // alive, and after a reload that one belongs to a worker that has closed it.
      .get({ host: "127.0.0.1", port, path: "/environ", timeout: 20_000, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      })
      .on("error", reject);
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-serve-systemd-"));
});

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      await exited;
    }
  }
  for (const r of receivers) r.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("with NOTIFY_SOCKET: READY=1 once it listens, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM", async () => {
  const notify = await notifyReceiver(join(dir, "notify.sock"));
  receivers.push(notify);
  const port = await freePort();
  const serve = start(process.execPath, [BIN, "serve", ECHO_APP, "--listen", `http:127.0.0.1:${port}`, "--run-as-root"], { ...process.env, NOTIFY_SOCKET: notify.path });
  await poll(`READY=1 (stderr: ${serve.err()})`, 30_000, () => notify.datagrams().some((d) => sets(d, "READY=1")));
  expect((await get(port)).status).toBe(200);

  process.kill(serve.proc.pid!, "SIGHUP");
  await poll("RELOADING=1 then READY=1", 30_000, () => {
    const d = notify.datagrams();
    const reloading = d.findIndex((x) => sets(x, "RELOADING=1"));
    return reloading >= 0 && d.slice(reloading + 1).some((x) => sets(x, "READY=1"));
  });
  expect((await get(port)).status).toBe(200);

  process.kill(serve.proc.pid!, "SIGTERM");
  expect(await serve.exited).toEqual({ code: 0, signal: null });
  expect(notify.datagrams().some((d) => sets(d, "STOPPING=1"))).toBe(true);
}, 90_000);

test("under systemd-socket-activate: the first connection starts it and is answered on the passed socket", async () => {
  const port = await freePort();
  const tool = start(
    "systemd-socket-activate",
    ["-l", `127.0.0.1:${port}`, "--fdname=echo", "-E", `PATH=${process.env.PATH}`, process.execPath, BIN, "serve", ECHO_APP, "--listen", `http:127.0.0.1:${port}`, "--run-as-root"],
    { ...process.env, NOTIFY_SOCKET: "" },
  );
  await poll("systemd-socket-activate listening", 10_000, () => {
    if (tool.proc.exitCode !== null) throw new Error(`systemd-socket-activate exited: ${tool.err()}`);
    return /Listening on 127\.0\.0\.1:\d+ as 3/.test(tool.err());
  });
  // Nothing runs yet: this connection is what starts tsgi serve (the tool execs it in place).
  const first = await get(port);
  expect(first.status).toBe(200);
  expect(tool.err()).toMatch(new RegExp(`fd 3 \\(echo, 127\\.0\\.0\\.1:${port}\\)`));
  process.kill(tool.proc.pid!, "SIGTERM");
  expect(await tool.exited).toEqual({ code: 0, signal: null });
}, 60_000);

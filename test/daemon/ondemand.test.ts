// `ondemand = true` with real processes (issue 9, DESIGN §4): the master binds the site's
// sockets and starts no worker; the first connection through real nginx starts one (the
// master watches the listening socket and never accepts); connections waiting while every
// worker is busy start more, up to `processes`; a worker idle for inactivity-timeout stops
// and the next request starts one again. An ordinary site beside it is untouched.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { poll, siteStatus, startDaemon, type Daemon } from "../support/daemon.ts";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");

const APP = `
export function application(environ, startResponse) {
  if (environ.PATH_INFO === "/busy") {
    return (async function* () {
      await new Promise((r) => setTimeout(r, 700));
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      yield String(process.pid);
    })();
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [String(process.pid)];
}
`;

let dir: string;
let daemon: ChildProcess | null = null;
let stderr = "";
let nginx: FrontServer | null = null;

interface StatusJson {
  sites: { name: string; state: string; workers: { pid: number; index: number; state: string; lastRestart: string | null }[] }[];
}

function status(file: string): StatusJson {
  const r = spawnSync(process.execPath, [BIN, "status", "--json", "-c", file], { cwd: dir, encoding: "utf8", timeout: 20_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusJson;
}


beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-ondemand-"));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "app.mjs"), APP);
});

afterAll(async () => {
  await nginx?.stop();
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill("SIGTERM");
    await new Promise((r) => daemon!.once("exit", r));
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("ondemand sites", () => {
  test("no worker until the first request through nginx; busy workers bring more up to processes; idle ones stop and the next request starts one again", async () => {
    const sock = join(dir, "od.sock");
    const plain = await freePort();
    const file = join(dir, "tsgi.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\ngraceful-timeout = "3s"\nsocket-mode = "0666"\n\n` +
        `[site.od]\napp = "app.mjs"\nondemand = true\nprocesses = 2\nconcurrency = 1\ninactivity-timeout = "1s"\nlisten = ["fastcgi:unix:${sock}"]\n\n` +
        `[site.plain]\napp = "app.mjs"\nlisten = ["http:127.0.0.1:${plain}"]\n`,
    );
    daemon = spawn(process.execPath, [BIN, "daemon", "-c", file], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    daemon.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    await poll("the daemon ready", 20_000, () => /ready: 2 of 2 sites running \(1 ondemand with no worker yet\)/.test(stderr));

    // Bound, listening, and no worker: the ordinary site has its one.
    let s = status(file);
    const od = () => s.sites.find((x) => x.name === "od")!;
    expect(od().state).toBe("idle");
    expect(od().workers).toEqual([]);
    expect(s.sites.find((x) => x.name === "plain")!.workers).toHaveLength(1);
    const text = spawnSync(process.execPath, [BIN, "status", "-c", file], { cwd: dir, encoding: "utf8" }).stdout;
    expect(text).toContain("no worker: ondemand, the next connection starts one");

    nginx = await startNginx({
      conf: `
        upstream od { server unix:{{SOCK}}; keepalive 4; }
        server {
          listen {{HOST}}:{{PORT}};
          location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass od;
          }
        }`,
      vars: { SOCK: sock },
    });
    const url = `http://127.0.0.1:${nginx.port}`;

    // The first request starts a worker and is served by it.
    const t0 = performance.now();
    const first = await request(`${url}/`);
    const coldMs = performance.now() - t0;
    expect(first.status).toBe(200);
    const firstPid = Number(first.body.toString());
    console.log(`ondemand cold start through nginx: ${coldMs.toFixed(0)} ms`);
    s = status(file);
    expect(od().workers.map((w) => [w.pid, w.state, w.lastRestart])).toEqual([[firstPid, "ready", "a connection (ondemand)"]]);
    expect(od().state).toBe("running");

    // Idle for inactivity-timeout: it stops, and the site is idle again.
    await poll("the idle worker to stop", 10_000, () => {
      s = status(file);
      return od().state === "idle" && od().workers.length === 0;
    });
    // The worker's own log line travels on its stderr, which may reach us after the master's status does.
    await poll("the worker's idle log line", 5_000, () => /worker 1 idle for \ds \(inactivity-timeout\): stopping it \(ondemand\)/.test(stderr));

    // Four slow requests at once with concurrency 1: the waiting connections bring the second worker.
    const busy = await Promise.all(Array.from({ length: 4 }, () => request(`${url}/busy`)));
    expect(busy.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const pids = new Set(busy.map((r) => Number(r.body.toString())));
    expect(pids.has(firstPid)).toBe(false);
    s = status(file);
    expect(od().workers.length).toBeLessThanOrEqual(2);
    expect(pids.size).toBe(2);
    expect(nginx.errorLog()).not.toMatch(/\[error\]/);

    // Both idle out; the next request starts a worker again.
    await poll("both workers to stop", 15_000, () => {
      s = status(file);
      return od().state === "idle" && od().workers.length === 0;
    });
    const again = await request(`${url}/`);
    expect(again.status).toBe(200);
    expect(pids.has(Number(again.body.toString()))).toBe(false);

    // The ordinary site kept its one worker throughout.
    const p = await request(`http://127.0.0.1:${plain}/`);
    expect(p.status).toBe(200);
  }, 60_000);
});

describe("an ondemand site's last worker idling out under nginx's keepalive cache", () => {
  let d: Daemon | null = null;
  let front: FrontServer | null = null;
  afterAll(async () => {
    await front?.stop();
    await d?.stop();
  });

  // nginx keeps idle upstream connections (keepalive) and sends the next request on one
  // without knowing the worker behind it left: a close at that instant loses the request (a
  // POST is never retried). The master holds them instead, reading nothing, and the next
  // request on one starts a worker that serves it.
  test("the master holds the idle persistent connections; the next requests on them start a worker and are served, none refused", async () => {
    const sock = join(dir, "held.sock");
    const file = join(dir, "held.toml");
    writeFileSync(
      file,
      `[defaults]\nrun-as-root = true\ngraceful-timeout = "3s"\nsocket-mode = "0666"\n\n` +
        `[site.held]\napp = "app.mjs"\nondemand = true\ninactivity-timeout = "1s"\nlisten = ["fastcgi:unix:${sock}"]\n`,
    );
    d = startDaemon(dir, file);
    await poll("the daemon ready", 20_000, () => /ready: 1 of 1 sites running/.test(d!.stderr()));
    front = await startNginx({
      conf: `
        upstream held { server unix:{{SOCK}}; keepalive 8; }
        server {
          listen {{HOST}}:{{PORT}};
          location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass held;
          }
        }`,
      vars: { SOCK: sock },
    });
    const url = `http://127.0.0.1:${front.port}`;
    const post = () => request(`${url}/`, { body: Buffer.alloc(256, 0x61) });

    // Three at once: nginx opens (and then caches) three connections.
    const warm = await Promise.all([1, 2, 3].map(() => request(`${url}/busy`)));
    expect(warm.map((r) => r.status)).toEqual([200, 200, 200]);
    const firstPid = Number(warm[0]!.body.toString());

    let held = 0;
    for (let round = 1; round <= 3; round++) {
      await poll("the worker to idle out", 10_000, async () => {
        const s = await siteStatus(dir, file, "held");
        held = s.heldConnections;
        return s.state === "idle" && s.workers.length === 0;
      });
      // Nothing was closed under nginx: the connections it caches wait in the master.
      expect(held).toBeGreaterThan(0);
      // POSTs on them now: each starts (or finds) the worker, none is refused.
      const replies = await Promise.all([1, 2, 3].map(() => post()));
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(Number(replies[0]!.body.toString())).not.toBe(firstPid);
      const s = await siteStatus(dir, file, "held");
      expect(s.heldConnections).toBe(0);
      expect(s.state).toBe("running");
    }
    expect(d.stderr()).toMatch(/gave \d+ persistent connections? held while the site had no worker to worker pid \d+/);
    // nginx never saw a connection closed under a request, nor retried one.
    expect(front.errorLog()).not.toMatch(/\[error\]/);
  }, 60_000);
});


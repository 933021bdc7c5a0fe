// issue 9: a worker stuck in a loop of the application's own (its event loop blocked, so no
// request-timeout can fire in it) stops sending heartbeats; the master kills it 30 s after its
// last beat and starts a replacement, while the site's other worker serves every request.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { poll, siteStatus, startDaemon, type Daemon } from "../support/daemon.ts";
import { freePort } from "../support/front-servers.ts";

const APP = `
export function application(environ, startResponse) {
  if (environ.PATH_INFO === "/spin") for (;;) {}
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [String(process.pid)];
}
`;

let dir: string;
let daemon: Daemon;
let file: string;
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-heartbeat-"));
  writeFileSync(join(dir, "app.mjs"), APP);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  file = join(dir, "beat.toml");
  writeFileSync(file, `[defaults]\nrun-as-root = true\naccess-log = "off"\n\n[site.beat]\napp = "app.mjs"\nprocesses = 2\nlisten = ["http:127.0.0.1:${port}"]\n`);
  daemon = startDaemon(dir, file);
  await poll("beat ready", 30_000, () => /ready: 1 of 1 sites running/.test(daemon.stderr()));
});

afterAll(async () => {
  await daemon?.stop(5000);
  rmSync(dir, { recursive: true, force: true });
});

test("a worker blocked in a loop sends no heartbeat: killed ~30 s later and replaced, and the other worker serves meanwhile", async () => {
  const before = await siteStatus(dir, file, "beat");
  const pids = new Set(before.workers.map((w) => w.pid));
  expect(pids.size).toBe(2);
  // The spinning request never answers; the worker that took it is blocked for good.
  const spin = request(`${url}/spin`, { timeoutMs: 60_000 }).catch(() => null);
  await new Promise((r) => setTimeout(r, 300));
  const stuck = (await siteStatus(dir, file, "beat")).workers.find((w) => w.inFlight > 0)?.pid;

  // Meanwhile every request is served, by the worker still beating.
  let ok = 0;
  const failures: string[] = [];
  const servedBy = new Set<string>();
  let replaced = false;
  const load = (async () => {
    while (!replaced) {
      const r = await request(`${url}/`, { timeoutMs: 5000 }).catch((e: Error) => ({ status: -1, body: Buffer.from(e.message) }));
      if (r.status === 200) {
        ok++;
        servedBy.add(r.body.toString());
      } else failures.push(`${r.status} ${r.body.toString().slice(0, 60)}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  const line = await poll("the stuck worker killed", 45_000, () => /sent no heartbeat for \d+s \(stuck\); killing it/.exec(daemon.stderr())?.[0]);
  const after = await poll("a replacement ready", 15_000, async () => {
    const s = await siteStatus(dir, file, "beat");
    const ready = s.workers.filter((w) => w.state === "ready");
    return ready.length === 2 && ready.some((w) => !pids.has(w.pid)) ? s : null;
  });
  replaced = true;
  await load;
  await spin;
  console.log(`heartbeat: ${line}; ${ok} requests served meanwhile by pids ${[...servedBy].join(", ")}, ${failures.length} failed`);

  expect(failures).toEqual([]);
  expect(ok).toBeGreaterThan(100);
  if (stuck !== undefined) {
    // The stuck worker answered nothing after it blocked, and is gone.
    expect(servedBy.has(String(stuck))).toBe(false);
    expect(after.workers.some((w) => w.pid === stuck)).toBe(false);
  }
  const fresh = after.workers.find((w) => !pids.has(w.pid))!;
  expect(fresh.lastRestart ?? "").toMatch(/heartbeat|killed/);
}, 90_000);

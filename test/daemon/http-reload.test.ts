// Reload of a site served over tsgi's HTTP listener (the development front, `npm start`'s
// demo, nginx `proxy_pass` with upstream keepalive) under a keep-alive GET and POST load: a
// draining worker never closes an idle keep-alive connection its client may be reusing that
// instant (neither nginx nor node's agent retries a POST on a reset one). It stops listening,
// answers what still comes on its connections with `Connection: close`, and leaves the idle
// ones to the keep-alive timeout it announced. Counted, with real processes and real nginx.

import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request, type Reply } from "../integration/client.ts";
import { poll, siteStatus, startDaemon, type Daemon } from "../support/daemon.ts";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";

const APP = `
export function application(environ, startResponse) {
  if (environ.REQUEST_METHOD === "POST") {
    return (async function* () {
      let n = 0;
      for await (const c of environ["tsgi.input"]) n += c.length;
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      yield \`posted \${n}\\n\`;
    })();
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [String(process.pid)];
}
`;

let dir: string;
let daemon: Daemon | null = null;
let nginx: FrontServer | null = null;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-http-reload-"));
  writeFileSync(join(dir, "app.mjs"), APP);
});

afterAll(async () => {
  await nginx?.stop();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Tally {
  gets: number;
  posts: number;
  closing: number;
  failures: string[];
}

/** `streams` loops of GETs (even) and 256-byte POSTs (odd) until `stop()` says so. */
function load(send: (post: boolean) => Promise<Reply>, streams: number, stop: () => boolean): { tally: Tally; done: Promise<unknown> } {
  const tally: Tally = { gets: 0, posts: 0, closing: 0, failures: [] };
  const done = Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      while (!stop()) {
        const post = i % 2 === 1;
        const r = await send(post).catch((e: Error) => ({ status: -1, body: Buffer.from(e.message), complete: false, headers: [] as [string, string][], reason: "" }));
        const good = r.status === 200 && r.complete && (post ? r.body.toString() === "posted 256\n" : /^\d+$/.test(r.body.toString()));
        if (!good) tally.failures.push(`${post ? "POST" : "GET"} ${r.status} ${r.body.toString().slice(0, 80)}`);
        else if (post) tally.posts++;
        else tally.gets++;
        if (r.headers.some(([n, v]) => n === "connection" && v === "close")) tally.closing++;
      }
    }),
  );
  return { tally, done };
}

describe("reload over the HTTP listener", () => {
  test("SIGHUP three times under keep-alive GETs and POSTs, straight and through nginx proxy_pass with upstream keepalive: zero failed, nginx saw no upstream error", async () => {
    const port = await freePort();
    const file = join(dir, "tsgi.toml");
    writeFileSync(file, `[defaults]\nrun-as-root = true\ngraceful-timeout = "10s"\n\n[site.web]\napp = "app.mjs"\nprocesses = 2\nlisten = ["http:127.0.0.1:${port}"]\n`);
    daemon = startDaemon(dir, file);
    await poll("the daemon ready", 20_000, () => /ready: 1 of 1 sites running/.test(daemon!.stderr()));
    nginx = await startNginx({
      conf: `
        upstream web { server 127.0.0.1:{{BACKEND}}; keepalive 8; }
        server {
          listen {{HOST}}:{{PORT}};
          location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://web;
          }
        }`,
      vars: { BACKEND: port },
    });
    const body = Buffer.alloc(256, 0x61);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    let stopping = false;
    const direct = load((post) => request(`http://127.0.0.1:${port}/`, post ? { body, agent } : { agent }), 4, () => stopping);
    const proxied = load((post) => request(`http://127.0.0.1:${nginx!.port}/`, post ? { body } : {}), 4, () => stopping);
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 800));
      process.kill(daemon.proc.pid!, "SIGHUP");
    }
    await poll("the reloads done", 30_000, async () => {
      const s = await siteStatus(dir, file, "web");
      return s.state === "running" && s.workers.length === 2 && s.workers.every((w) => w.state === "ready");
    });
    await new Promise((r) => setTimeout(r, 500));
    stopping = true;
    await Promise.all([direct.done, proxied.done]);
    agent.destroy();
    const upstreamErrors = nginx.errorLog().split("\n").filter((l) => /upstream|recv\(\) failed|Connection reset|prematurely/.test(l));
    console.log(
      `HTTP listener, SIGHUP x3: direct ${direct.tally.gets} GETs + ${direct.tally.posts} POSTs (${direct.tally.closing} answered Connection: close), ` +
        `through nginx ${proxied.tally.gets} + ${proxied.tally.posts}; failed ${direct.tally.failures.length} + ${proxied.tally.failures.length}; nginx upstream errors ${upstreamErrors.length}`,
    );
    expect(direct.tally.failures).toEqual([]);
    expect(proxied.tally.failures).toEqual([]);
    expect(upstreamErrors).toEqual([]);
    // The draining workers told their clients to go elsewhere instead of closing under them.
    expect(direct.tally.closing).toBeGreaterThan(0);
    for (const t of [direct.tally, proxied.tally]) {
      expect(t.gets).toBeGreaterThan(50);
      expect(t.posts).toBeGreaterThan(50);
    }
  }, 90_000);
});

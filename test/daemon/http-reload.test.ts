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
import { request } from "../integration/client.ts";
import { poll, startDaemon, type Daemon } from "../support/daemon.ts";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";
import { countedLoad, sighupThrice, PID_OR_POSTED_APP, POST_BODY } from "../support/reload-load.ts";

let dir: string;
let daemon: Daemon | null = null;
let nginx: FrontServer | null = null;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-http-reload-"));
  writeFileSync(join(dir, "app.mjs"), PID_OR_POSTED_APP);
});

afterAll(async () => {
  await nginx?.stop();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

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
    const body = POST_BODY;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    let stopping = false;
    const direct = countedLoad((post) => request(`http://127.0.0.1:${port}/`, post ? { body, agent } : { agent }), 4, () => stopping);
    const proxied = countedLoad((post) => request(`http://127.0.0.1:${nginx!.port}/`, post ? { body } : {}), 4, () => stopping);
    await sighupThrice(daemon, dir, file, "web", 2);
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

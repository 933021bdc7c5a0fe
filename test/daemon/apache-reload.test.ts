// Reload behind Apache httpd's mod_proxy_fcgi with connection reuse (`enablereuse=on`, the
// configuration conf-examples/apache/proxy-fcgi.conf ships): Apache keeps the FastCGI
// connections in its pool and writes the next request on one without knowing the worker
// behind it drains. A draining worker hands each, at a request boundary, to a new worker (as
// under nginx's keepalive cache, test/daemon/daemon.test.ts); counted here under a GET and
// POST load, with Apache's error log read for a reset or a failed read from the backend.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { poll, startDaemon, type Daemon } from "../support/daemon.ts";
import { freePort, startApache, type FrontServer } from "../support/front-servers.ts";
import { countedLoad, sighupThrice, PID_OR_POSTED_APP, POST_BODY } from "../support/reload-load.ts";

let dir: string;
let daemon: Daemon | null = null;
let apache: FrontServer | null = null;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-apache-reload-"));
  chmodSync(dir, 0o755); // Apache's workers (www-data) reach the socket file
  writeFileSync(join(dir, "app.mjs"), PID_OR_POSTED_APP);
});

afterAll(async () => {
  await apache?.stop();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("reload behind Apache mod_proxy_fcgi (enablereuse=on)", () => {
  test.each(["tcp", "unix"] as const)("SIGHUP three times under GETs and POSTs over %s: zero failed, Apache logged no backend error, the pooled connections handed to the new workers", async (kind) => {
    const port = await freePort();
    const sock = join(dir, `${kind}.sock`);
    const listen = kind === "tcp" ? `fastcgi:127.0.0.1:${port}` : `fastcgi:unix:${sock}`;
    const file = join(dir, `${kind}.toml`);
    writeFileSync(file, `[defaults]\nrun-as-root = true\ngraceful-timeout = "10s"\nsocket-mode = "0666"\n\n[site.web]\napp = "app.mjs"\nprocesses = 2\nlisten = ["${listen}"]\n`);
    daemon = startDaemon(dir, file);
    await poll("the daemon ready", 20_000, () => /ready: 1 of 1 sites running/.test(daemon!.stderr()));
    const target = kind === "tcp" ? `fcgi://127.0.0.1:${port}/` : `unix:${sock}|fcgi://localhost/`;
    apache = await startApache({
      modules: ["proxy", "proxy_fcgi"],
      conf: `ProxyPass "/" "${target}" enablereuse=on ttl=5\n`,
    });
    const url = `http://127.0.0.1:${apache.port}/`;
    let stopping = false;
    const { tally, done } = countedLoad((post) => request(url, post ? { body: POST_BODY } : {}), 6, () => stopping);
    await sighupThrice(daemon, dir, file, "web", 2);
    stopping = true;
    await done;
    const backendErrors = apache.errorLog().split("\n").filter((l) => /\[proxy|reset by peer|error reading/i.test(l));
    if (backendErrors.length > 0) console.log(backendErrors.slice(0, 5).join("\n"));
    const handed = [...daemon.stderr().matchAll(/handed (\d+) persistent connections/g)].reduce((n, m) => n + Number(m[1]), 0);
    console.log(`Apache mod_proxy_fcgi enablereuse over ${kind}, SIGHUP x3: ${tally.gets} GETs, ${tally.posts} POSTs ok; failed ${tally.failures.length}; Apache backend errors ${backendErrors.length}; handed off ${handed}`);
    expect(tally.failures).toEqual([]);
    expect(backendErrors).toEqual([]);
    expect(handed).toBeGreaterThan(0);
    expect(tally.gets).toBeGreaterThan(50);
    expect(tally.posts).toBeGreaterThan(50);
    await apache.stop();
    apache = null;
    expect((await daemon.stop()).code).toBe(0);
    daemon = null;
  }, 90_000);
});

// A site mounted under /app (`tsgi serve --mount /app`) behind nginx (conf-examples/nginx/
// mount.conf: fastcgi at /app/, uwsgi at /app-uwsgi/ rewritten to /app/), Apache
// (conf-examples/apache/mount-fcgi.conf, mount-uwsgi.conf) and tsgi's HTTP listener: the
// application sees SCRIPT_NAME=/app and PATH_INFO=the rest, whatever each front server sends
// (nginx: DOCUMENT_URI / PATH_INFO with the whole path; mod_proxy_fcgi: the whole path as
// SCRIPT_NAME; mod_proxy_uwsgi: split at its ProxyPass prefix); a path outside the mount,
// even one that climbs out with an encoded "..", is a 404 the application never sees.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { VALIDATE_MARK } from "../support/echo-app.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { pseudoRandom, rawExchange, request, sha256 } from "./client.ts";
import { startMountFronts, type Front, type FrontName, type Started } from "./fronts.ts";

let tsgi: TsgiProcess;
let started: Started;
const fronts = new Map<FrontName, Front>();

beforeAll(async () => {
  tsgi = await startTsgi({
    listen: [{ proto: "fastcgi" }, { proto: "uwsgi" }, { proto: "uwsgi", unix: true, key: "uwsgiUnix" }, { proto: "http" }],
    args: ["--mount", "/app"],
  });
  started = await startMountFronts(tsgi);
  for (const f of started.fronts) fronts.set(f.name, f);
});

afterAll(async () => {
  await started?.stop();
  await tsgi?.stop();
});

const NAMES: FrontName[] = ["nginx-mount-fastcgi", "nginx-mount-uwsgi", "apache-mount-fcgi", "apache-mount-uwsgi", "tsgi-http"];

describe.each(NAMES)("%s", (name) => {
  test(`${name} under /app: SCRIPT_NAME is the mount, PATH_INFO the decoded rest`, async () => {
    const f = fronts.get(name)!;
    const r = await request(`${f.base}/environ/x%20y/caf%C3%A9?q=1&r=%2F`);
    expect(r.status).toBe(200);
    const { environ: env } = JSON.parse(r.body.toString()) as { environ: Record<string, string> };
    expect(env.SCRIPT_NAME).toBe("/app");
    expect(env.PATH_INFO).toBe("/environ/x y/café");
    expect(env.QUERY_STRING).toBe("q=1&r=%2F");
    expect(env.REQUEST_URI).toBe(`${new URL(f.base).pathname}/environ/x%20y/caf%C3%A9?q=1&r=%2F`);
  });

  test(`${name} under /app: a POST body arrives whole`, async () => {
    const f = fronts.get(name)!;
    const data = pseudoRandom(256 * 1024, 0xa99);
    const r = await request(`${f.base}/environ`, { body: data, headers: [["Content-Type", "application/octet-stream"]] });
    const echo = JSON.parse(r.body.toString()) as { environ: Record<string, string>; body: { length: number; sha256: string } };
    expect(echo.environ.SCRIPT_NAME).toBe("/app");
    expect(echo.environ.PATH_INFO).toBe("/environ");
    expect(echo.body).toEqual({ length: data.length, sha256: sha256(data) });
  });
});

describe("outside the mount", () => {
  test("tsgi-http: /other is a 404 from tsgi, logged with TSGI_ERR_ENVIRON_OUTSIDE_MOUNT", async () => {
    const f = fronts.get("tsgi-http")!;
    const r = await request(`http://${f.host}:${f.port}/other/environ`);
    expect(r.status).toBe(404);
    expect(r.body.toString()).toBe("Not Found\n");
    await tsgi.waitForStderr(/TSGI_ERR_ENVIRON_OUTSIDE_MOUNT: path \/other\/environ is outside the site's mount \/app/);
  });

  test("tsgi-http: an encoded /app/%2e%2e/ cannot climb out of the mount", async () => {
    const f = fronts.get("tsgi-http")!;
    const raw = await rawExchange(f.host, f.port, `GET /app/%2e%2e/secret/environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(raw.toString("latin1")).toMatch(/^HTTP\/1\.1 404 /);
    await tsgi.waitForStderr(/path \/secret\/environ is outside the site's mount/);
  });

  test("tsgi-http: /appendix is not under /app", async () => {
    const f = fronts.get("tsgi-http")!;
    expect((await request(`http://${f.host}:${f.port}/appendix/environ`)).status).toBe(404);
  });

  test("nginx-mount-fastcgi: /app without the slash is nginx's own 301 to /app/ (location /app/ with a *_pass)", async () => {
    const f = fronts.get("nginx-mount-fastcgi")!;
    const r = await request(`http://${f.host}:${f.port}/app`);
    expect(r.status).toBe(301);
    expect(r.headers.find(([n]) => n === "location")?.[1]).toMatch(/\/app\/$/);
  });

  test("apache-mount-fcgi: /app without the slash is Apache's own 404 (ProxyPass \"/app/\" does not match it)", async () => {
    const f = fronts.get("apache-mount-fcgi")!;
    const r = await request(`http://${f.host}:${f.port}/app`);
    expect(r.status).toBe(404);
    expect(r.body.toString()).not.toBe("Not Found\n"); // Apache's HTML page, not tsgi's
  });

  test("the validator reported no breach of the contract on either side", () => {
    expect(tsgi.stderr().split("\n").filter((l) => l.includes(VALIDATE_MARK))).toEqual([]);
  });
});

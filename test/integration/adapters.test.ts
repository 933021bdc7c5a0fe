// Combining frameworks (gateway/adapters.ts) in a real `tsgi serve` behind real nginx 1.22
// over FastCGI with kept connections: a real Express app and a real Fastify app turned into
// TSGI applications by fromNodeHandler, a TSGI application inside Express by toNodeHandler,
// all under one site by mount() (test/support/adapters-app.ts); and the combined example of
// conf-examples/combined/ (Express under /api, a TSGI app for the rest) in a second
// `tsgi serve`. A second nginx server block sends HTTPS=on and REMOTE_ADDR=203.0.113.7, so
// req.ip and req.protocol are seen to come from the environ, not from a socket. Test names:
// nginx-fastcgi-keepconn-express-…, -fastify-…, -tsgi-in-express-…, -mount-…, tsgi-http-… .
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import express from "express";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { toNodeHandler } from "../../src/index.ts";
import { freePort, startNginx, type FrontServer } from "../support/front-servers.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { SENT_FILE } from "../support/adapters-app.ts";
import { header, pseudoRandom, request, sha256 } from "./client.ts";

const ROOT = join(import.meta.dirname, "..", "..");

// Streaming responses pass nginx at once only with fastcgi_buffering off (as a site that
// streams sets it for those locations).
const NGINX_CONF = `
upstream adapters { server {{ADAPTERS}}; keepalive 8; keepalive_timeout 5s; }
upstream combined { server {{COMBINED}}; keepalive 8; keepalive_timeout 5s; }
server {
    listen {{HOST}}:{{PORT}};
    server_name localhost;
    client_max_body_size 20m;
    location / { fastcgi_pass adapters; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location ~ /stream$ { fastcgi_pass adapters; fastcgi_keep_conn on; fastcgi_buffering off; include /etc/nginx/fastcgi_params; }
}
server {
    listen {{HOST}}:{{SECURE_PORT}};
    server_name localhost;
    location / {
        fastcgi_pass adapters;
        fastcgi_keep_conn on;
        include /etc/nginx/fastcgi_params;
        # As behind a TLS terminator that names the client: the environ's word wins.
        fastcgi_param HTTPS on;
        fastcgi_param REMOTE_ADDR 203.0.113.7;
    }
}
server {
    listen {{HOST}}:{{COMBINED_PORT}};
    server_name localhost;
    location / { fastcgi_pass combined; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
}
`;

let tsgi: TsgiProcess;
let combined: TsgiProcess;
let nginx: FrontServer;
let base = "";
let secure = "";
let example = "";
let direct = "";

beforeAll(async () => {
  [tsgi, combined] = await Promise.all([
    startTsgi({ app: join(ROOT, "test", "support", "adapters-app.ts"), listen: [{ proto: "fastcgi", unix: true }, { proto: "http" }] }),
    startTsgi({ app: join(ROOT, "conf-examples", "combined", "tsgi.ts"), listen: [{ proto: "fastcgi", unix: true }] }),
  ]);
  const [securePort, combinedPort] = [await freePort(), await freePort()];
  nginx = await startNginx({
    conf: NGINX_CONF,
    vars: { ADAPTERS: tsgi.nginxAddress("fastcgi"), COMBINED: combined.nginxAddress("fastcgi"), SECURE_PORT: securePort, COMBINED_PORT: combinedPort },
  });
  base = `http://${nginx.host}:${nginx.port}`;
  secure = `http://${nginx.host}:${securePort}`;
  example = `http://${nginx.host}:${combinedPort}`;
  const h = tsgi.tcp("http");
  direct = `http://${h.host}:${h.port}`;
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await Promise.all([tsgi?.stop(), combined?.stop()]);
});

const json = (r: { body: Buffer }) => JSON.parse(r.body.toString()) as Record<string, unknown>;
const post = (url: string, body: unknown) =>
  request(url, { body: Buffer.from(JSON.stringify(body)), headers: [["Content-Type", "application/json"]] });

/** A GET whose chunks are timed from the request's start. */
function timedGet(url: string): Promise<{ status: number; chunks: { at: number; text: string }[]; endAt: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const chunks: { at: number; text: string }[] = [];
    http
      .get(url, { agent: false }, (res) => {
        res.on("data", (d: Buffer) => chunks.push({ at: performance.now() - t0, text: d.toString() }));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, chunks, endAt: performance.now() - t0 }));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

describe("Express through fromNodeHandler", () => {
  test("nginx-fastcgi-keepconn-express-routing: params, query, req.url under the mount", async () => {
    const r = await request(`${base}/express/users/42?x=1&y=two`);
    expect(r.status).toBe(200);
    expect(header(r, "content-type")).toBe("application/json; charset=utf-8");
    expect(json(r)).toEqual({ app: "express", id: "42", query: { x: "1", y: "two" }, url: "/users/42?x=1&y=two", originalUrl: "/express/users/42?x=1&y=two" });
    expect((await request(`${base}/express/nothing-here`)).status).toBe(404);
  });

  test("nginx-fastcgi-keepconn-express-json-body: express.json() reads tsgi.input", async () => {
    const r = await post(`${base}/express/json`, { a: [1, 2], s: "café" });
    expect(r.status).toBe(200);
    expect(json(r)).toEqual({ app: "express", got: { a: [1, 2], s: "café" } });
  });

  test("nginx-fastcgi-keepconn-express-multipart-upload: multer gets the file whole", async () => {
    const data = pseudoRandom(700 * 1024, 0xada);
    const form = new FormData();
    form.append("note", "hello");
    form.append("file", new Blob([data]), "blob.bin");
    const res = await fetch(`${base}/express/upload`, { method: "POST", body: form });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ field: "hello", name: "blob.bin", size: data.length, sha256: sha256(data) });
  });

  test("nginx-fastcgi-keepconn-express-streaming: the first write reaches the client before the handler ends", async () => {
    const r = await timedGet(`${base}/express/stream`);
    expect(r.status).toBe(200);
    expect(r.chunks.map((c) => c.text).join("")).toBe("first\nsecond\nend\n");
    // The handler writes "first", sleeps 400 ms, writes "second", sleeps 100 ms, ends.
    expect(r.endAt - r.chunks[0]!.at).toBeGreaterThan(350);
    expect(r.chunks[0]!.text).toBe("first\n");
  });

  test("nginx-fastcgi-keepconn-express-error: a throwing route is Express's own 500", async () => {
    const r = await request(`${base}/express/error`);
    expect(r.status).toBe(500);
    expect(r.body.toString()).toContain("Internal Server Error");
    expect(r.complete).toBe(true);
  });

  test("nginx-fastcgi-keepconn-plain-handler-throws: the gateway's 500, logged", async () => {
    const r = await request(`${base}/plain/throws`);
    expect(r.status).toBe(500);
    expect(r.body.toString()).toBe("Internal Server Error\n");
    await tsgi.waitForStderr(/the application failed on GET \/plain\/throws: Error: a plain handler failed/);
    const ok = await request(`${base}/plain/hello/x`);
    expect(ok.body.toString()).toBe("hello /plain/hello/x\n");
  });

  test("nginx-fastcgi-keepconn-express-ip-protocol: req.ip, req.protocol from REMOTE_ADDR and HTTPS", async () => {
    expect(json(await request(`${base}/express/whoami`))).toMatchObject({ ip: "127.0.0.1", protocol: "http", secure: false });
    expect(json(await request(`${secure}/express/whoami`))).toMatchObject({ ip: "203.0.113.7", remoteAddress: "203.0.113.7", protocol: "https", secure: true });
  });

  test("nginx-fastcgi-keepconn-express-sendfile: res.sendFile pipes the file through", async () => {
    const r = await request(`${base}/express/file`);
    expect(r.status).toBe(200);
    const file = readFileSync(SENT_FILE);
    expect(r.body.equals(file)).toBe(true);
    expect(header(r, "content-length")).toBe(String(file.length));
    expect(header(r, "content-type")).toBe("application/json; charset=utf-8");
    expect(header(r, "etag")).toBeTruthy();
    expect(header(r, "transfer-encoding")).toBeUndefined();
  });

  test("tsgi-http-express-client-gone: req and res emit 'close' when the client goes away", async () => {
    await new Promise<void>((resolve) => {
      const req = http.get(`${direct}/express/hang`, { agent: false });
      req.on("error", () => resolve());
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
    });
    await tsgi.waitForEvent("express req close");
    await tsgi.waitForEvent("express res close (finished: false)");
  });
});

describe("Fastify through fromNodeHandler", () => {
  test("nginx-fastcgi-keepconn-fastify-routing", async () => {
    const r = await request(`${base}/fastify/hello/bob?x=1`);
    expect(r.status).toBe(200);
    expect(json(r)).toEqual({ app: "fastify", name: "bob", query: { x: "1" } });
    expect((await request(`${base}/fastify/nothing-here`)).status).toBe(404);
  });

  test("nginx-fastcgi-keepconn-fastify-json-body", async () => {
    const r = await post(`${base}/fastify/json`, { n: 7 });
    expect(json(r)).toEqual({ app: "fastify", got: { n: 7 } });
  });

  test("nginx-fastcgi-keepconn-fastify-ip-protocol", async () => {
    expect(json(await request(`${base}/fastify/whoami`))).toMatchObject({ ip: "127.0.0.1", protocol: "http" });
    expect(json(await request(`${secure}/fastify/whoami`))).toMatchObject({ ip: "203.0.113.7", protocol: "https" });
  });

  test("nginx-fastcgi-keepconn-fastify-error: Fastify's own 500", async () => {
    const r = await request(`${base}/fastify/error`);
    expect(r.status).toBe(500);
    expect(json(r)).toMatchObject({ statusCode: 500, message: "a Fastify route failed" });
  });

  test("nginx-fastcgi-keepconn-fastify-streaming: a streamed reply arrives in parts", async () => {
    const r = await timedGet(`${base}/fastify/stream`);
    expect(r.chunks.map((c) => c.text).join("")).toBe("first\nsecond\n");
    expect(r.endAt - r.chunks[0]!.at).toBeGreaterThan(300);
  });
});

describe("toNodeHandler", () => {
  test("nginx-fastcgi-keepconn-tsgi-in-express: SCRIPT_NAME is Express's baseUrl, PATH_INFO the decoded rest", async () => {
    const r = await request(`${base}/express/tsgi/a%20b/c?q=2`);
    expect(json(r)).toEqual({
      app: "tsgi",
      SCRIPT_NAME: "/express/tsgi",
      PATH_INFO: "/a b/c",
      QUERY_STRING: "q=2",
      REQUEST_URI: "/express/tsgi/a%20b/c?q=2",
      REMOTE_ADDR: "127.0.0.1",
      url_scheme: "http",
    });
    const s = await request(`${secure}/express/tsgi/x`);
    expect(json(s)).toMatchObject({ REMOTE_ADDR: "203.0.113.7", url_scheme: "https" });
  });

  test("nginx-fastcgi-keepconn-tsgi-in-express-body: the inner application reads the body", async () => {
    const data = pseudoRandom(200 * 1024, 7);
    const r = await request(`${base}/express/tsgi/upload/x`, { body: data });
    expect(json(r)).toEqual({ app: "tsgi", SCRIPT_NAME: "/express/tsgi/upload", PATH_INFO: "/x", length: data.length });
  });

  test("express-on-node-http-tsgi-app: toNodeHandler in an Express app on a plain node:http server", async () => {
    const app = express();
    app.use(
      "/t",
      toNodeHandler(async (environ, startResponse) => {
        const body = await environ["tsgi.input"].read();
        startResponse("200 OK", [["Content-Type", "application/json"]]);
        return [JSON.stringify({ s: environ.SCRIPT_NAME, p: environ.PATH_INFO, q: environ.QUERY_STRING, n: body.length, digest: createHash("sha256").update(body).digest("hex") })];
      }),
    );
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as { port: number };
      const data = pseudoRandom(64 * 1024, 3);
      const r = await request(`http://127.0.0.1:${port}/t/x/y?z=1`, { body: data });
      expect(json(r)).toEqual({ s: "/t", p: "/x/y", q: "z=1", n: data.length, digest: sha256(data) });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe("mount", () => {
  test("nginx-fastcgi-keepconn-mount: nested prefixes move to SCRIPT_NAME; '/' takes the rest", async () => {
    expect(json(await request(`${base}/nested/inner/z?k=v`))).toMatchObject({ SCRIPT_NAME: "/nested/inner", PATH_INFO: "/z", QUERY_STRING: "k=v" });
    expect(json(await request(`${base}/nested/inner`))).toMatchObject({ SCRIPT_NAME: "/nested/inner", PATH_INFO: "" });
    expect(json(await request(`${base}/nestedx`))).toMatchObject({ SCRIPT_NAME: "", PATH_INFO: "/nestedx" });
    expect(json(await request(`${base}/`))).toMatchObject({ SCRIPT_NAME: "", PATH_INFO: "/" });
  });

  test("nginx-fastcgi-keepconn-mount-404: a path no prefix of an inner mount takes", async () => {
    const r = await request(`${base}/nested/innerx`);
    expect(r.status).toBe(404);
    expect(r.body.toString()).toBe("Not Found\n");
  });
});

describe("conf-examples/combined: Express under /api, a TSGI app for the rest", () => {
  test("nginx-fastcgi-keepconn-combined-example", async () => {
    const status = await request(`${example}/api/status`);
    expect(status.status).toBe(200);
    expect(json(status)).toEqual({ ok: true, from: "express", ip: "127.0.0.1", protocol: "http" });
    const echo = await post(`${example}/api/echo`, { hi: 1 });
    expect(echo.status).toBe(201);
    expect(json(echo)).toEqual({ from: "express", echo: { hi: 1 } });
    expect(json(await request(`${example}/about`))).toEqual({ from: "tsgi", SCRIPT_NAME: "", PATH_INFO: "/about" });
    expect(json(await request(`${example}/apix`))).toEqual({ from: "tsgi", SCRIPT_NAME: "", PATH_INFO: "/apix" });
    expect((await request(`${example}/api/missing`)).status).toBe(404);
  });
});

// The one set of requests every front end gets (DESIGN §2: one application, the same
// behaviour over each protocol): what the echo application saw (path, query, method, headers,
// body) and what the client got (streams, HEAD, 204/304, reasons, cookies, errors before and
// after the head, a client leaving mid-stream, 200 requests at once). A test file calls
// defineFrontSuite with its front names and the function that starts them before one
// `tsgi serve` process; the tsgi-http front is the baseline the others are compared with.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { VALIDATE_MARK, streamDigest } from "../support/echo-app.ts";
import { startTsgi, type ListenWanted, type TsgiProcess } from "../support/tsgi-process.ts";
import { header, headerAll, pseudoRandom, rawExchange, request, sha256, startReading, type Reply } from "./client.ts";
import type { Front, FrontName, Started } from "./fronts.ts";

interface Echo {
  environ: Record<string, string | boolean | undefined>;
  body: { length: number; sha256: string };
}

function echoOf(reply: Reply): Echo {
  if (reply.status !== 200) throw new Error(`expected 200 from /environ, got ${reply.status} ${reply.reason}: ${reply.body.toString().slice(0, 300)}`);
  return JSON.parse(reply.body.toString("utf8")) as Echo;
}

export interface SuiteOptions {
  fronts: FrontName[];
  listen: ListenWanted[];
  start: (tsgi: TsgiProcess) => Promise<Started>;
  /** Client sockets at once for the 200-request test (nginx's test worker has 256 connections: client + upstream each). */
  concurrencyLimit?: Partial<Record<FrontName, number>>;
  /** Environment of the tsgi process (e.g. TSGI_NATIVE_IO=0 for the net.Socket uwsgi server). */
  env?: Record<string, string>;
}

export function defineFrontSuite(o: SuiteOptions): void {
  let tsgi: TsgiProcess;
  let started: Started;
  const fronts = new Map<FrontName, Front>();
  let baseline: Front;

  beforeAll(async () => {
    tsgi = await startTsgi({ listen: o.listen, args: ["--processes", "2"], ...(o.env ? { env: o.env } : {}) });
    started = await o.start(tsgi);
    for (const f of started.fronts) fronts.set(f.name, f);
    baseline = fronts.get("tsgi-http")!;
  });

  afterAll(async () => {
    await started?.stop();
    await tsgi?.stop();
  });

  const get = (name: FrontName) => {
    const f = fronts.get(name);
    if (!f) throw new Error(`front ${name} not started`);
    return f;
  };

  // Every key the comparison looks at, for a request with headers that every front passes.
  const COMPARED = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_URI", "REMOTE_ADDR", "tsgi.url_scheme"];
  const utf8Path = "/environ/caf%C3%A9/na%C3%AFve%20x.txt";
  const query = "q=%C3%A9t%C3%A9&x=1&x=2&empty=&plus=a+b";
  const commonHeaders: [string, string][] = [
    ["X-Request-Id", "7f3a"],
    ["Accept-Language", "fr-CH, fr;q=0.9"],
    ["X-Repeat", "one"],
    ["X-Repeat", "two"],
    ["Cookie", "a=1"],
    ["Cookie", "b=2"],
    ["X_Under", "dropped"],
  ];

  for (const name of o.fronts) {
    describe(name, () => {
      test(`${name}: environ of a GET with a percent-encoded UTF-8 path, a query and repeated headers`, async () => {
        const f = get(name);
        const { environ: env, body } = echoOf(await request(`${f.base}${utf8Path}?${query}`, { headers: commonHeaders }));
        const { environ: base } = echoOf(await request(`${baseline.base}${utf8Path}?${query}`, { headers: commonHeaders }));
        for (const key of COMPARED) expect.soft(env[key], key).toBe(base[key]);
        expect(env.REQUEST_METHOD).toBe("GET");
        expect(env.SCRIPT_NAME).toBe(""); // no mount here; mount.test.ts covers /app
        expect(env.PATH_INFO).toBe("/environ/café/naïve x.txt");
        expect(env.QUERY_STRING).toBe(query);
        expect(env.REQUEST_URI).toBe(`${utf8Path}?${query}`);
        expect("CONTENT_LENGTH" in env).toBe(false);
        expect("CONTENT_TYPE" in env).toBe(false);
        expect(env.HTTP_X_REQUEST_ID).toBe("7f3a");
        expect(env.HTTP_ACCEPT_LANGUAGE).toBe("fr-CH, fr;q=0.9");
        // nginx 1.22 passes the two X-Repeat lines as two params; Apache merges them itself;
        // either way the environ holds one value joined with ", " (RFC 9110 §5.3).
        expect(env.HTTP_X_REPEAT).toBe("one, two");
        expect(env.HTTP_COOKIE).toBe(f.quirks.cookieJoin);
        // A header name with an underscore could pose as X-Under: nginx (underscores_in_headers
        // off), Apache (util_script.c) and tsgi's HTTP listener all drop it.
        expect(env).not.toHaveProperty("HTTP_X_UNDER");
        expect(env.HTTP_HOST).toBe(f.quirks.httpHost(f.port));
        expect(env.SERVER_NAME).toBe(f.quirks.serverName);
        expect(env.SERVER_PORT).toBe(String(f.port));
        expect(env["tsgi.url_scheme"]).toBe("http");
        expect(env["tsgi.multiprocess"]).toBe(true);
        expect(body).toEqual({ length: 0, sha256: sha256(Buffer.alloc(0)) });
      });

      test(`${name}: a small form POST: CONTENT_TYPE, CONTENT_LENGTH and the body`, async () => {
        const f = get(name);
        const form = Buffer.from("name=caf%C3%A9&n=42");
        const { environ: env, body } = echoOf(
          await request(`${f.base}/environ`, { headers: [["Content-Type", "application/x-www-form-urlencoded"]], body: form }),
        );
        expect(env.REQUEST_METHOD).toBe("POST");
        expect(env.CONTENT_TYPE).toBe("application/x-www-form-urlencoded");
        expect(env.CONTENT_LENGTH).toBe(String(form.length));
        expect(body).toEqual({ length: form.length, sha256: sha256(form) });
      });

      test(`${name}: an 8 KiB header and 100 headers arrive whole`, async () => {
        const f = get(name);
        const big = "b".repeat(8192);
        const { environ: env1 } = echoOf(await request(`${f.base}/environ`, { headers: [["X-Big", big]] }));
        expect(env1.HTTP_X_BIG).toBe(big);
        const many: [string, string][] = Array.from({ length: 100 }, (_, i) => [`X-Many-${String(i).padStart(2, "0")}`, `value-${i}-${"m".repeat(40)}`]);
        const { environ: env2 } = echoOf(await request(`${f.base}/environ`, { headers: many }));
        for (const [n, v] of many) expect.soft(env2[`HTTP_${n.toUpperCase().replace(/-/g, "_")}`], n).toBe(v);
      });

      test(`${name}: a 5 MiB upload with a Content-Length arrives byte for byte`, async () => {
        const f = get(name);
        const data = pseudoRandom(5 * 1024 * 1024, 0x5eed);
        const { environ: env, body } = echoOf(
          await request(`${f.base}/environ`, { headers: [["Content-Type", "application/octet-stream"]], body: data }),
        );
        expect(env.CONTENT_LENGTH).toBe(String(data.length));
        expect(body).toEqual({ length: data.length, sha256: sha256(data) });
      });

      test(`${name}: a chunked upload`, async () => {
        const f = get(name);
        const data = pseudoRandom(2 * 1024 * 1024, 0xc4c4);
        const chunks = Array.from({ length: 32 }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
        const reply = await request(`${f.base}/environ`, { headers: [["Content-Type", "application/octet-stream"]], chunks });
        if (f.quirks.chunkedUpload === "refused-411") {
          // mod_proxy_uwsgi cannot send a body of unknown length (uwsgi frames the body by
          // CONTENT_LENGTH only) and refuses it before tsgi sees anything.
          expect(reply.status).toBe(411);
          return;
        }
        const { environ: env, body } = echoOf(reply);
        expect(body).toEqual({ length: data.length, sha256: sha256(data) });
        if (f.quirks.chunkedUpload === "content-length") expect(env.CONTENT_LENGTH).toBe(String(data.length));
        else expect("CONTENT_LENGTH" in env).toBe(false); // the body ends with the stream
      });

      test(`${name}: a 20 MiB streamed response arrives whole`, async () => {
        const f = get(name);
        const reply = await request(`${f.base}/stream?mib=20`, { timeoutMs: 60_000 });
        const want = streamDigest(20);
        expect(reply.status).toBe(200);
        expect(reply.complete).toBe(true);
        expect(reply.body.length).toBe(want.length);
        expect(sha256(reply.body)).toBe(want.sha256);
      });

      test(`${name}: HEAD carries no body bytes`, async () => {
        const f = get(name);
        const path = `${new URL(f.base).pathname.replace(/\/$/, "")}/stream?mib=1`;
        const raw = await rawExchange(f.host, f.port, `HEAD ${path} HTTP/1.1\r\nHost: ${f.host}:${f.port}\r\nConnection: close\r\n\r\n`);
        const text = raw.toString("latin1");
        const end = text.indexOf("\r\n\r\n");
        expect(text).toMatch(/^HTTP\/1\.1 200 /);
        expect(end).toBeGreaterThan(0);
        expect(raw.length).toBe(end + 4);
      });

      test(`${name}: 204 and 304 with custom reasons carry no body`, async () => {
        const f = get(name);
        for (const [code, reason] of [
          [204, "Nothing Here"],
          [304, "Same As Before"],
        ] as const) {
          const r = await request(`${f.base}/status?code=${code}&reason=${encodeURIComponent(reason)}`);
          expect(r.status).toBe(code);
          expect(r.reason).toBe(reason);
          expect(r.body.length).toBe(0);
          expect(header(r, "x-status-test")).toBe(String(code));
          expect(header(r, "content-type") !== undefined, "Content-Type kept").toBe(f.quirks.contentTypeOn204And304);
        }
      });

      test(`${name}: custom reason phrases reach the client`, async () => {
        const f = get(name);
        for (const [code, reason] of [
          [299, "Very Custom"],
          [404, "Nope Not Here"],
          [503, "Back Soon"],
        ] as const) {
          const r = await request(`${f.base}/status?code=${code}&reason=${encodeURIComponent(reason)}`);
          expect.soft(`${r.status} ${r.reason}`).toBe(`${code} ${reason}`);
          expect(r.body.toString()).toBe(`status ${code}\n`);
        }
      });

      test(`${name}: several Set-Cookie headers stay separate`, async () => {
        const f = get(name);
        const r = await request(`${f.base}/cookies`);
        expect(r.status).toBe(200);
        expect(headerAll(r, "set-cookie")).toEqual(["a=1; Path=/", "b=2; Path=/; HttpOnly", "c=3; Path=/; Max-Age=60"]);
      });

      test(`${name}: an exception before start_response is a 500 with a short plain body`, async () => {
        const f = get(name);
        const r = await request(`${f.base}/error-before`);
        expect(r.status).toBe(500);
        expect(r.complete).toBe(true);
        expect(r.body.toString()).toBe("Internal Server Error\n");
        expect(header(r, "content-type")).toBe("text/plain; charset=utf-8");
        await tsgi.waitForStderr(/the application failed on GET \S*\/error-before: Error: echo: failing before start_response/);
      });

      test(`${name}: an exception after the first chunk gives the client a truncated response`, async () => {
        const f = get(name);
        // tsgi cuts with a reset on TCP; a unix socket has no reset, and a uwsgi response
        // without a length ends where the connection closes, so there the application's
        // Content-Length is what lets nginx see the cut (README: "The response").
        const lengthNeeded = name === "nginx-uwsgi";
        const r = await request(`${f.base}/error-after${lengthNeeded ? "?length=100" : ""}`);
        expect(r.status).toBe(200);
        // With proxy buffering on (the default), nginx drops what it held on an upstream error.
        expect("partial ".startsWith(r.body.toString())).toBe(true);
        // DESIGN §1: "the client sees a truncated response, never a complete-looking one".
        expect(r.complete, "the response must not look complete").toBe(false);
      });

      test(`${name}: a client leaving mid-stream fires tsgi.signal and close()`, async () => {
        const f = get(name);
        const id = `${name}-${Date.now()}`;
        const reading = await startReading(`${f.base}/slow-stream?id=${id}`);
        reading.leave();
        await tsgi.waitForEvent(`${id} abort`, 15_000);
        await tsgi.waitForEvent(`${id} close`, 15_000);
        expect(tsgi.events().filter((l) => l === `${id} close`)).toHaveLength(1);
      });

      test(`${name}: 200 concurrent requests are all answered`, async () => {
        const f = get(name);
        const limit = o.concurrencyLimit?.[name];
        const { Agent } = await import("node:http");
        const agent = limit ? new Agent({ keepAlive: false, maxSockets: limit }) : false;
        const replies = await Promise.all(
          Array.from({ length: 200 }, (_, i) => request(`${f.base}/environ?n=${i}`, { headers: [["X-N", String(i)]], agent })),
        );
        if (agent) agent.destroy();
        replies.forEach((r, i) => {
          const { environ: env } = echoOf(r);
          expect(env.QUERY_STRING).toBe(`n=${i}`);
          expect(env.HTTP_X_N).toBe(String(i));
        });
      });
    });
  }

  test("the validator reported no breach of the contract on either side", () => {
    const reports = tsgi.stderr().split("\n").filter((l) => l.includes(VALIDATE_MARK));
    expect(reports).toEqual([]);
  });
}

// gateway/adapters.ts through the real request runner: fromNodeHandler's request (url, headers,
// body from tsgi.input, the socket's address and `encrypted`) and response (head from
// setHeader or writeHead alone, no chunked framing, HEAD, streaming with backpressure, errors,
// the client going away), and mount's dispatch. The sink records what a protocol server
// would be asked to send; its sends can be held to play a slow client.
import http from "node:http";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { RequestAbort } from "../../src/gateway/abort.ts";
import { fromNodeHandler, mount } from "../../src/gateway/adapters.ts";
import { fileWrapper } from "../../src/gateway/body.ts";
import { buildEnviron, type Environ } from "../../src/gateway/environ.ts";
import { TsgiInput } from "../../src/gateway/input.ts";
import { runRequest, type Application, type ResponseSink } from "../../src/gateway/request.ts";

interface Sent {
  status: string | null;
  headers: [string, string][];
  chunks: string[];
  /** send() calls: [chunk text or null, last]. */
  calls: [string | null, boolean][];
  ended: boolean;
  aborted: boolean;
}

function recorder(hold?: () => Promise<void> | undefined): { sink: ResponseSink; sent: Sent } {
  const sent: Sent = { status: null, headers: [], chunks: [], calls: [], ended: false, aborted: false };
  const sink: ResponseSink = {
    send(head, chunk, last) {
      if (!head.sent) {
        head.sent = true;
        sent.status = head.status;
        sent.headers = head.headers;
      }
      sent.calls.push([chunk ? Buffer.from(chunk).toString() : null, last]);
      if (chunk) sent.chunks.push(Buffer.from(chunk).toString());
      if (last) sent.ended = true;
      return hold?.();
    },
    abort() {
      sent.aborted = true;
    },
  };
  return { sink, sent };
}

function environ(params: Record<string, string>, body?: Buffer, abort = new RequestAbort(), mountAt = ""): Environ {
  const list = Object.entries({ REQUEST_METHOD: "GET", DOCUMENT_URI: "/x", SERVER_NAME: "h", SERVER_PORT: "80", ...params }).flat();
  const r = buildEnviron(list, { mount: mountAt, input: body ? TsgiInput.of(body) : TsgiInput.EMPTY, errors: { write() {}, flush() {} }, multiprocess: false, abort, fileWrapper });
  if (!("environ" in r)) throw r.error;
  return r.environ;
}

const errors: unknown[] = [];
const log = { error: (_m: string, err?: unknown) => void errors.push(err) };

async function run(app: Application, env: Environ, abort = new RequestAbort(), hold?: () => Promise<void> | undefined) {
  const { sink, sent } = recorder(hold);
  const outcome = await runRequest(app, env, sink, { abort, log });
  return { sent, outcome, body: sent.chunks.join("") };
}

const header = (s: Sent, name: string) => s.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("fromNodeHandler: the request", () => {
  it("url is SCRIPT_NAME + PATH_INFO re-encoded + ?QUERY_STRING; method, httpVersion, headers from HTTP_*", async () => {
    let seen: Record<string, unknown> = {};
    const app = fromNodeHandler((req, res) => {
      seen = { url: req.url, method: req.method, v: req.httpVersion, headers: req.headers, raw: req.rawHeaders };
      res.end("ok");
    });
    const abort = new RequestAbort();
    const env = environ(
      { REQUEST_METHOD: "DELETE", DOCUMENT_URI: "/app/a b/?/caf\xc3\xa9", QUERY_STRING: "q=1", SERVER_PROTOCOL: "HTTP/1.0", HTTP_X_FORWARDED_FOR: "1.2.3.4", HTTP_HOST: "h:8", CONTENT_TYPE: "text/plain" },
      undefined,
      abort,
      "/app",
    );
    expect(env.PATH_INFO).toBe("/a b/?/café");
    await run(app, env, abort);
    expect(seen).toMatchObject({
      url: "/app/a%20b/%3F/caf%C3%A9?q=1",
      method: "DELETE",
      v: "1.0",
      headers: { "x-forwarded-for": "1.2.3.4", host: "h:8", "content-type": "text/plain" },
    });
    expect(seen.raw).toEqual(expect.arrayContaining(["X-Forwarded-For", "1.2.3.4", "Content-Type"]));
  });

  it("the socket carries REMOTE_ADDR/REMOTE_PORT, and encrypted only under https", async () => {
    const seen: unknown[] = [];
    const app = fromNodeHandler((req, res) => {
      seen.push([req.socket.remoteAddress, req.socket.remotePort, (req.socket as { encrypted?: boolean }).encrypted ?? false]);
      res.end();
    });
    await run(app, environ({ REMOTE_ADDR: "10.1.2.3", REMOTE_PORT: "4567" }));
    await run(app, environ({ REMOTE_ADDR: "::1", HTTPS: "on" }));
    expect(seen).toEqual([
      ["10.1.2.3", 4567, false],
      ["::1", undefined, true],
    ]);
  });

  it("the body is read from tsgi.input, as 'data' events or piped", async () => {
    const data = Buffer.alloc(300 * 1024, 0x61);
    const app = fromNodeHandler((req, res) => {
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => res.end(`${n} ${req.complete}`));
    });
    const r = await run(app, environ({ REQUEST_METHOD: "POST", CONTENT_LENGTH: String(data.length) }, data));
    expect(r.body).toBe(`${data.length} true`);
    // A request without a body ends at once.
    const r2 = await run(app, environ({}));
    expect(r2.body).toBe("0 true");
  });
});

describe("fromNodeHandler: the response", () => {
  it("a response ended at once goes back whole: head from setHeader, Content-Length added by node, last chunk and end in one send", async () => {
    const app = fromNodeHandler((_req, res) => {
      res.statusCode = 201;
      res.setHeader("X-Multi", ["a", "b"]);
      res.setHeader("Content-Type", "text/plain");
      res.end("created");
    });
    const r = await run(app, environ({}));
    expect(r.sent.status).toBe("201 Created");
    expect(header(r.sent, "x-multi")).toEqual(["a", "b"]);
    expect(header(r.sent, "content-length")).toEqual(["7"]);
    expect(header(r.sent, "connection")).toEqual([]);
    expect(header(r.sent, "date")).toEqual([]);
    expect(r.sent.calls).toEqual([["created", true]]);
  });

  it("a handler that ended the response before returning gets an array body back at once (no promise)", async () => {
    const events: string[] = [];
    const app = fromNodeHandler((_req, res) => {
      res.on("finish", () => events.push("finish"));
      res.on("close", () => events.push("close"));
      res.setHeader("Content-Type", "application/json");
      res.end('{"a":1}');
    });
    let status = "";
    const body = app(environ({}), (s) => {
      status = s;
      return () => undefined;
    });
    expect(Array.isArray(body)).toBe(true);
    expect(status).toBe("200 OK");
    expect(Buffer.concat(body as Buffer[]).toString()).toBe('{"a":1}');
    await sleep(5);
    expect(events).toEqual(["finish", "close"]);
  });

  it("writeHead(status, reason, headers) alone (as Fastify does) gives the head; no chunked framing without a length", async () => {
    const app = fromNodeHandler((_req, res) => {
      res.writeHead(202, "Taken", { "X-Only": "1" });
      res.write("a");
      res.end("b");
    });
    const r = await run(app, environ({}));
    expect(r.sent.status).toBe("202 Taken");
    expect(header(r.sent, "x-only")).toEqual(["1"]);
    expect(header(r.sent, "transfer-encoding")).toEqual([]);
    expect(r.body).toBe("ab");
  });

  it("writeHead's fields in each form node takes (an object with list values, [name, value] pairs, a flat list), merged with setHeader's; the connection's own fields left out", async () => {
    const forms: unknown[] = [
      { "X-A": ["1", "2"], "X-B": 3, Connection: "keep-alive", "Transfer-Encoding": "chunked" },
      [["X-A", "1"], ["X-A", "2"], ["X-B", "3"], ["Keep-Alive", "timeout=5"]],
      ["X-A", "1", "X-A", "2", "X-B", "3", "Connection", "close"],
    ];
    for (const fields of forms) {
      const app = fromNodeHandler((_req, res) => {
        res.writeHead(200, fields as http.OutgoingHttpHeaders);
        res.end("x");
      });
      const r = await run(app, environ({}));
      expect(r.sent.status).toBe("200 OK");
      expect(header(r.sent, "x-a")).toEqual(["1", "2"]);
      expect(header(r.sent, "x-b")).toEqual(["3"]);
      for (const own of ["connection", "transfer-encoding", "keep-alive"]) expect(header(r.sent, own)).toEqual([]);
      expect(r.body).toBe("x");
    }
    // Merged: setHeader's fields, then writeHead's (a name in both: writeHead's value).
    const merged = fromNodeHandler((_req, res) => {
      res.setHeader("X-Set", "s");
      res.setHeader("X-Both", "old");
      res.writeHead(200, { "X-Both": "new", "Content-Length": "2" });
      res.end("ok");
    });
    const m = await run(merged, environ({}));
    expect(header(m.sent, "x-set")).toEqual(["s"]);
    expect(header(m.sent, "x-both")).toEqual(["new"]);
    expect(header(m.sent, "content-length")).toEqual(["2"]);
  });

  it("a header value with a line break given to writeHead alone is refused as node refuses it (the handler's error), never sent", async () => {
    errors.length = 0;
    const app = fromNodeHandler((_req, res) => {
      res.writeHead(200, { "X-Bad": "a\r\nSet-Cookie: evil=1" });
      res.end("x");
    });
    const r = await run(app, environ({}));
    expect(r.sent.status).toMatch(/^500/);
    expect(JSON.stringify(r.sent.headers)).not.toContain("evil");
    expect(String(errors.at(-1))).toMatch(/Invalid character in header content/);
  });

  it("HEAD: the head only", async () => {
    const app = fromNodeHandler((_req, res) => res.end("body"));
    const r = await run(app, environ({ REQUEST_METHOD: "HEAD" }));
    expect(r.sent.status).toBe("200 OK");
    expect(r.body).toBe("");
  });

  it("streams: each write reaches the sink before the handler ends", async () => {
    const log: string[] = [];
    const app = fromNodeHandler(async (_req, res) => {
      res.setHeader("Content-Type", "text/plain");
      for (const part of ["one ", "two ", "three"]) {
        res.write(part);
        await sleep(30);
        log.push(`wrote ${part.trim()}`);
      }
      res.end();
    });
    const { sink, sent } = recorder();
    const orig = sink.send.bind(sink);
    sink.send = (head, chunk, last) => {
      if (chunk) log.push(`sent ${Buffer.from(chunk).toString().trim()}`);
      return orig(head, chunk, last);
    };
    const abort = new RequestAbort();
    await runRequest(app, environ({}, undefined, abort), sink, { abort, log: { error() {} } });
    expect(log).toEqual(["sent one", "wrote one", "sent two", "wrote two", "sent three", "wrote three"]);
    expect(sent.ended).toBe(true);
  });

  it("backpressure: a handler that honours write()/'drain' runs at most ~64 KiB ahead of what the gateway sent", async () => {
    const chunk = Buffer.alloc(16 * 1024, 0x62);
    let release: () => void = () => undefined;
    let written = 0;
    let sent = 0;
    let ahead = 0;
    let refusals = 0;
    const app = fromNodeHandler((_req, res) => {
      let i = 0;
      const pump = () => {
        while (i < 40) {
          i++;
          written += chunk.length;
          ahead = Math.max(ahead, written - sent);
          if (!res.write(chunk)) {
            refusals++;
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    // The client reads slowly: each send waits until released.
    const hold = () => new Promise<void>((r) => (release = r));
    const abort = new RequestAbort();
    const { sink, sent: rec } = recorder(hold);
    const orig = sink.send.bind(sink);
    sink.send = (head, c, last) => {
      if (c) sent += c.length;
      return orig(head, c, last);
    };
    const running = runRequest(app, environ({}, undefined, abort), sink, { abort, log });
    for (let k = 0; k < 400 && !rec.ended; k++) {
      await sleep(1);
      release();
    }
    await running;
    expect(rec.chunks.join("").length).toBe(40 * chunk.length);
    expect(refusals).toBeGreaterThan(5);
    // The queue's 64 KiB, the chunk the gateway is sending, the socket's own 16 KiB.
    expect(ahead).toBeLessThanOrEqual(64 * 1024 + 2 * chunk.length);
  });

  it("pipe() into res works (as res.sendFile does)", async () => {
    const app = fromNodeHandler((_req, res) => {
      res.setHeader("Content-Type", "application/octet-stream");
      Readable.from([Buffer.from("x".repeat(100_000)), Buffer.from("y")]).pipe(res);
    });
    const r = await run(app, environ({}));
    expect(r.body.length).toBe(100_001);
    expect(r.sent.ended).toBe(true);
  });

  it("a handler that throws is the gateway's 500; an async one that rejects too", async () => {
    const sync = fromNodeHandler(() => {
      throw new Error("boom");
    });
    const r1 = await run(sync, environ({}));
    expect(r1.sent.status).toBe("500 Internal Server Error");
    const rejects = fromNodeHandler(async () => {
      await sleep(5);
      throw new Error("late boom");
    });
    const r2 = await run(rejects, environ({}));
    expect(r2.sent.status).toBe("500 Internal Server Error");
    expect(r2.outcome.end).toBe("error");
  });

  it("a rejection after the head went out cuts the response", async () => {
    const app = fromNodeHandler(async (_req, res) => {
      res.write("part");
      await sleep(10);
      throw new Error("after the head");
    });
    const r = await run(app, environ({}));
    expect(r.sent.status).toBe("200 OK");
    expect(r.sent.aborted).toBe(true);
    expect(r.sent.ended).toBe(false);
  });

  it("the client going away (tsgi.signal) destroys req and res: both emit 'close'", async () => {
    const closed: string[] = [];
    let handled!: () => void;
    const reached = new Promise<void>((r) => (handled = r));
    const app = fromNodeHandler((req, res) => {
      req.on("close", () => closed.push("req"));
      res.on("close", () => closed.push(`res (finished: ${res.writableFinished})`));
      handled();
    });
    const abort = new RequestAbort();
    const running = run(app, environ({}, undefined, abort), abort);
    await reached;
    abort.abort(new Error("client gone"));
    const r = await running;
    await sleep(10);
    expect(r.outcome.end).toBe("aborted");
    expect(closed.sort()).toEqual(["req", "res (finished: false)"]);
  });

  it("after a normal end res emits 'finish' then 'close'", async () => {
    const events: string[] = [];
    const app = fromNodeHandler((_req, res) => {
      res.on("finish", () => events.push("finish"));
      res.on("close", () => events.push("close"));
      res.end("x");
    });
    await run(app, environ({}));
    await sleep(5);
    expect(events).toEqual(["finish", "close"]);
  });

  it("a request body cut short: req emits the coded error, and the gateway answers 400 (no uncaught socket error)", async () => {
    const seen: string[] = [];
    const app = fromNodeHandler((req, _res) => {
      req.on("data", () => undefined);
      req.on("error", (err) => seen.push((err as { code?: string }).code ?? err.message));
    });
    const input = new TsgiInput(10);
    input.feed(Buffer.from("12345"));
    input.finish();
    const abort = new RequestAbort();
    const r = buildEnviron(["REQUEST_METHOD", "POST", "DOCUMENT_URI", "/u", "CONTENT_LENGTH", "10"], { mount: "", input, errors: { write() {}, flush() {} }, multiprocess: false, abort, fileWrapper });
    if (!("environ" in r)) throw r.error;
    const out = await run(app, r.environ, abort);
    await sleep(10); // req's 'error' comes a few ticks after the socket's destruction
    expect(seen).toEqual(["TSGI_ERR_APP_BODY_INCOMPLETE"]);
    expect(out.sent.status).toBe("400 Bad Request");
  });

  it("res.destroy() by the handler: a 500 before the head, a cut after it", async () => {
    const before = fromNodeHandler((_req, res) => void setTimeout(() => res.destroy(), 5));
    expect((await run(before, environ({}))).sent.status).toBe("500 Internal Server Error");
    const after = fromNodeHandler((_req, res) => {
      res.write("part");
      setTimeout(() => res.destroy(), 5);
    });
    const r = await run(after, environ({}));
    expect(r.sent.status).toBe("200 OK");
    expect(r.sent.aborted).toBe(true);
  });

  it("a real node:http response object (instanceof ServerResponse), as Express needs", async () => {
    let ok = false;
    const app = fromNodeHandler((req, res) => {
      ok = res instanceof http.ServerResponse && req instanceof http.IncomingMessage;
      res.end();
    });
    await run(app, environ({}));
    expect(ok).toBe(true);
  });
});

describe("mount", () => {
  const echo = (name: string): Application => (env, start) => {
    start("200 OK", [["Content-Type", "text/plain"]]);
    return [`${name} ${env.SCRIPT_NAME}|${env.PATH_INFO}`];
  };
  const app = mount({ "/api": echo("api"), "/api/v2/": echo("v2"), "/": echo("root") });
  const at = async (path: string, mountAt = "") => (await run(app, environ({ DOCUMENT_URI: mountAt + path }, undefined, new RequestAbort(), mountAt))).body;

  it("longest prefix at a segment boundary; the prefix moves to SCRIPT_NAME", async () => {
    expect(await at("/api")).toBe("api /api|");
    expect(await at("/api/x")).toBe("api /api|/x");
    expect(await at("/api/v2/y")).toBe("v2 /api/v2|/y");
    expect(await at("/apix")).toBe("root |/apix");
    expect(await at("/")).toBe("root |/");
    expect(await at("/api/x", "/site")).toBe("api /site/api|/x");
  });

  it("404 when no prefix matches", async () => {
    const only = mount({ "/a": echo("a") });
    const r = await run(only, environ({ DOCUMENT_URI: "/b" }));
    expect(r.sent.status).toBe("404 Not Found");
    expect(r.body).toBe("Not Found\n");
  });

  it("refuses a prefix given twice", () => {
    expect(() => mount({ "/a": echo("a"), "/a/": echo("b") })).toThrow(/twice/);
  });
});

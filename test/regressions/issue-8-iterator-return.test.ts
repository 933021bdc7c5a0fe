// Issue 8, point 10: when the server stops iterating a body before its end — HEAD, 204, 304,
// the client leaving, a request timeout, a write error, an exception while sending a chunk,
// data before start_response — it calls the iterator's return(), so a generator's `finally`
// runs, exactly once, before the body's close(); and never when the iterator finished or
// threw by itself. Unit tests drive runRequest with an in-memory sink, for sync and async
// generators each; then a real `tsgi serve` (apps/iterator-finally.ts) shows the same from
// outside: HEAD through nginx (FastCGI, the shipped example conf) and the HTTP listener, HEAD
// and 204 over uwsgi, and a uwsgi client resetting mid-stream, each leave "finally" then
// "close" in the application's events file.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { RequestAbort } from "../../src/gateway/abort.ts";
import type { Body } from "../../src/gateway/environ.ts";
import type { Application } from "../../src/gateway/request.ts";
import { tsgiError } from "../../src/errors.ts";
import { request } from "../integration/client.ts";
import { startNginx, type FrontServer } from "../support/front-servers.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { recorder, run, sleep } from "./support/runner-harness.ts";
import { uwsgiReadThenReset, uwsgiRequest } from "./support/raw-clients.ts";

type Kind = "sync" | "async";

interface Traced {
  body: Body;
  /** "finally" when the generator's finally ran, "close" when close() ran, in order. */
  events: string[];
  /** How many times the server called the iterator's return(). */
  returns(): number;
}

interface TraceOptions {
  chunks?: number;
  /** Runs inside the generator before chunk `i` is yielded. */
  before?: (i: number) => void;
  /** Chunk `i` (default "c{i} "). */
  value?: (i: number) => unknown;
  /** The generator throws instead of yielding chunk `throwAt`. */
  throwAt?: number;
  /** Async generators: ms awaited after each chunk (default 1). */
  step?: number;
}

/**
 * A generator body with a finally and a close() that record themselves. The async one's
 * finally awaits before it records, as a real cleanup (a pool release, a file close) does:
 * "finally" before "close" then means the server waited for return() to finish.
 */
function traced(kind: Kind, o: TraceOptions = {}): Traced {
  const events: string[] = [];
  const n = o.chunks ?? 5;
  const chunk = (i: number) => {
    o.before?.(i);
    if (i === o.throwAt) throw new Error("the generator fails by itself");
    return o.value ? o.value(i) : `c${i} `;
  };
  const gen =
    kind === "sync"
      ? (function* () {
          try {
            for (let i = 0; i < n; i++) yield chunk(i);
          } finally {
            events.push("finally");
          }
        })()
      : (async function* () {
          try {
            for (let i = 0; i < n; i++) {
              yield chunk(i);
              await sleep(o.step ?? 1);
            }
          } finally {
            await sleep(2);
            events.push("finally");
          }
        })();
  let returns = 0;
  const original = gen.return;
  Object.defineProperty(gen, "return", {
    value(v: unknown) {
      returns++;
      return (original as (v: unknown) => unknown).call(gen, v);
    },
  });
  const body = Object.assign(gen, { close: () => void events.push("close") });
  return { body: body as unknown as Body, events, returns: () => returns };
}

const gone = () => tsgiError("TSGI_ERR_APP_CLIENT_GONE", { reason: "connection closed" });
const timeout = () => tsgiError("TSGI_ERR_APP_TIMEOUT", { timeout: "0.01s" });

/** An application that starts `status` and returns `body`. */
const answering =
  (body: Body, status = "200 OK", headers: [string, string][] = []): Application =>
  (_e, start) => {
    start(status, headers);
    return body;
  };

for (const kind of ["sync", "async"] as const) {
  describe(`a ${kind} generator left before its end: return() once, its finally before close()`, () => {
    test("HEAD: no body byte is sent, the finally runs, then close()", async () => {
      const t = traced(kind);
      const { sent } = await run(answering(t.body, "200 OK", [["Content-Length", "15"]]), { method: "HEAD" });
      expect(sent).toMatchObject({ status: "200 OK", body: "", ended: true });
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    for (const status of ["204 No Content", "304 Not Modified"]) {
      test(`${status}: no body byte is sent, the finally runs, then close()`, async () => {
        const t = traced(kind);
        const { sent } = await run(answering(t.body, status));
        expect(sent).toMatchObject({ status, body: "", ended: true });
        expect(t.events).toEqual(["finally", "close"]);
        expect(t.returns()).toBe(1);
      });
    }

    test("the client leaves mid-stream: the response is cut, the finally runs, then close()", async () => {
      const controller = new RequestAbort();
      const t = traced(kind, { before: (i) => i === 2 && controller.abort(gone()) });
      const { sent, outcome } = await run(answering(t.body), { controller });
      // The step that saw the abort may still hand its chunk to the sink (a protocol's sink
      // drops it: its request is over); nothing after that step is asked for.
      expect(sent.body.startsWith("c0 c1 ")).toBe(true);
      expect(sent.body).not.toContain("c3");
      expect(sent.aborted).toBe(true);
      expect(outcome.end).toBe("aborted");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    test("a request timeout mid-stream: the response is cut, the finally runs, then close()", async () => {
      const controller = new RequestAbort();
      const t = traced(kind, { before: (i) => i === 2 && controller.abort(timeout()) });
      const { sent, outcome } = await run(answering(t.body), { controller });
      expect(sent.status).toBe("200 OK");
      expect(sent.aborted).toBe(true);
      expect(outcome.end).toBe("aborted");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    test("a write error (the sink's send rejects): the response is cut, the finally runs, then close()", async () => {
      const t = traced(kind);
      const rec = recorder({ onSend: (n) => (n === 2 ? "fail" : undefined) });
      const { sent, outcome } = await run(answering(t.body), { rec });
      expect(sent.body).toBe("c0 c1 ");
      expect(sent.aborted).toBe(true);
      expect(outcome.end).toBe("aborted");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    test("a write error reported as the protocol does (client gone, then the send rejects): the finally runs, then close()", async () => {
      const t = traced(kind);
      const controller = new RequestAbort();
      const rec = recorder({ onSend: (n) => (n === 2 ? "fail" : undefined), beforeFail: () => controller.abort(gone()) });
      const { outcome } = await run(answering(t.body), { rec, controller });
      expect(outcome.end).toBe("aborted");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    test("the client leaves while the server waits for the socket to drain: the finally runs, then close()", async () => {
      const t = traced(kind);
      const rec = recorder({ onSend: (n) => (n === 1 ? "wait" : undefined) });
      const { sent, outcome } = await run(answering(t.body), {
        rec,
        during: (_r, c) => void setTimeout(() => c.abort(gone()), 20),
      });
      expect(sent.body).toBe("c0 ");
      expect(outcome.end).toBe("aborted");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    test("a chunk that is not bytes after the head went out: the response is cut, TSGI_ERR_RESPONSE_CHUNK logged, the finally runs, then close()", async () => {
      const t = traced(kind, { value: (i) => (i === 1 ? 42 : `c${i} `) });
      const { sent, outcome, logged } = await run(answering(t.body));
      expect(sent.body).toBe("c0 ");
      expect(sent.aborted).toBe(true);
      expect(outcome.end).toBe("aborted");
      expect(logged.map((l) => l.code)).toContain("TSGI_ERR_RESPONSE_CHUNK");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    test("a first chunk that is not bytes: a 500, the finally runs, then close()", async () => {
      const t = traced(kind, { value: () => 42 });
      const { sent, outcome } = await run(answering(t.body));
      expect(sent.status).toBe("500 Internal Server Error");
      expect(outcome.status).toBe(500);
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });

    test("data before start_response: a 500 with TSGI_ERR_APP_NO_START_RESPONSE, the finally runs, then close()", async () => {
      const t = traced(kind);
      const { sent, logged } = await run(() => t.body);
      expect(sent.status).toBe("500 Internal Server Error");
      expect(logged.map((l) => l.code)).toContain("TSGI_ERR_APP_NO_START_RESPONSE");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(1);
    });
  });

  describe(`a ${kind} generator that ends by itself: return() is not called`, () => {
    test("it ran to its end: the whole body is sent, its finally ran once, close() after, no return()", async () => {
      const t = traced(kind);
      const { sent, outcome } = await run(answering(t.body));
      expect(sent).toMatchObject({ body: "c0 c1 c2 c3 c4 ", ended: true });
      expect(outcome.end).toBe("complete");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(0);
    });

    test("it threw by itself: its finally ran once on the way out, close() after, no return()", async () => {
      const t = traced(kind, { throwAt: 2 });
      const { sent, outcome } = await run(answering(t.body));
      expect(sent.body).toBe("c0 c1 ");
      expect(outcome.end).toBe("aborted");
      expect(t.events).toEqual(["finally", "close"]);
      expect(t.returns()).toBe(0);
    });
  });
}

describe("an async generator stopped while it awaits between chunks", () => {
  // return() on a running async generator is queued until its pending step settles: the
  // finally can only run once the generator reaches its next yield.
  test("a timeout before anything was sent: a 504, and the finally runs exactly once when the generator reaches its yield", async () => {
    const t = traced("async");
    const slowFirst = (async function* () {
      await sleep(60);
      yield* t.body as AsyncIterable<unknown>;
    })();
    // Its first step takes 60 ms; then it delegates to the traced generator (return() too).
    const body = Object.assign(slowFirst, { close: () => void t.events.push("close") });
    const { sent, outcome } = await run(answering(body as unknown as Body), { during: (_r, c) => void setTimeout(() => c.abort(timeout()), 10) });
    expect(sent.status).toBe("504 Gateway Timeout");
    expect(outcome).toMatchObject({ status: 504, end: "error" });
    await sleep(150);
    expect(t.events.filter((e) => e === "finally")).toHaveLength(1);
    expect(t.events.filter((e) => e === "close")).toHaveLength(1);
  });

  test("the client leaves mid-await: the finally runs exactly once, close() once", async () => {
    const t = traced("async", { step: 40 });
    const { outcome } = await run(answering(t.body), { during: (_r, c) => void setTimeout(() => c.abort(gone()), 15) });
    expect(outcome.end).toBe("aborted");
    await sleep(120);
    expect(t.events.filter((e) => e === "finally")).toHaveLength(1);
    expect(t.events.filter((e) => e === "close")).toHaveLength(1);
    expect(t.returns()).toBe(1);
  });
});

test("an iterator without return(): left early by a HEAD, close() still runs once and nothing is logged", async () => {
  let closes = 0;
  const body = {
    [Symbol.iterator]() {
      let i = 0;
      return { next: () => ({ done: i > 3, value: `c${i++}` }) };
    },
    close() {
      closes++;
    },
  };
  const { sent, logged } = await run(answering(body), { method: "HEAD" });
  expect(sent).toMatchObject({ body: "", ended: true });
  expect(closes).toBe(1);
  expect(logged).toEqual([]);
});

// ---- the same, seen from outside a real tsgi serve ----------------------------------------

describe("a real tsgi serve finishes the application's generator", () => {
  let tsgi: TsgiProcess;
  let nginx: FrontServer;
  let seq = 0;
  const id = (what: string) => `${what}-${++seq}`;
  const linesOf = (name: string) => tsgi.events().filter((l) => l.startsWith(`${name} `));

  async function eventsOf(name: string): Promise<string[]> {
    await tsgi.waitForEvent(`${name} close`);
    await sleep(50); // anything after close() would be a second run
    return linesOf(name);
  }

  beforeAll(async () => {
    tsgi = await startTsgi({
      app: join(import.meta.dirname, "apps", "iterator-finally.ts"),
      listen: [{ proto: "http" }, { proto: "uwsgi" }, { proto: "fastcgi" }],
      args: ["--processes", "1", "--run-as-root"],
    });
    // nginx in front, from the shipped example, over FastCGI.
    nginx = await startNginx({
      conf: readFileSync(join(import.meta.dirname, "..", "..", "conf-examples", "nginx", "fastcgi.conf"), "utf8"),
      vars: { TSGI_FASTCGI: tsgi.nginxAddress("fastcgi") },
    });
  });
  afterAll(async () => {
    await Promise.all([nginx?.stop(), tsgi?.stop()]);
  });

  for (const kind of ["sync", "async"] as const) {
    test.concurrent(`HEAD on the HTTP listener to a ${kind} generator: no body, then "finally" and "close" once each, in that order`, async () => {
      const name = id(`head-${kind}`);
      const { host, port } = tsgi.tcp("http");
      const r = await request(`http://${host}:${port}/gen?id=${name}&kind=${kind}`, { method: "HEAD" });
      expect([r.status, r.body.length]).toEqual([200, 0]);
      expect(await eventsOf(name)).toEqual([`${name} finally`, `${name} close`]);
    });

    test.concurrent(`HEAD through nginx (FastCGI) to a ${kind} generator: no body, then "finally" and "close" once each, in that order`, async () => {
      const name = id(`nginx-head-${kind}`);
      const r = await request(`http://${nginx.host}:${nginx.port}/gen?id=${name}&kind=${kind}`, { method: "HEAD" });
      expect([r.status, r.body.length]).toEqual([200, 0]);
      expect(await eventsOf(name)).toEqual([`${name} finally`, `${name} close`]);
    });

    test.concurrent(`HEAD and 204 over uwsgi to a ${kind} generator: "finally" and "close" once each, in that order`, async () => {
      const head = id(`uwsgi-head-${kind}`);
      const r = await uwsgiRequest(tsgi.tcp("uwsgi"), "HEAD", `/gen?id=${head}&kind=${kind}`);
      expect([r.status, r.body.length]).toEqual([200, 0]);
      expect(await eventsOf(head)).toEqual([`${head} finally`, `${head} close`]);
      const empty = id(`uwsgi-204-${kind}`);
      const r204 = await uwsgiRequest(tsgi.tcp("uwsgi"), "GET", `/gen?id=${empty}&kind=${kind}&status=204%20No%20Content`);
      expect([r204.status, r204.body.length]).toEqual([204, 0]);
      expect(await eventsOf(empty)).toEqual([`${empty} finally`, `${empty} close`]);
    });

    test.concurrent(`a uwsgi client that resets mid-stream of a ${kind} generator: "finally" and "close" once each, in that order`, async () => {
      const name = id(`reset-${kind}`);
      await uwsgiReadThenReset(tsgi.tcp("uwsgi"), `/gen?id=${name}&kind=${kind}`, 128 * 1024);
      expect(await eventsOf(name)).toEqual([`${name} finally`, `${name} close`]);
    });
  }

  test.concurrent("a body read to its end: its finally ran by itself, then close() (the events file works)", async () => {
    const name = id("whole");
    const { host, port } = tsgi.tcp("http");
    const r = await request(`http://${host}:${port}/gen?id=${name}&kind=sync&n=4`);
    expect([r.status, r.body.length, r.complete]).toEqual([200, 4 * 64 * 1024, true]);
    expect(await eventsOf(name)).toEqual([`${name} finally`, `${name} close`]);
  });
});

// Issue 8, point 14: the request runner tested without the validator in front of it (which
// is async, so it hid the synchronous-application path and a synchronous close(), and whose
// own checks masked the server's). runRequest with an in-memory sink, each case with a
// synchronous application and an async one (and sync and async bodies where the server
// branches): an array answered without a promise, close() sync or async called exactly
// once, and the server's own refusals — a status "200", a hop-by-hop header (named), a
// Status header, a string, Uint8Array or null body, a number chunk, data before
// start_response, start_response twice — each a 500 with the short plain body and the error
// logged with its TSGI_ERR_ code. Then the same refusals as a user sees them from a real
// `tsgi serve` (apps/runner-checks.ts) over HTTP and uwsgi, with the code in the error log.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { RequestAbort } from "../../src/gateway/abort.ts";
import type { Body, Environ } from "../../src/gateway/environ.ts";
import { runRequest, type Application } from "../../src/gateway/request.ts";
import type { StartResponse } from "../../src/gateway/start-response.ts";
import { request } from "../integration/client.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { uwsgiRequest } from "./support/raw-clients.ts";
import { environ, recorder, run, sleep, type RunResult } from "./support/runner-harness.ts";

type AppKind = "sync" | "async";
type BodyKind = "array" | "sync generator" | "async generator";

/** `fn` as a synchronous application, or as an async one giving the same answer. */
function application(kind: AppKind, fn: (e: Environ, start: StartResponse) => unknown): Application {
  if (kind === "sync") return fn as unknown as Application;
  return (async (e: Environ, start: StartResponse) => fn(e, start)) as unknown as Application;
}

/** `chunks` as an array, a sync generator or an async generator, with a counted close(). */
function bodyOf(kind: BodyKind, chunks: unknown[]): { body: Body; closes(): number } {
  let closes = 0;
  const close = () => void closes++;
  const body =
    kind === "array"
      ? Object.assign([...chunks], { close })
      : kind === "sync generator"
        ? Object.assign(
            (function* () {
              yield* chunks;
            })(),
            { close },
          )
        : Object.assign(
            (async function* () {
              for (const c of chunks) yield c;
            })(),
            { close },
          );
  return { body: body as unknown as Body, closes: () => closes };
}

/** The server's own 500: the short plain body, the error logged once with `code`. */
function expectRefused(r: RunResult, code: string, mentions?: RegExp): void {
  expect(r.sent.status).toBe("500 Internal Server Error");
  expect(r.sent.headers).toEqual([
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", "22"],
  ]);
  expect(r.sent.body).toBe("Internal Server Error\n");
  expect(r.sent.ended).toBe(true);
  expect(r.outcome).toMatchObject({ status: 500, end: "error" });
  expect(r.logged.map((l) => l.code)).toEqual([code]);
  if (mentions) expect(String((r.logged[0]!.err as Error).message)).toMatch(mentions);
}

test("test/unit/request.test.ts runs its applications without validate()", () => {
  const unit = readFileSync(join(import.meta.dirname, "..", "unit", "request.test.ts"), "utf8");
  expect(unit).not.toMatch(/\bvalidate\s*\(/);
  expect(unit).not.toMatch(/from\s+["'][^"']*validate(\.ts)?["']/);
});

describe("a synchronous application", () => {
  test("returning an array: the whole response is handed to the sink before runRequest's promise is awaited (no promise on that path)", async () => {
    const rec = recorder();
    const controller = new RequestAbort();
    const pending = runRequest(
      (_e, start) => {
        start("200 OK", [["Content-Type", "text/plain"]]);
        return ["hello ", "world"];
      },
      environ("GET", controller),
      rec.sink,
      { abort: controller, log: { error: () => undefined } },
    );
    // Nothing awaited yet: the synchronous application was answered synchronously.
    expect(rec.sent).toMatchObject({ status: "200 OK", body: "hello world", ended: true });
    expect(rec.sent.calls).toEqual([
      ["hello ", false],
      ["world", true],
    ]);
    expect(await pending).toEqual({ status: 200, bytes: 11, end: "complete" });
  });

  test("an async application returning the same array gives the same response", async () => {
    const r = await run(async (_e, start) => {
      await sleep(1);
      start("200 OK", [["Content-Type", "text/plain"]]);
      return ["hello ", "world"];
    });
    expect(r.sent).toMatchObject({ status: "200 OK", body: "hello world", ended: true });
    expect(r.outcome).toEqual({ status: 200, bytes: 11, end: "complete" });
  });
});

describe("close() is called exactly once", () => {
  for (const appKind of ["sync", "async"] as const) {
    for (const bodyKind of ["array", "sync generator", "async generator"] as const) {
      test(`a synchronous close() on a(n) ${bodyKind} from a ${appKind} application`, async () => {
        const { body, closes } = bodyOf(bodyKind, ["a", "b"]);
        const r = await run(
          application(appKind, (_e, start) => {
            start("200 OK", []);
            return body;
          }),
        );
        expect(r.sent).toMatchObject({ body: "ab", ended: true });
        expect(closes()).toBe(1);
      });
    }

    test(`an async close() from a ${appKind} application: awaited once, before runRequest resolves`, async () => {
      const state = { started: 0, finished: 0 };
      const body = Object.assign(["a"], {
        async close() {
          state.started++;
          await sleep(20);
          state.finished++;
        },
      });
      const r = await run(
        application(appKind, (_e, start) => {
          start("200 OK", []);
          return body;
        }),
      );
      expect(r.sent).toMatchObject({ body: "a", ended: true });
      expect(state).toEqual({ started: 1, finished: 1 });
      await sleep(40);
      expect(state).toEqual({ started: 1, finished: 1 });
    });

    test(`an async close() that rejects, from a ${appKind} application: called once, logged, the response unharmed`, async () => {
      let calls = 0;
      const body = Object.assign(["a"], {
        close() {
          calls++;
          return Promise.reject(new Error("async close fails"));
        },
      });
      const r = await run(
        application(appKind, (_e, start) => {
          start("200 OK", []);
          return body;
        }),
      );
      expect(r.sent).toMatchObject({ body: "a", ended: true });
      expect(r.outcome.end).toBe("complete");
      expect(calls).toBe(1);
      expect(r.logged.map((l) => l.message)).toEqual(["the response body's close() threw"]);
    });

    test(`a close() on a body refused by the server (a number chunk) from a ${appKind} application: still called once`, async () => {
      const { body, closes } = bodyOf("array", [42]);
      const r = await run(
        application(appKind, (_e, start) => {
          start("200 OK", []);
          return body;
        }),
      );
      expectRefused(r, "TSGI_ERR_RESPONSE_CHUNK");
      expect(closes()).toBe(1);
    });
  }
});

describe("the server's own refusals: a 500 with the short plain body, the error logged with its code", () => {
  for (const appKind of ["sync", "async"] as const) {
    const cases: [string, (e: Environ, start: StartResponse) => unknown, string, RegExp?][] = [
      ['a status without a reason ("200")', (_e, s) => (s("200", []), ["x"]), "TSGI_ERR_RESPONSE_STATUS", /"200"/],
      ["a hop-by-hop header (Connection)", (_e, s) => (s("200 OK", [["Connection", "close"]]), ["x"]), "TSGI_ERR_RESPONSE_HOP_BY_HOP", /Connection/],
      ["a hop-by-hop header (Transfer-Encoding)", (_e, s) => (s("200 OK", [["Transfer-Encoding", "chunked"]]), ["x"]), "TSGI_ERR_RESPONSE_HOP_BY_HOP", /Transfer-Encoding/],
      ["a hop-by-hop header (Keep-Alive)", (_e, s) => (s("200 OK", [["Keep-Alive", "timeout=5"]]), ["x"]), "TSGI_ERR_RESPONSE_HOP_BY_HOP", /Keep-Alive/],
      ["a Status header", (_e, s) => (s("200 OK", [["Status", "201 Created"]]), ["x"]), "TSGI_ERR_RESPONSE_HEADER", /Status/],
      ["a string body", (_e, s) => (s("200 OK", []), "a string"), "TSGI_ERR_APP_BODY_TYPE", /string/],
      ["a Uint8Array body", (_e, s) => (s("200 OK", []), new Uint8Array([104, 105])), "TSGI_ERR_APP_BODY_TYPE", /Uint8Array/],
      ["a null body", (_e, s) => (s("200 OK", []), null), "TSGI_ERR_APP_BODY_TYPE", /null/],
      ["no body at all (undefined)", (_e, s) => (s("200 OK", []), undefined), "TSGI_ERR_APP_BODY_TYPE", /undefined/],
      ["start_response twice without excInfo", (_e, s) => (s("200 OK", []), s("201 Created", []), ["x"]), "TSGI_ERR_RESPONSE_STARTED_TWICE"],
      ["an empty body without start_response", () => [], "TSGI_ERR_APP_NO_START_RESPONSE"],
    ];
    for (const [what, fn, code, mentions] of cases) {
      test(`${what}, from a ${appKind} application: ${code}`, async () => {
        expectRefused(await run(application(appKind, fn)), code, mentions);
      });
    }

    for (const bodyKind of ["array", "sync generator", "async generator"] as const) {
      test(`a chunk that is a number in a(n) ${bodyKind}, from a ${appKind} application: TSGI_ERR_RESPONSE_CHUNK, close() once`, async () => {
        const { body, closes } = bodyOf(bodyKind, [42, "x"]);
        const r = await run(application(appKind, (_e, s) => (s("200 OK", []), body)));
        expectRefused(r, "TSGI_ERR_RESPONSE_CHUNK", /number/);
        expect(closes()).toBe(1);
      });

      test(`data before start_response in a(n) ${bodyKind}, from a ${appKind} application: TSGI_ERR_APP_NO_START_RESPONSE, close() once`, async () => {
        const { body, closes } = bodyOf(bodyKind, ["data"]);
        const r = await run(application(appKind, () => body));
        expectRefused(r, "TSGI_ERR_APP_NO_START_RESPONSE");
        expect(closes()).toBe(1);
      });
    }
  }

  for (const kind of ["sync", "async"] as const) {
    test(`empty chunks before start_response are not data: a ${kind} generator may yield "" and then start the response`, async () => {
      const r = await run((_e, start) => {
        const gen =
          kind === "sync"
            ? (function* () {
                yield "";
                start("200 OK", [["X-Late", "1"]]);
                yield "late head";
              })()
            : (async function* () {
                yield "";
                start("200 OK", [["X-Late", "1"]]);
                yield "late head";
              })();
        return gen;
      });
      expect(r.sent).toMatchObject({ status: "200 OK", headers: [["X-Late", "1"]], body: "late head", ended: true });
      expect(r.logged).toEqual([]);
    });
  }
});

// ---- the user's view: a real tsgi serve --------------------------------------------------

describe("seen from a real tsgi serve (HTTP and uwsgi listeners)", () => {
  let tsgi: TsgiProcess;
  beforeAll(async () => {
    tsgi = await startTsgi({
      app: join(import.meta.dirname, "apps", "runner-checks.ts"),
      listen: [{ proto: "http" }, { proto: "uwsgi" }],
      args: ["--processes", "1", "--run-as-root"],
    });
  });
  afterAll(async () => {
    await tsgi?.stop();
  });

  const get = (path: string) => {
    const { host, port } = tsgi.tcp("http");
    return request(`http://${host}:${port}${path}`);
  };

  for (const q of ["", "?async=1"]) {
    const kind = q ? "an async" : "a synchronous";
    test.concurrent(`${kind} application answering an array: 200 and its body`, async () => {
      const r = await get(`/array${q}`);
      expect([r.status, r.complete, r.body.toString()]).toEqual([200, true, "sync array"]);
      const u = await uwsgiRequest(tsgi.tcp("uwsgi"), "GET", `/array${q}`);
      expect([u.status, u.complete, u.body.toString()]).toEqual([200, true, "sync array"]);
    });

    const refusals: [string, string, RegExp?][] = [
      ["/bad-status", "TSGI_ERR_RESPONSE_STATUS"],
      ["/hop", "TSGI_ERR_RESPONSE_HOP_BY_HOP", /Connection/],
      ["/status-header", "TSGI_ERR_RESPONSE_HEADER", /Status/],
      ["/string", "TSGI_ERR_APP_BODY_TYPE"],
      ["/bytes", "TSGI_ERR_APP_BODY_TYPE"],
      ["/null", "TSGI_ERR_APP_BODY_TYPE"],
      ["/number", "TSGI_ERR_RESPONSE_CHUNK"],
      ["/no-start", "TSGI_ERR_APP_NO_START_RESPONSE"],
      ["/twice", "TSGI_ERR_RESPONSE_STARTED_TWICE"],
    ];
    for (const [path, code, names] of refusals) {
      test.concurrent(`${path} from ${kind} application: 500 "Internal Server Error", one error-log line with ${code}`, async () => {
        const r = await get(`${path}${q}`);
        expect([r.status, r.body.toString()]).toEqual([500, "Internal Server Error\n"]);
        expect(r.headers).toContainEqual(["content-type", "text/plain; charset=utf-8"]);
        const u = await uwsgiRequest(tsgi.tcp("uwsgi"), "GET", `${path}${q}`);
        expect([u.status, u.complete, u.body.toString()]).toEqual([500, true, "Internal Server Error\n"]);
        const uri = `${path}${q}`.replace(/[?]/g, "\\?");
        const line = new RegExp(`\\[error\\] \\[\\S+\\] the application failed on GET ${uri}: ${code}: ([^\\n]*)`, "g");
        // Once for the HTTP request, once for the uwsgi one (lines may trail the responses a little).
        let found: RegExpMatchArray[] = [];
        for (const deadline = Date.now() + 3000; Date.now() < deadline; await sleep(20)) {
          found = [...tsgi.stderr().matchAll(line)];
          if (found.length >= 2) break;
        }
        expect(found).toHaveLength(2);
        if (names) for (const m of found) expect(m[1]).toMatch(names);
      });
    }
  }
});

// The application of issue-8-worker-survives.test.ts (issue 8, point 9): one route per thing
// an application or a client can do that must not end the worker. Every answer that succeeds
// names the worker's pid, so a test sees which process served it. No validator in front: the
// server's own handling is what is tested. Routes (PATH_INFO):
//
//   /pid                      "pid N"
//   /slow?ms=N                "slow done pid N" after N ms (a request in flight meanwhile)
//   /write?mode=one|many&mib=N&ms=M  N MiB (default 16) through the legacy write(): one call,
//                             or 64 KiB calls; then a body that ends M ms later (default 300),
//                             so the request is still open when a client leaves
//   /stream?mib=N             N MiB (default 16) yielded in 64 KiB chunks by an async generator
//   /upload                   reads tsgi.input to its end, answers its length
//   /floating-rejection       leaves a rejected promise nobody handles, answers 200
//   /timer-throw              answers 200; 20 ms later a setTimeout callback throws
//   /close-throws             a body whose close() throws
//   /return-throws            a generator whose finally throws (left early by a HEAD)
//   /number-chunk             a generator yielding 42
//   /late-write               answers, then calls write() from a timer 50 ms after the end
//   /start-twice              start_response twice without excInfo
//   /string-body              returns a string
//   /nothing                  returns undefined

import type { Environ } from "../../../src/gateway/environ.ts";
import type { Application } from "../../../src/gateway/request.ts";
import type { StartResponse } from "../../../src/gateway/start-response.ts";

const CHUNK = 64 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (start: StartResponse, body: string, status = "200 OK") => {
  start(status, [
    ["Content-Type", "text/plain"],
    ["Content-Length", String(Buffer.byteLength(body))],
  ]);
  return [body];
};

async function survivor(environ: Environ, start: StartResponse): Promise<unknown> {
  const q = new URLSearchParams(environ.QUERY_STRING);
  const mib = Number(q.get("mib") ?? "16");
  switch (environ.PATH_INFO) {
    case "/pid":
      return text(start, `pid ${process.pid}`);
    case "/slow":
      await sleep(Number(q.get("ms") ?? "1000"));
      return text(start, `slow done pid ${process.pid}`);
    case "/write": {
      const total = mib * 1024 * 1024;
      const write = start("200 OK", [
        ["Content-Type", "application/octet-stream"],
        ["Content-Length", String(total)],
      ]);
      if (q.get("mode") === "many") for (let i = 0; i < total / CHUNK; i++) write(Buffer.alloc(CHUNK, i & 0xff));
      else write(Buffer.alloc(total, 0x61));
      const ms = Number(q.get("ms") ?? "300");
      return (async function* () {
        await sleep(ms);
      })();
    }
    case "/stream": {
      const n = (mib * 1024 * 1024) / CHUNK;
      start("200 OK", [
        ["Content-Type", "application/octet-stream"],
        ["Content-Length", String(n * CHUNK)],
      ]);
      return (async function* () {
        for (let i = 0; i < n; i++) yield Buffer.alloc(CHUNK, i & 0xff);
      })();
    }
    case "/upload": {
      let length = 0;
      for await (const chunk of environ["tsgi.input"]) length += chunk.length;
      return text(start, `read ${length}`);
    }
    case "/floating-rejection":
      void Promise.reject(new Error("survivor: a floating rejection"));
      return text(start, `pid ${process.pid}`);
    case "/timer-throw":
      setTimeout(() => {
        throw new Error("survivor: thrown in a timer");
      }, 20);
      return text(start, `pid ${process.pid}`);
    case "/close-throws":
      start("200 OK", [["Content-Type", "text/plain"]]);
      return {
        *[Symbol.iterator]() {
          yield `pid ${process.pid}`;
        },
        close() {
          throw new Error("survivor: close() throws");
        },
      };
    case "/return-throws":
      start("200 OK", [["Content-Type", "text/plain"]]);
      return (function* () {
        try {
          yield "first ";
          yield "second";
        } finally {
          // eslint-disable-next-line no-unsafe-finally
          throw new Error("survivor: the generator's finally throws");
        }
      })();
    case "/number-chunk":
      start("200 OK", [["Content-Type", "text/plain"]]);
      return (function* () {
        yield 42;
      })();
    case "/late-write": {
      const write = start("200 OK", [["Content-Type", "text/plain"]]);
      setTimeout(() => write("too late"), 50);
      return [`pid ${process.pid}`];
    }
    case "/start-twice":
      start("200 OK", [["Content-Type", "text/plain"]]);
      start("201 Created", [["Content-Type", "text/plain"]]);
      return ["never"];
    case "/string-body":
      start("200 OK", [["Content-Type", "text/plain"]]);
      return "a string, not an iterable of chunks";
    case "/nothing":
      start("200 OK", [["Content-Type", "text/plain"]]);
      return undefined;
    default:
      return text(start, `no route ${environ.PATH_INFO}\n`, "404 Not Found");
  }
}

export const application = survivor as unknown as Application;

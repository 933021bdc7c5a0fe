// The application of issue-8-iterator-return.test.ts (issue 8, point 10): a generator body
// whose `finally` and whose close() each append a line to the file named by TSGI_ECHO_EVENTS
// ("ID finally", "ID close"), so a test sees from outside whether the server finished the
// iterator when it stopped early. No validator in front.
//
//   /gen?id=ID&kind=sync|async&n=N&status=S   N chunks (default 256) of 64 KiB, status S
//                                             (default "200 OK"), from a sync or an async
//                                             generator (the async one pauses 2 ms a chunk)

import { appendFileSync } from "node:fs";
import type { Environ } from "../../../src/gateway/environ.ts";
import type { Application } from "../../../src/gateway/request.ts";
import type { StartResponse } from "../../../src/gateway/start-response.ts";

const CHUNK = 64 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function record(line: string): void {
  const file = process.env.TSGI_ECHO_EVENTS;
  if (file) appendFileSync(file, `${line}\n`);
}

function app(environ: Environ, start: StartResponse): unknown {
  const q = new URLSearchParams(environ.QUERY_STRING);
  if (environ.PATH_INFO !== "/gen") {
    start("404 Not Found", [["Content-Type", "text/plain"]]);
    return ["no route\n"];
  }
  const id = q.get("id") ?? "anon";
  const n = Number(q.get("n") ?? "256");
  start(q.get("status") ?? "200 OK", [["Content-Type", "application/octet-stream"]]);
  const body =
    q.get("kind") === "async"
      ? (async function* () {
          try {
            for (let i = 0; i < n; i++) {
              yield Buffer.alloc(CHUNK, 0x61);
              await sleep(2);
            }
          } finally {
            record(`${id} finally`);
          }
        })()
      : (function* () {
          try {
            for (let i = 0; i < n; i++) yield Buffer.alloc(CHUNK, 0x61);
          } finally {
            record(`${id} finally`);
          }
        })();
  return Object.assign(body, { close: () => record(`${id} close`) });
}

export const application = app as unknown as Application;

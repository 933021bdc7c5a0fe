// The application of issue-8-write-error.test.ts (issue 8, point 12). It never reads the
// request body and streams a large response; it appends what happens to the file named by
// WRITE_ERROR_EVENTS, one line each: "ID start PID", "ID abort MS" (tsgi.signal fired, MS =
// Date.now()), "ID end SENT" (the body finished, SENT bytes handed over). Routes:
//
//   /big?id=ID&mode=gen     an async generator of 64 KiB chunks, up to 256 MiB
//   /big?id=ID&mode=write   the legacy write() of 64 KiB chunks in a loop, one await each,
//                           until 256 MiB or the signal
//   /pid                    the worker's pid

import { appendFileSync } from "node:fs";

const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const TOTAL = 256 * 1024 * 1024;

function record(line) {
  const file = process.env.WRITE_ERROR_EVENTS;
  if (file) appendFileSync(file, `${line}\n`);
}

export async function application(environ, startResponse) {
  const query = new URLSearchParams(environ.QUERY_STRING);
  if (environ.PATH_INFO === "/pid") {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [String(process.pid)];
  }
  if (environ.PATH_INFO !== "/big") {
    startResponse("404 Not Found", [["Content-Type", "text/plain"]]);
    return ["no route\n"];
  }
  const id = query.get("id") ?? "anon";
  const signal = environ["tsgi.signal"];
  record(`${id} start ${process.pid}`);
  signal.addEventListener("abort", () => record(`${id} abort ${Date.now()}`), { once: true });
  let sent = 0;
  if (query.get("mode") === "write") {
    const write = startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    while (sent < TOTAL && !signal.aborted) {
      write(CHUNK);
      sent += CHUNK.length;
      await new Promise((r) => setTimeout(r, 1));
    }
    record(`${id} end ${sent}`);
    return [];
  }
  startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
  return (async function* () {
    try {
      while (sent < TOTAL) {
        sent += CHUNK.length;
        yield CHUNK;
      }
    } finally {
      record(`${id} end ${sent}`);
    }
  })();
}

// Issue 8, point 12: a write error while a request is open is reported even when reading is
// paused for request-body backpressure (native/binding/stream_server.h). A raw client sends
// a request announcing an 8 MiB body, sends 2 MiB of it and stops; the application never
// reads the body (tsgi stops reading past 256 KiB buffered) and streams a large response that
// the client never reads, so tsgi waits for the socket to drain. The client then resets the
// connection. With --request-timeout 60s, the application's `tsgi.signal` must fire within a
// few seconds of the reset (before the fix nothing followed and the request hung until the
// timeout), the request gets its access-log line, and the same worker goes on serving. Over
// uwsgi and FastCGI, with a body that is an async generator and with the legacy write().

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { cgiParams, eventually, fcgiHead, fcgiRequest, fcgiStdin, hasEndRequest, openRaw, sleep, splitResponse, stdoutOf, uwsgi } from "./support/wire.ts";

const APP = new URL("./apps/write-error-app.mjs", import.meta.url).pathname;
const MIB = 1024 * 1024;

let tsgi: TsgiProcess;
const eventsDir = mkdtempSync(join(tmpdir(), "tsgi-write-error-"));
const eventsFile = join(eventsDir, "events.log");

beforeAll(async () => {
  tsgi = await startTsgi({
    app: APP,
    listen: [{ proto: "uwsgi" }, { proto: "fastcgi" }],
    args: ["--processes", "1", "--request-timeout", "60s", "--run-as-root"],
    env: { WRITE_ERROR_EVENTS: eventsFile },
  });
});

afterAll(async () => {
  await tsgi?.stop();
  rmSync(eventsDir, { recursive: true, force: true });
});

function events(): string[] {
  return existsSync(eventsFile) ? readFileSync(eventsFile, "utf8").split("\n").filter(Boolean) : [];
}

const eventOf = (id: string, kind: string) => events().find((l) => l.startsWith(`${id} ${kind}`));

async function workerPid(): Promise<number> {
  const conn = await openRaw(tsgi.tcp("uwsgi"));
  conn.sock.write(uwsgi.request(cgiParams("/pid", ["PATH_INFO", "/pid"])));
  await conn.closedWithin(5000);
  const r = splitResponse(conn.received());
  expect(r.status).toBe(200);
  return Number(r.body.toString());
}

/**
 * Sends the request head announcing 8 MiB and 2 MiB of body on a socket that never reads,
 * waits until the application streams (and the socket has long filled), then resets.
 */
async function resetWhileStreaming(proto: "uwsgi" | "fastcgi", id: string, mode: "gen" | "write") {
  const path = "/big";
  const uri = `${path}?id=${id}&mode=${mode}`;
  const conn = await openRaw(tsgi.tcp(proto), { read: false });
  const extra = [proto === "uwsgi" ? "PATH_INFO" : "DOCUMENT_URI", path, "CONTENT_LENGTH", String(8 * MIB), "CONTENT_TYPE", "application/octet-stream"];
  const body = Buffer.alloc(2 * MIB, 0x62);
  if (proto === "uwsgi") {
    conn.sock.write(uwsgi.request(cgiParams(uri, extra, "POST")));
    conn.sock.write(body);
  } else {
    conn.sock.write(fcgiHead(1, cgiParams(uri, extra, "POST")));
    conn.sock.write(fcgiStdin(1, body));
  }
  await eventually(`${id} start`, 5000, () => eventOf(id, "start"));
  // Long enough for the response to fill both sockets' buffers: tsgi then waits for DRAIN,
  // with reading stopped for the unread body.
  await sleep(700);
  expect(eventOf(id, "abort"), "nothing aborted the request before the reset").toBeUndefined();
  const resetAt = Date.now();
  conn.sock.resetAndDestroy();
  return { resetAt, uri, startPid: Number(eventOf(id, "start")!.split(" ")[2]) };
}

describe("a client that resets while tsgi waits to write (reading paused): the request ends at once", () => {
  const cases = [
    { proto: "uwsgi", mode: "gen" },
    { proto: "uwsgi", mode: "write" },
    { proto: "fastcgi", mode: "gen" },
    { proto: "fastcgi", mode: "write" },
  ] as const;

  for (const c of cases) {
    const body = c.mode === "gen" ? "an async-generator body" : "the legacy write()";
    test(`${c.proto}, ${body}: tsgi.signal fires within seconds of the reset (request-timeout is 60 s), the access line is written, the worker serves on`, async () => {
      const pidBefore = await workerPid();
      const id = `${c.proto}-${c.mode}`;
      const { resetAt, uri, startPid } = await resetWhileStreaming(c.proto, id, c.mode);
      expect(startPid).toBe(pidBefore);
      const abort = await eventually(`${id}: tsgi.signal after the reset`, 8000, () => eventOf(id, "abort")).catch((err: Error) => err);
      expect(abort, `tsgi.signal fired (events: ${events().join(" | ")})`).not.toBeInstanceOf(Error);
      const abortedAfter = Number(String(abort).split(" ")[2]) - resetAt;
      expect(abortedAfter, `tsgi.signal fired ${abortedAfter} ms after the reset`).toBeLessThan(5000);
      // The body is finished (return() / the loop sees the signal) and the request is logged.
      await eventually(`${id} end`, 5000, () => eventOf(id, "end"));
      const access = await eventually(`the access line of ${id}`, 5000, () => tsgi.stdout().split("\n").find((l) => l.includes(`"POST ${uri} HTTP/1.1"`)));
      expect(access).toMatch(/" 200 \d+ /);
      // The same worker answers the next request.
      expect(await workerPid()).toBe(pidBefore);
      // Nothing went wrong in tsgi itself: no worker replaced, no unhandled rejection, no error line.
      expect(tsgi.stderr().split("\n").filter((l) => / \[error\] /.test(l))).toEqual([]);
    });
  }

  test("the same worker still answers FastCGI normally afterwards", async () => {
    const conn = await openRaw(tsgi.tcp("fastcgi"));
    conn.sock.write(fcgiRequest(1, cgiParams("/pid", ["DOCUMENT_URI", "/pid"])));
    const bytes = await conn.until(hasEndRequest(1), 5000);
    conn.sock.destroy();
    const r = splitResponse(stdoutOf(bytes));
    expect(r.status).toBe(200);
    expect(Number(r.body.toString())).toBeGreaterThan(0);
  });
});

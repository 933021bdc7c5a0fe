// Issue 8, point 11: the input stream. A FastCGI request whose FCGI_STDIN ends before
// CONTENT_LENGTH bytes is not a complete body: the application's read of `tsgi.input` fails
// with TSGI_ERR_APP_BODY_INCOMPLETE (an application that catches it can answer it; one that
// lets it through gets `400 Bad Request` from tsgi, never an answer as if the body were whole),
// and partial reads still return the bytes that came before the error. Two readers of
// `tsgi.input` at once (two read()s, or a read() and a `for await`) both settle when the body
// arrives in two pieces (the old single wake slot left the first one waiting forever), over
// FastCGI, uwsgi and tsgi's HTTP listener. Raw clients on tsgi's listeners, no front server.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import {
  cgiParams,
  endRequestOf,
  eventually,
  fcgiHead,
  fcgiStdin,
  fcgiStdinEnd,
  hasEndRequest,
  openRaw,
  sleep,
  splitResponse,
  stdoutOf,
  uwsgi,
} from "./support/wire.ts";

const APP = new URL("./apps/input-app.mjs", import.meta.url).pathname;

let tsgi: TsgiProcess;

beforeAll(async () => {
  tsgi = await startTsgi({
    app: APP,
    listen: [{ proto: "fastcgi" }, { proto: "uwsgi" }, { proto: "http" }],
    args: ["--processes", "1", "--run-as-root"],
  });
});

afterAll(async () => {
  await tsgi?.stop();
});

interface Answer {
  status: number;
  head: string;
  json: Record<string, unknown> | null;
  /** FCGI_END_REQUEST's appStatus (FastCGI only). */
  appStatus?: number;
}

function answerOf(bytes: Buffer): Answer {
  const { status, head, body } = splitResponse(bytes);
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(body.toString("latin1")) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status, head, json };
}

/**
 * A FastCGI request for `path` with CONTENT_LENGTH `declared`, whose body is sent as `pieces`
 * (with `gapMs` between them), then FCGI_STDIN's end (after `endDelayMs`). `tag` goes into
 * the query string to find the request's access-log line.
 */
async function fastcgi(path: string, declared: number, pieces: string[], o: { gapMs?: number; endDelayMs?: number; tag?: string } = {}): Promise<Answer> {
  const conn = await openRaw(tsgi.tcp("fastcgi"));
  const uri = `${path}?tag=${o.tag ?? "none"}`;
  conn.sock.write(fcgiHead(1, cgiParams(uri, ["DOCUMENT_URI", path, "CONTENT_LENGTH", String(declared), "CONTENT_TYPE", "text/plain"], "POST")));
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0 && o.gapMs) await sleep(o.gapMs);
    conn.sock.write(fcgiStdin(1, pieces[i]!));
  }
  if (o.endDelayMs) await sleep(o.endDelayMs);
  conn.sock.write(fcgiStdinEnd(1));
  const bytes = await conn.until(hasEndRequest(1), 10_000);
  conn.sock.destroy();
  return { ...answerOf(stdoutOf(bytes)), appStatus: endRequestOf(bytes)!.appStatus };
}

async function uwsgiRequest(path: string, declared: number, pieces: string[], gapMs: number): Promise<Answer> {
  const conn = await openRaw(tsgi.tcp("uwsgi"));
  conn.sock.write(uwsgi.request(cgiParams(path, ["PATH_INFO", path, "CONTENT_LENGTH", String(declared)], "POST")));
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) await sleep(gapMs);
    conn.sock.write(pieces[i]!);
  }
  await conn.closedWithin(10_000);
  return answerOf(conn.received());
}

async function httpRequest(path: string, declared: number, pieces: string[], gapMs: number): Promise<Answer> {
  const a = tsgi.tcp("http");
  const conn = await openRaw(a);
  conn.sock.write(`POST ${path} HTTP/1.1\r\nHost: ${a.host}:${a.port}\r\nContent-Length: ${declared}\r\nConnection: close\r\n\r\n`);
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) await sleep(gapMs);
    conn.sock.write(pieces[i]!);
  }
  await conn.closedWithin(10_000);
  const answer = answerOf(conn.received());
  // The HTTP listener may answer chunked: take the JSON out of the chunk framing.
  if (!answer.json) {
    const body = conn.received().toString("latin1").split("\r\n\r\n").slice(1).join("\r\n\r\n");
    const m = /\{.*\}/s.exec(body);
    answer.json = m ? (JSON.parse(m[0]) as Record<string, unknown>) : null;
  }
  return answer;
}

const accessLine = (tag: string) =>
  eventually(`the access line of ${tag}`, 5000, () => tsgi.stdout().split("\n").find((l) => l.includes(`tag=${tag} `)));

describe("a FastCGI body that ends before CONTENT_LENGTH bytes is an error the application sees", () => {
  test.concurrent("the application's read() rejects with TSGI_ERR_APP_BODY_INCOMPLETE, and an application that catches it answers", async () => {
    const a = await fastcgi("/read-all-caught", 100, ["0123456789"], { tag: "caught" });
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ error: "TSGI_ERR_APP_BODY_INCOMPLETE" });
    expect(a.appStatus).toBe(200);
  });

  test.concurrent("the same when FCGI_STDIN ends while the application is already waiting in read()", async () => {
    const a = await fastcgi("/read-all-caught", 100, ["0123456789"], { endDelayMs: 300, tag: "caught-late" });
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ error: "TSGI_ERR_APP_BODY_INCOMPLETE" });
  });

  test.concurrent("an application that lets the error through gets 400 Bad Request, not an answer as if the body were whole", async () => {
    const a = await fastcgi("/read-all", 100, ["0123456789"], { tag: "uncaught" });
    expect(a.head).toMatch(/^Status: 400 Bad Request\r\n/);
    expect(a.json, "no body of the application's").toBeNull();
    expect(a.appStatus, "FCGI_END_REQUEST's appStatus").toBe(400);
    expect(await accessLine("uncaught")).toMatch(/"POST \/read-all\?tag=uncaught HTTP\/1\.1" 400 /);
  });

  test.concurrent("400 too when FCGI_STDIN ends while the application waits", async () => {
    const a = await fastcgi("/read-all", 100, ["0123456789"], { endDelayMs: 300, tag: "uncaught-late" });
    expect(a.head).toMatch(/^Status: 400 Bad Request\r\n/);
    expect(await accessLine("uncaught-late")).toMatch(/" 400 /);
  });

  test.concurrent("400 for an FCGI_STDIN that ends with no body at all (CONTENT_LENGTH 100)", async () => {
    const a = await fastcgi("/read-all", 100, [], { tag: "nothing" });
    expect(a.head).toMatch(/^Status: 400 Bad Request\r\n/);
  });

  test.concurrent("read(5) returns the 10 bytes that came, in two parts, then rejects with TSGI_ERR_APP_BODY_INCOMPLETE", async () => {
    const a = await fastcgi("/read-parts", 100, ["01234", "56789"], { gapMs: 100, tag: "parts" });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ parts: ["01234", "56789"], error: "TSGI_ERR_APP_BODY_INCOMPLETE" });
  });

  test.concurrent("`for await` over the input yields the bytes that came, then throws TSGI_ERR_APP_BODY_INCOMPLETE", async () => {
    const a = await fastcgi("/iterate-caught", 100, ["0123456789"], { tag: "iterate" });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ chunks: ["0123456789"], error: "TSGI_ERR_APP_BODY_INCOMPLETE" });
  });

  test.concurrent("a body that is whole is still read whole (CONTENT_LENGTH 10, 10 bytes in two pieces)", async () => {
    const a = await fastcgi("/read-all", 10, ["01234", "56789"], { gapMs: 100, tag: "whole" });
    expect(a.head).toMatch(/^Status: 200 OK\r\n/);
    expect(a.json).toEqual({ body: "0123456789" });
    const parts = await fastcgi("/read-parts", 10, ["0123456789"], { tag: "whole-parts" });
    expect(parts.json).toEqual({ parts: ["01234", "56789"], error: null });
  });
});

describe("two readers of tsgi.input at once both settle when the body comes in two pieces", () => {
  // CONTENT_LENGTH 8: "abcd", 300 ms, "efgh". Each reader is limited to 5 s inside the
  // application; a reader that never wakes answers {timeout: true}.
  const sorted = (xs: unknown) => [...(xs as string[])].sort();
  const allBytes = (read: unknown, chunks: unknown) => [String(read), ...(chunks as string[])].join("").split("").sort().join("");

  test.concurrent("FastCGI: Promise.all([read(4), read(4)]) gives both halves", async () => {
    const a = await fastcgi("/two-readers", 8, ["abcd", "efgh"], { gapMs: 300, tag: "two-fcgi" });
    expect(a.json).not.toHaveProperty("timeout");
    expect(sorted(a.json?.results)).toEqual(["abcd", "efgh"]);
  });

  test.concurrent("FastCGI: a read(4) and a `for await` at once both finish, every byte delivered once", async () => {
    const a = await fastcgi("/read-and-iterate", 8, ["abcd", "efgh"], { gapMs: 300, tag: "mixed-fcgi" });
    expect(a.json).not.toHaveProperty("timeout");
    expect(allBytes(a.json?.read, a.json?.chunks)).toBe("abcdefgh");
  });

  test.concurrent("uwsgi: Promise.all([read(4), read(4)]) gives both halves", async () => {
    const a = await uwsgiRequest("/two-readers", 8, ["abcd", "efgh"], 300);
    expect(a.status).toBe(200);
    expect(a.json).not.toHaveProperty("timeout");
    expect(sorted(a.json?.results)).toEqual(["abcd", "efgh"]);
  });

  test.concurrent("uwsgi: a read(4) and a `for await` at once both finish", async () => {
    const a = await uwsgiRequest("/read-and-iterate", 8, ["abcd", "efgh"], 300);
    expect(a.json).not.toHaveProperty("timeout");
    expect(allBytes(a.json?.read, a.json?.chunks)).toBe("abcdefgh");
  });

  test.concurrent("HTTP listener: Promise.all([read(4), read(4)]) gives both halves", async () => {
    const a = await httpRequest("/two-readers", 8, ["abcd", "efgh"], 300);
    expect(a.status).toBe(200);
    expect(a.json).not.toHaveProperty("timeout");
    expect(sorted(a.json?.results)).toEqual(["abcd", "efgh"]);
  });
});

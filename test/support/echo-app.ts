// The echo-environ application the integration tests serve through every front server,
// wrapped in the validator (src/gateway/validate.ts) so that both sides of the contract are
// checked on every request. Routes are chosen by PATH_INFO and the query string:
//
//   /environ[/…]           JSON: the string-valued environ keys, tsgi.url_scheme, and the body
//                          read through tsgi.input (its sha256 and length)
//   /stream?mib=N          N MiB in 64 KiB chunks (bytes from streamBlock(), so a test can hash them)
//   /status?code=N&reason=R  that status with that reason phrase (no body for 1xx/204/304)
//   /cookies               three Set-Cookie headers
//   /error-before          throws before start_response
//   /error-after           sends one chunk, then throws
//   /slow-stream?id=X      a chunk every 50 ms for up to 20 s; appends "X start", "X abort"
//                          (tsgi.signal fired) and "X close" (close() ran) to the file named
//                          by TSGI_ECHO_EVENTS
//
// Validator reports go to stderr prefixed with VALIDATE_REPORT, and the tests assert none.

import { createHash } from "node:crypto";
import { appendFileSync } from "node:fs";
import type { Chunk, Environ } from "../../src/gateway/environ.ts";
import type { Application } from "../../src/gateway/request.ts";
import type { StartResponse } from "../../src/gateway/start-response.ts";
import { validate } from "../../src/gateway/validate.ts";

export const STREAM_CHUNK = 64 * 1024;
export const VALIDATE_MARK = "VALIDATE_REPORT";

/** Deterministic bytes (xorshift32): cheap, and not compressible by anything on the way. */
export function pseudoRandom(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

const BASE_BLOCK = pseudoRandom(STREAM_CHUNK, 0x2545f491);

/** Chunk `index` of /stream: the base block with the index in its first four bytes. */
export function streamBlock(index: number): Buffer {
  const b = Buffer.from(BASE_BLOCK);
  b.writeUInt32BE(index, 0);
  return b;
}

/** sha256 and length of what /stream?mib=N sends. */
export function streamDigest(mib: number): { sha256: string; length: number } {
  const h = createHash("sha256");
  const n = (mib * 1024 * 1024) / STREAM_CHUNK;
  for (let i = 0; i < n; i++) h.update(streamBlock(i));
  return { sha256: h.digest("hex"), length: n * STREAM_CHUNK };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function record(line: string): void {
  const file = process.env.TSGI_ECHO_EVENTS;
  if (file) appendFileSync(file, `${line}\n`);
}

async function environRoute(environ: Environ, startResponse: StartResponse): Promise<Chunk[]> {
  const hash = createHash("sha256");
  let length = 0;
  for await (const chunk of environ["tsgi.input"]) {
    hash.update(chunk);
    length += chunk.length;
  }
  const seen: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(environ)) if (typeof v === "string") seen[k] = v;
  seen["tsgi.multiprocess"] = environ["tsgi.multiprocess"];
  const text = JSON.stringify({ environ: seen, body: { length, sha256: hash.digest("hex") } });
  startResponse("200 OK", [
    ["Content-Type", "application/json"],
    ["X-Echo", "1"],
  ]);
  return [text];
}

function streamRoute(query: URLSearchParams, startResponse: StartResponse): AsyncIterable<Chunk> {
  const mib = Math.min(Number(query.get("mib") ?? "1"), 64);
  startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
  return (async function* () {
    const n = (mib * 1024 * 1024) / STREAM_CHUNK;
    for (let i = 0; i < n; i++) yield streamBlock(i);
  })();
}

function statusRoute(query: URLSearchParams, startResponse: StartResponse): Chunk[] {
  const code = Number(query.get("code") ?? "200");
  const reason = query.get("reason") ?? "Whatever";
  startResponse(`${code} ${reason}`, [
    ["Content-Type", "text/plain"],
    ["X-Status-Test", String(code)],
  ]);
  return code < 200 || code === 204 || code === 304 ? [] : [`status ${code}\n`];
}

function slowStream(environ: Environ, query: URLSearchParams, startResponse: StartResponse): AsyncIterable<Chunk> & { close(): void } {
  const id = query.get("id") ?? "anon";
  record(`${id} start`);
  const signal = environ["tsgi.signal"];
  signal.addEventListener("abort", () => record(`${id} abort`), { once: true });
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  let stopped = false;
  const body = (async function* () {
    for (let i = 0; i < 400 && !stopped; i++) {
      yield `tick ${i} ${"x".repeat(1000)}\n`;
      await sleep(50);
    }
  })();
  return Object.assign(body, {
    close() {
      stopped = true;
      record(`${id} close`);
    },
  });
}

const echo: Application = async (environ, startResponse) => {
  const query = new URLSearchParams(environ.QUERY_STRING);
  // /environ/anything echoes too, so that any path (percent-encoded, UTF-8) can be checked.
  if (environ.PATH_INFO === "/environ" || environ.PATH_INFO.startsWith("/environ/")) return environRoute(environ, startResponse);
  switch (environ.PATH_INFO) {
    case "/stream":
      return streamRoute(query, startResponse);
    case "/status":
      return statusRoute(query, startResponse);
    case "/cookies":
      startResponse("200 OK", [
        ["Content-Type", "text/plain"],
        ["Set-Cookie", "a=1; Path=/"],
        ["Set-Cookie", "b=2; Path=/; HttpOnly"],
        ["Set-Cookie", "c=3; Path=/; Max-Age=60"],
      ]);
      return ["cookies\n"];
    case "/error-before":
      throw new Error("echo: failing before start_response");
    case "/error-after":
      // ?length=N announces a Content-Length: the only way a uwsgi response over a unix
      // socket can be seen as cut (no reset exists there, and a close ends a response
      // without a length).
      startResponse("200 OK", [["Content-Type", "text/plain"], ...(query.get("length") ? [["Content-Length", query.get("length")!] as [string, string]] : [])]);
      return (async function* () {
        yield "partial ";
        await sleep(100);
        throw new Error("echo: failing after the first chunk");
      })();
    case "/slow-stream":
      return slowStream(environ, query, startResponse);
    default:
      startResponse("404 Not Found", [["Content-Type", "text/plain"]]);
      return [`no route ${environ.PATH_INFO}\n`];
  }
};

export const application: Application = validate(echo, (err) => {
  const text = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${VALIDATE_MARK}: ${text.replace(/\n/g, " ")}\n`);
});

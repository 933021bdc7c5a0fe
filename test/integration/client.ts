// The HTTP client side of the integration tests: one request on a fresh connection through
// node:http (repeated headers sent as separate lines, uploads with a Content-Length or
// chunked), the reply's status, reason, raw header pairs, body and whether it ended cleanly;
// and a raw-socket exchange for what node:http would hide (bytes after a HEAD response).

import { createHash } from "node:crypto";
import http from "node:http";
import { connect } from "node:net";

export interface Reply {
  status: number;
  reason: string;
  /** Header pairs as received, names lower-cased. */
  headers: [string, string][];
  body: Buffer;
  /** False when the connection ended before the response's own end (a cut response). */
  complete: boolean;
}

export interface RequestOptions {
  method?: string;
  /** Sent as separate header lines, in order (a name may repeat). */
  headers?: [string, string][];
  /** A body sent with its Content-Length. */
  body?: Buffer;
  /** A body sent with Transfer-Encoding: chunked, one chunk per element. */
  chunks?: Buffer[];
  timeoutMs?: number;
  agent?: http.Agent | false;
}

export function header(reply: Reply, name: string): string | undefined {
  return reply.headers.find(([n]) => n === name.toLowerCase())?.[1];
}

export function headerAll(reply: Reply, name: string): string[] {
  return reply.headers.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v);
}

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export function request(url: string, o: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // With headers given as a list, node:http adds no Host header of its own.
    const flat: string[] = ["Host", new URL(url).host];
    for (const [n, v] of o.headers ?? []) flat.push(n, v);
    if (o.body) flat.push("Content-Length", String(o.body.length));
    if (o.chunks) flat.push("Transfer-Encoding", "chunked");
    const req = http.request(url, {
      method: o.method ?? (o.body || o.chunks ? "POST" : "GET"),
      headers: flat as unknown as http.OutgoingHttpHeaders,
      agent: o.agent ?? false,
      timeout: o.timeoutMs ?? 30_000,
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within ${o.timeoutMs ?? 30_000} ms`)));
    let responded = false;
    // An error once the response began (a reset that cuts it) is reported through `complete`.
    req.on("error", (err) => {
      if (!responded) reject(err);
    });
    req.on("response", (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      const pairs: [string, string][] = [];
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", () => undefined); // "aborted": reported through `complete`
      res.on("close", () =>
        resolve({
          status: res.statusCode ?? 0,
          reason: res.statusMessage ?? "",
          headers: pairs,
          body: Buffer.concat(chunks),
          complete: res.complete,
        }),
      );
    });
    if (o.body) req.end(o.body);
    else if (o.chunks) {
      void (async () => {
        for (const c of o.chunks!) {
          if (!req.write(c)) await new Promise((r) => req.once("drain", r));
        }
        req.end();
      })();
    } else req.end();
  });
}

/** Sends `text` on a new connection and returns every byte received until the peer closes. */
export function rawExchange(host: string, port: number, text: string, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`raw exchange with ${host}:${port}: no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString("latin1").slice(0, 300)}`));
    }, timeoutMs);
    sock.on("connect", () => sock.write(text));
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Deterministic bytes (xorshift32) for uploads: the echo application's generator. */
export { pseudoRandom } from "../support/echo-app.ts";

/** A GET whose response the caller abandons: resolves once the first body bytes arrived. */
export function startReading(url: string): Promise<{ leave(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false });
    req.on("error", () => undefined);
    req.on("response", (res) => {
      res.once("data", () => resolve({ leave: () => req.destroy() }));
      res.on("error", () => undefined);
      res.on("end", () => reject(new Error(`${url}: the response ended before the client left`)));
    });
    req.setTimeout(15_000, () => {
      req.destroy();
      reject(new Error(`${url}: no body bytes within 15 s`));
    });
    req.end();
  });
}

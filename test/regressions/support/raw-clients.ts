// Raw clients for the issue-8 regression tests: a uwsgi request per connection, built with
// src/native.ts's encoder, its raw HTTP/1.1 reply read until the server closes; the same GET
// as FastCGI records (with the records split back) and as raw HTTP/1.1; a client that reads
// (or uploads) a little and then resets the connection (RST, not FIN) to see what the worker
// does when its peer vanishes; and the access-log line of a request found by its URI.

import { connect, type Socket } from "node:net";
import { fcgi, uwsgi } from "../../../src/native.ts";

export interface UwsgiTarget {
  host: string;
  port: number;
}

export interface UwsgiReply {
  status: number;
  headers: [string, string][];
  body: Buffer;
  /** The body is as long as its Content-Length said (or there was none and the server closed). */
  complete: boolean;
}

/** The vars nginx's uwsgi_params would send for `method uri`, plus `extra`. */
export function uwsgiVars(method: string, uri: string, extra: string[] = []): string[] {
  const q = uri.indexOf("?");
  return [
    "REQUEST_METHOD", method,
    "REQUEST_URI", uri,
    "PATH_INFO", q < 0 ? uri : uri.slice(0, q),
    "QUERY_STRING", q < 0 ? "" : uri.slice(q + 1),
    "SERVER_PROTOCOL", "HTTP/1.1",
    "SERVER_NAME", "localhost",
    "SERVER_PORT", "80",
    "REMOTE_ADDR", "127.0.0.1",
    "REMOTE_PORT", "40000",
    "HTTP_HOST", "localhost",
    ...extra,
  ];
}

const FCGI_PARAMS = 4;
const FCGI_STDIN = 5;
const FCGI_RESPONDER = 1;

/** A FastCGI RESPONDER request (id 1, no keep-conn) for `method uri`, as nginx's fastcgi_params would send it. */
export function fcgiRequest(method: string, uri: string): Buffer {
  const q = uri.indexOf("?");
  const path = q < 0 ? uri : uri.slice(0, q);
  const params = [
    "REQUEST_METHOD", method,
    "REQUEST_URI", uri,
    "DOCUMENT_URI", path,
    "SCRIPT_NAME", path,
    "QUERY_STRING", q < 0 ? "" : uri.slice(q + 1),
    "SERVER_PROTOCOL", "HTTP/1.1",
    "SERVER_NAME", "localhost",
    "SERVER_PORT", "80",
    "REMOTE_ADDR", "127.0.0.1",
    "REMOTE_PORT", "40000",
    "HTTP_HOST", "localhost",
  ];
  return Buffer.concat([
    fcgi.beginRequest(1, FCGI_RESPONDER, 0),
    fcgi.stream(FCGI_PARAMS, 1, fcgi.pairs(params)),
    fcgi.streamEnd(FCGI_PARAMS, 1),
    fcgi.streamEnd(FCGI_STDIN, 1),
  ]);
}

export interface FcgiRecord {
  type: number;
  id: number;
  content: Buffer;
}

/** The complete FastCGI records at the start of `b`. */
export function fcgiRecords(b: Buffer): FcgiRecord[] {
  const out: FcgiRecord[] = [];
  for (let at = 0; at + 8 <= b.length; ) {
    const length = b.readUInt16BE(at + 4);
    const padding = b[at + 6]!;
    if (at + 8 + length + padding > b.length) break;
    out.push({ type: b[at + 1]!, id: b.readUInt16BE(at + 2), content: b.subarray(at + 8, at + 8 + length) });
    at += 8 + length + padding;
  }
  return out;
}

/** A raw HTTP/1.1 GET of `uri`. */
export function httpRequest(uri: string): Buffer {
  return Buffer.from(`GET ${uri} HTTP/1.1\r\nHost: localhost\r\n\r\n`, "latin1");
}

function open(t: UwsgiTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: t.host, port: t.port });
    sock.once("connect", () => resolve(sock));
    sock.once("error", reject);
  });
}

function parseReply(raw: Buffer): UwsgiReply {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return { status: 0, headers: [], body: Buffer.alloc(0), complete: false };
  const lines = raw.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1] ?? 0);
  const headers = lines.slice(1).map((l) => {
    const c = l.indexOf(":");
    return [l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim()] as [string, string];
  });
  const body = raw.subarray(end + 4);
  const length = headers.find(([n]) => n === "content-length")?.[1];
  return { status, headers, body, complete: length === undefined || body.length === Number(length) };
}

/** One request; resolves with the reply once the server closed the connection. */
export async function uwsgiRequest(t: UwsgiTarget, method: string, uri: string, body?: Buffer, timeoutMs = 10_000): Promise<UwsgiReply> {
  const vars = uwsgiVars(method, uri, body ? ["CONTENT_LENGTH", String(body.length)] : []);
  const sock = await open(t);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`uwsgi ${method} ${uri}: no close within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(parseReply(Buffer.concat(chunks)));
    });
    sock.write(body ? Buffer.concat([uwsgi.request(vars), body]) : uwsgi.request(vars));
  });
}

/**
 * Sends `requestBytes` on a new connection, reads until at least `readBytes` arrived, stops
 * reading, and after `holdMs` resets the connection (RST). Resolves with the bytes it had
 * received. Any protocol: the caller builds the request.
 */
export async function readThenReset(t: UwsgiTarget, requestBytes: Buffer, readBytes: number, holdMs = 150): Promise<number> {
  const sock = await open(t);
  return new Promise((resolve, reject) => {
    let got = 0;
    let leaving = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`fewer than ${readBytes} bytes within 10 s (got ${got})`));
    }, 10_000);
    sock.on("error", () => undefined);
    sock.on("data", (c: Buffer) => {
      got += c.length;
      if (leaving || got < readBytes) return;
      leaving = true;
      sock.pause();
      setTimeout(() => {
        clearTimeout(timer);
        sock.resetAndDestroy();
        resolve(got);
      }, holdMs);
    });
    sock.on("close", () => {
      if (!leaving) {
        clearTimeout(timer);
        reject(new Error(`the server closed after ${got} bytes, before the client left`));
      }
    });
    sock.write(requestBytes);
  });
}

/** readThenReset for a uwsgi GET of `uri`. */
export function uwsgiReadThenReset(t: UwsgiTarget, uri: string, readBytes: number, holdMs = 150): Promise<number> {
  return readThenReset(t, uwsgi.request(uwsgiVars("GET", uri)), readBytes, holdMs);
}

/**
 * POSTs to `uri` announcing `announced` body bytes, sends `sent` of them, and after `holdMs`
 * resets the connection. Resolves with what the server had answered by then (usually nothing).
 */
export async function uwsgiUploadThenReset(t: UwsgiTarget, uri: string, announced: number, sent: number, holdMs = 200): Promise<Buffer> {
  const sock = await open(t);
  const chunks: Buffer[] = [];
  sock.on("data", (c: Buffer) => chunks.push(c));
  sock.on("error", () => undefined);
  sock.write(uwsgi.request(uwsgiVars("POST", uri, ["CONTENT_LENGTH", String(announced), "CONTENT_TYPE", "application/octet-stream"])));
  await new Promise<void>((resolve) => sock.write(Buffer.alloc(sent, 0x62), () => resolve()));
  await new Promise((r) => setTimeout(r, holdMs));
  sock.resetAndDestroy();
  return Buffer.concat(chunks);
}

export interface AccessLine {
  line: string;
  status: number;
  /** The bytes field ("-" reads as 0). */
  bytes: number;
}

/** The access-log line (common log format, as tsgi writes it) whose request has `uri`, or null. */
export function accessLine(accessLog: string, uri: string): AccessLine | null {
  for (const line of accessLog.split("\n")) {
    const m = /"[A-Z]+ (\S+) [^"]*" (\d{3}) (\d+|-) /.exec(line);
    if (m && m[1] === uri) return { line, status: Number(m[2]), bytes: m[3] === "-" ? 0 : Number(m[3]) };
  }
  return null;
}

/** Polls `read()` for the access-log line of `uri` (lines are flushed within ~50 ms). */
export async function waitForAccessLine(read: () => string, uri: string, timeoutMs = 5000): Promise<AccessLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = accessLine(read(), uri);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no access-log line for ${uri} within ${timeoutMs} ms; the log:\n${read()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Raw sockets to `tsgi serve`'s FastCGI and uwsgi listeners for the issue-8 regression tests
// (late exception, input, write error, access log): a connection that records every chunk it
// receives with its arrival time, FastCGI records split out of what tsgi wrote, and the
// params a front server would send. Requests are built with src/native.ts's encoders.

import { connect, type Socket } from "node:net";
import { fcgi, uwsgi } from "../../../src/native.ts";

export const FCGI = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  RESPONDER: 1,
  KEEP_CONN: 1,
} as const;

export { fcgi, uwsgi };

export type WireAddress = { host: string; port: number } | { path: string };

export interface RawConn {
  sock: Socket;
  /** When the connection was established (performance.now()). */
  openedAt: number;
  /** Every chunk received, with its arrival time (performance.now()). */
  arrivals: { at: number; bytes: Buffer }[];
  received(): Buffer;
  /** Resolves when the peer closed (or reset) the connection. */
  closed: Promise<void>;
  /** True once the socket saw an error (a reset from tsgi). */
  errored(): boolean;
  /** Resolves once `check(received)` holds; rejects after `timeoutMs` or if the connection closes first. */
  until(check: (b: Buffer) => boolean, timeoutMs?: number): Promise<Buffer>;
  /** Resolves when closed; rejects after `timeoutMs`. */
  closedWithin(timeoutMs: number): Promise<void>;
}

export async function openRaw(addr: WireAddress, opts: { read?: boolean } = {}): Promise<RawConn> {
  const sock = "path" in addr ? connect({ path: addr.path }) : connect({ host: addr.host, port: addr.port });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  const openedAt = performance.now();
  const arrivals: { at: number; bytes: Buffer }[] = [];
  const waiters: (() => void)[] = [];
  let errored = false;
  if (opts.read !== false) {
    sock.on("data", (c: Buffer) => {
      arrivals.push({ at: performance.now(), bytes: c });
      for (const w of waiters.splice(0)) w();
    });
  } else {
    sock.pause();
  }
  sock.on("error", () => {
    errored = true;
  });
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    sock.once("close", () => {
      isClosed = true;
      for (const w of waiters.splice(0)) w();
      resolve();
    }),
  );
  const received = () => Buffer.concat(arrivals.map((a) => a.bytes));
  return {
    sock,
    openedAt,
    arrivals,
    received,
    closed,
    errored: () => errored,
    async until(check, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const b = received();
        if (check(b)) return b;
        if (isClosed) throw new Error(`connection closed before the condition held; received ${b.length} bytes: ${JSON.stringify(b.toString("latin1").slice(0, 300))}`);
        if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; received ${b.length} bytes: ${JSON.stringify(b.toString("latin1").slice(0, 300))}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
    async closedWithin(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        closed,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`tsgi did not close the connection within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

// ---- FastCGI ------------------------------------------------------------------------------

export interface FcgiRecord {
  version: number;
  type: number;
  id: number;
  content: Buffer;
}

/** Splits what tsgi wrote into records (a trailing partial record is left out). */
export function records(b: Buffer): FcgiRecord[] {
  const out: FcgiRecord[] = [];
  let at = 0;
  while (at + 8 <= b.length) {
    const len = b.readUInt16BE(at + 4);
    const pad = b[at + 6]!;
    if (at + 8 + len + pad > b.length) break;
    out.push({ version: b[at]!, type: b[at + 1]!, id: b.readUInt16BE(at + 2), content: b.subarray(at + 8, at + 8 + len) });
    at += 8 + len + pad;
  }
  return out;
}

/** The STDOUT bytes of request `id`. */
export function stdoutOf(b: Buffer, id = 1): Buffer {
  return Buffer.concat(records(b).filter((r) => r.type === FCGI.STDOUT && r.id === id).map((r) => r.content));
}

export const hasEndRequest = (id = 1) => (b: Buffer) => records(b).some((r) => r.type === FCGI.END_REQUEST && r.id === id);

/** The params nginx's fastcgi_params would send for a GET of `uri` (byte strings), plus `extra`. */
export function cgiParams(uri: string, extra: string[] = [], method = "GET"): string[] {
  const q = uri.indexOf("?");
  return [
    "REQUEST_METHOD", method,
    "REQUEST_URI", uri,
    "QUERY_STRING", q < 0 ? "" : uri.slice(q + 1),
    "SERVER_PROTOCOL", "HTTP/1.1",
    "REMOTE_ADDR", "127.0.0.1",
    "SERVER_NAME", "localhost",
    "SERVER_PORT", "80",
    ...extra,
  ];
}

/** BEGIN_REQUEST and the params (ended): what comes before the body. */
export function fcgiHead(id: number, params: string[], flags = 0): Buffer {
  return Buffer.concat([fcgi.beginRequest(id, FCGI.RESPONDER, flags), fcgi.stream(FCGI.PARAMS, id, fcgi.pairs(params)), fcgi.streamEnd(FCGI.PARAMS, id)]);
}

/** STDIN content records (nothing for an empty chunk). */
export const fcgiStdin = (id: number, data: string | Buffer): Buffer => fcgi.stream(FCGI.STDIN, id, data);
export const fcgiStdinEnd = (id: number): Buffer => fcgi.streamEnd(FCGI.STDIN, id);

/** A whole request: head, body (if any), the end of STDIN. */
export function fcgiRequest(id: number, params: string[], body = "", flags = 0): Buffer {
  return Buffer.concat([fcgiHead(id, params, flags), ...(body ? [fcgiStdin(id, body)] : []), fcgiStdinEnd(id)]);
}

/** The app status and protocol status of request `id`'s FCGI_END_REQUEST, or null. */
export function endRequestOf(b: Buffer, id = 1): { appStatus: number; protocolStatus: number } | null {
  const r = records(b).find((x) => x.type === FCGI.END_REQUEST && x.id === id);
  return r ? { appStatus: r.content.readUInt32BE(0), protocolStatus: r.content[4]! } : null;
}

// ---- responses ------------------------------------------------------------------------------

/** A CGI or HTTP response split at its head: status code, head text, body bytes. */
export function splitResponse(bytes: Buffer): { status: number; head: string; body: Buffer } {
  const end = bytes.indexOf("\r\n\r\n");
  const head = end < 0 ? bytes.toString("latin1") : bytes.toString("latin1", 0, end);
  const m = /^(?:HTTP\/1\.[01] |Status: )(\d{3})/.exec(head);
  return { status: m ? Number(m[1]) : 0, head, body: end < 0 ? Buffer.alloc(0) : bytes.subarray(end + 4) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it gives a value (rejects after `timeoutMs`). */
export async function eventually<T>(what: string, timeoutMs: number, check: () => T | null | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

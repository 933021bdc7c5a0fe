// What the protocol servers share besides decoding: the log lines about a connection, the
// client-gone abort, the deadlines (header and request timeouts), CONTENT_LENGTH, and for the
// HTTP listener (node:http) its drain wait and its cut. The native listeners' own connection
// life (linger, cut, backpressure) is native/binding/stream_server.h's.

import type net from "node:net";
import { tsgiError, type ErrorCode } from "../errors.ts";
import type { RequestAbort } from "../gateway/abort.ts";
import type { TsgiInput } from "../gateway/input.ts";
import type { CodecError } from "../native.ts";

/** "CODE: message", as every line about a refused or closed connection reads. */
export function coded(code: ErrorCode, details: Record<string, unknown>): string {
  return `${code}: ${tsgiError(code, details).message}`;
}

/** The log line of a malformed stream: the connection is closed. */
export function codecErrorLine(peer: string | undefined, err: CodecError): string {
  return `${peer}: ${err.code}: ${err.reason} (byte ${err.offset}); closing the connection`;
}

/** The log line of a TCP peer closed at accept (not in `allow`), with how many more were since the last such line. */
export function refusedLine(peer: string, listener: string, more: number): string {
  return coded("TSGI_ERR_POOL_PEER_REFUSED", { peer, listener, more: more > 0 ? ` (and ${more} more since the last such line)` : "" });
}

/** The log line of a connection closed by header-timeout (`ms`). */
export function headerTimeoutLine(peer: string | undefined, code: ErrorCode, ms: number): string {
  return `${peer}: ${coded(code, { timeout: ms / 1000 })}; closing the connection`;
}

/**
 * The client or the front server is gone (connection closed, FCGI_ABORT_REQUEST): the
 * application's signal fires and its pending read fails, with the same error.
 */
export function clientGone(controller: RequestAbort, input: TsgiInput | null, reason: string): Error {
  const err = tsgiError("TSGI_ERR_APP_CLIENT_GONE", { reason });
  controller.abort(err);
  input?.fail(err);
  return err;
}

/** "127.0.0.1:9000", "[::1]:9000". */
export function describeAddress(address: string | undefined, port: number | undefined): string {
  const host = address ?? "unknown address";
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** "127.0.0.1:51234", or "unix:/run/tsgi/blog.sock" for a unix-socket peer. */
export function describePeer(socket: net.Socket): string {
  if (socket.remoteAddress) return describeAddress(socket.remoteAddress, socket.remotePort);
  const local = (socket as unknown as { server?: net.Server }).server?.address();
  return typeof local === "string" ? `unix:${local}` : "unix socket";
}

/**
 * Fires `onExpire` when armed for `ms` without being disarmed (0 = never): header-timeout of
 * a connection, request-timeout of a request. Armed and disarmed once per request, so no
 * timer of its own: one sweep per timeout value visits the armed ones (expiry is up to a
 * quarter of `ms`, at most 250 ms, late).
 */
export class Deadline {
  #deadline = 0;
  constructor(
    readonly ms: number,
    readonly onExpire: () => void,
  ) {}
  arm(): void {
    if (this.ms <= 0) return;
    this.#deadline = Date.now() + this.ms;
    sweeperFor(this.ms).add(this);
  }
  disarm(): void {
    if (this.#deadline === 0) return;
    this.#deadline = 0;
    sweeperFor(this.ms).delete(this);
  }
  /** Called by the sweep: true when it fired (and is no longer armed). */
  expireIfDue(now: number): boolean {
    if (this.#deadline === 0 || this.#deadline > now) return false;
    this.#deadline = 0;
    this.onExpire();
    return true;
  }
}

class Sweeper {
  readonly #armed = new Set<Deadline>();
  #interval: NodeJS.Timeout | null = null;
  constructor(readonly ms: number) {}
  add(t: Deadline): void {
    this.#armed.add(t);
    if (this.#interval) return;
    this.#interval = setInterval(() => this.#sweep(), Math.max(10, Math.min(250, this.ms / 4)));
    this.#interval.unref();
  }
  delete(t: Deadline): void {
    this.#armed.delete(t);
  }
  // The interval stops at a sweep that finds nothing armed, not when the last one is disarmed:
  // under load the set empties and fills between requests, and a timer per request is what
  // this class exists to avoid.
  #sweep(): void {
    const now = Date.now();
    for (const t of this.#armed) if (t.expireIfDue(now)) this.#armed.delete(t);
    if (this.#armed.size === 0 && this.#interval) {
      clearInterval(this.#interval);
      this.#interval = null;
    }
  }
}

const sweepers = new Map<number, Sweeper>();
function sweeperFor(ms: number): Sweeper {
  let s = sweepers.get(ms);
  if (!s) sweepers.set(ms, (s = new Sweeper(ms)));
  return s;
}

/**
 * Resolves when `socket` drained its write queue; rejects when it closed first (the peer is
 * gone: the response cannot be finished).
 */
export function drained(socket: NodeJS.EventEmitter & { readonly destroyed: boolean }): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      if (socket.destroyed) reject(tsgiError("TSGI_ERR_APP_CLIENT_GONE", { reason: "connection closed" }));
      else resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}

/**
 * Cuts an HTTP response so that the client cannot take it for a complete one (DESIGN §1): a
 * reset, not a FIN (a FIN is how a response without a length ends). The bytes already
 * written go first — node:http holds a response's first writes corked until the next tick,
 * and a reset that overtook them would leave the client an empty reply — so it waits for
 * the kernel to take them and for the peer to read them.
 */
export function cutConnection(socket: net.Socket): void {
  if (socket.destroyed) return;
  socket.pause();
  socket.write(Buffer.alloc(0), () => {
    const timer = setTimeout(() => socket.resetAndDestroy(), CUT_DELAY_MS);
    socket.once("close", () => clearTimeout(timer));
  });
}
const CUT_DELAY_MS = 50;

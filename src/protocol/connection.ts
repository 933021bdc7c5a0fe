// What the protocol servers share besides decoding: the log lines about a connection, the
// client-gone abort, the request deadlines, CONTENT_LENGTH, and for the HTTP listener
// (node:http) its drain wait and its cut. The native listeners' own connection
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

/** The armed deadlines of one timeout value, oldest first: a list through the deadlines themselves. */
interface Armed {
  head: Deadline | null;
  tail: Deadline | null;
  sweep: NodeJS.Timeout | null;
}

/**
 * Calls `expire()` — `onExpire`, or a subclass's own — when armed for `ms` without being
 * disarmed (0 = never): the request-timeout of a request. Armed and disarmed once per request, so no timer of its own: one sweep per
 * timeout value looks at the armed ones (expiry is up to a quarter of `ms`, at most 250 ms,
 * late). They are armed for the same `ms` from a monotonic now, so arming order is expiry
 * order: the armed ones are a list through the deadlines, oldest first, and a sweep looks at
 * its head only. Arming and disarming link and unlink: nothing allocated, where a Set of the
 * armed ones grew and shrank its table as requests came and went (~275 bytes a request).
 */
export class Deadline {
  static readonly #lists = new Map<number, Armed>();
  readonly #list: Armed | null;
  #at = 0; // performance.now() it fires at; 0: not armed
  #prev: Deadline | null = null;
  #next: Deadline | null = null;

  constructor(
    readonly ms: number,
    readonly onExpire: (() => void) | null = null,
  ) {
    this.#list = ms > 0 ? Deadline.#listOf(ms) : null;
  }

  /** What expiring does: `onExpire`, unless a subclass (one object a request, no closure) says otherwise. */
  protected expire(): void {
    this.onExpire?.();
  }

  /**
   * Armed for `ms` from `now` (again, when it was armed already): performance.now(), or a
   * time the caller took just before (never older than another deadline's arming: arming
   * order must stay expiry order).
   */
  arm(now = performance.now()): void {
    const list = this.#list;
    if (list === null) return;
    if (this.#at !== 0) this.#unlink(list);
    this.#at = now + this.ms;
    this.#prev = list.tail;
    if (list.tail) list.tail.#next = this;
    else list.head = this;
    list.tail = this;
    if (list.sweep) return;
    list.sweep = setInterval(() => Deadline.#sweep(list), Math.max(10, Math.min(250, this.ms / 4)));
    list.sweep.unref();
  }

  disarm(): void {
    if (this.#at === 0) return;
    this.#at = 0;
    this.#unlink(this.#list!);
  }

  #unlink(list: Armed): void {
    if (this.#prev) this.#prev.#next = this.#next;
    else list.head = this.#next;
    if (this.#next) this.#next.#prev = this.#prev;
    else list.tail = this.#prev;
    this.#prev = this.#next = null;
  }

  // The sweep stops at a sweep that finds nothing armed, not when the last one is disarmed:
  // under load the list empties and fills between requests, and a timer per request is what
  // this class exists to avoid.
  static #sweep(list: Armed): void {
    const now = performance.now();
    for (let d = list.head; d !== null && d.#at <= now; d = list.head) {
      d.disarm();
      d.expire();
    }
    if (list.head === null && list.sweep) {
      clearInterval(list.sweep);
      list.sweep = null;
    }
  }

  // The list of the last timeout value asked for is kept at hand: a site's requests ask for
  // the same one each time, and a Map lookup a request showed in the profile.
  static #lastMs = -1;
  static #last: Armed | null = null;

  static #listOf(ms: number): Armed {
    if (ms === Deadline.#lastMs) return Deadline.#last!;
    let list = Deadline.#lists.get(ms);
    if (!list) Deadline.#lists.set(ms, (list = { head: null, tail: null, sweep: null }));
    Deadline.#lastMs = ms;
    Deadline.#last = list;
    return list;
  }
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

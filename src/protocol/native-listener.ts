// What the two servers on native listeners (uwsgi-native.ts, fastcgi-native.ts) share: the
// requests open on each native connection, what happens to them when the connection goes
// (closed, malformed, cut), the DRAIN that lets a waiting response write again, and the sink
// that turns the gateway's sends into one native `respond` call each.

import type { ErrorCode } from "../errors.ts";
import { RequestAbort } from "../gateway/abort.ts";
import { absentWhenEmpty, addParam, newParams, type Params } from "../gateway/environ.ts";
import type { TsgiInput } from "../gateway/input.ts";
import type { ResponseSink } from "../gateway/request.ts";
import type { HeadCache, ResponseHead } from "../gateway/start-response.ts";
import { EVENT, binding, codecErrorOf } from "../native.ts";
import { clientGone, codecErrorLine, headerTimeoutLine, refusedLine } from "./connection.ts";
import type { RequestMeta, Site } from "./site.ts";

/** A listening socket served by the native bridge, as the worker drives it. */
export interface NativeListener {
  /**
   * Stop accepting; accepted connections are served, idle ones closed (with `keepIdle`, after
   * their next response or a later close(); with `handoff` too, FastCGI persistent connections
   * between requests are handed off instead, see serveFastCgi's `onHandoff`).
   */
  close(keepIdle?: boolean, handoff?: boolean): void;
  /** Serve a connected socket another worker handed off; false when this listener cannot (stopped, full). */
  adopt(fd: number): boolean;
  /** Stop (true) or resume accepting new connections; false when accepting could not resume. */
  pauseAccept(paused: boolean): boolean;
  readonly connections: number;
}

/** A request open on a native connection, as OpenRequests keeps it (its NativeSink). */
export interface NativeRequest {
  readonly conn: number;
  readonly id: number;
  readonly input: TsgiInput;
  readonly controller: RequestAbort;
  /** The response ended (or was cut, or the connection is gone): nothing more is sent. */
  ended: boolean;
  drain: { resolve: () => void; reject: (err: Error) => void } | null;
  /** Bytes of the response still queued when the connection went (never sent). */
  unsentBytes: number;
}

/** The requests open on one connection: one almost always; `more` only when FastCGI multiplexes. */
interface OnConn {
  one: NativeRequest | null;
  more: NativeRequest[] | null;
  /** The connection serves more requests than one (FastCGI keep-conn): its entry stays between them. */
  readonly persistent: boolean;
}

/**
 * Open requests by connection and request id (uwsgi: one request, id 0, per connection). The
 * entry of a persistent connection (FastCGI keep-conn) stays when its last request ends, and
 * the next request finds it: a delete and a set a request
 * made the Map rebuild its table every few dozen requests (~150 bytes a request), and an
 * array emptied and filled again got a new backing store each time (V8 drops it at length
 * 0). Such entries of connections gone are swept out when the Map has grown to twice what
 * the last sweep left (at least SWEEP_AT). Any other connection's entry goes with its last
 * request: with a connection per request (uwsgi, FastCGI without keep-conn), entries kept
 * for connections gone had a worker's RSS grow by ~30 MiB in 15 s of W1.
 */
export class OpenRequests {
  readonly #byConn = new Map<number, OnConn>();
  #sweepAt = SWEEP_AT;

  /** `persistent`: the connection is kept for more requests (FastCGI's FCGI_KEEP_CONN). */
  add(req: NativeRequest, persistent: boolean): void {
    const onConn = this.#byConn.get(req.conn);
    if (onConn === undefined) {
      if (persistent && this.#byConn.size >= this.#sweepAt) this.#sweep();
      this.#byConn.set(req.conn, { one: req, more: null, persistent });
    } else if (onConn.one === null) {
      onConn.one = req;
    } else {
      (onConn.more ??= []).push(req);
    }
  }

  /** Connections with an entry: those with a request open, and persistent ones not yet swept. */
  get entries(): number {
    return this.#byConn.size;
  }

  get(conn: number, id: number): NativeRequest | undefined {
    const onConn = this.#byConn.get(conn);
    if (onConn === undefined) return undefined;
    if (onConn.one !== null && onConn.one.id === id) return onConn.one;
    if (onConn.more !== null) for (const req of onConn.more) if (req.id === id) return req;
    return undefined;
  }

  /** The request is over for the protocol: its response ended or it was aborted. */
  close(req: NativeRequest): void {
    req.ended = true;
    const onConn = this.#byConn.get(req.conn);
    if (onConn === undefined) return;
    if (onConn.one === req) onConn.one = null;
    else if (onConn.more !== null) {
      const at = onConn.more.indexOf(req);
      if (at >= 0) onConn.more.splice(at, 1);
    }
    if (!onConn.persistent && onConn.one === null && (onConn.more === null || onConn.more.length === 0)) this.#byConn.delete(req.conn);
  }

  #sweep(): void {
    for (const [conn, onConn] of this.#byConn) {
      if (onConn.one === null && (onConn.more === null || onConn.more.length === 0)) this.#byConn.delete(conn);
    }
    this.#sweepAt = Math.max(SWEEP_AT, 2 * this.#byConn.size);
  }

  /** The requests open on `conn`, in no particular order (a copy). */
  #all(onConn: OnConn): NativeRequest[] {
    const all = onConn.more === null ? [] : [...onConn.more];
    if (onConn.one !== null) all.push(onConn.one);
    return all;
  }

  /** The request is gone (FCGI_ABORT_REQUEST): the application and its input are told. */
  abort(req: NativeRequest, reason: string): void {
    if (req.ended) return;
    this.close(req);
    const err = clientGone(req.controller, req.input, reason);
    req.drain?.reject(err);
  }

  /** The connection is gone (with `unsent` bytes still queued on it): every request open on it is aborted. */
  abortConnection(conn: number, reason: string, unsent = 0): void {
    const onConn = this.#byConn.get(conn);
    if (onConn === undefined) return;
    this.#byConn.delete(conn);
    for (const req of this.#all(onConn)) {
      // FastCGI may multiplex: the queued bytes are the last writer's, but nginx and Apache
      // send one request at a time, and the count is only the access log's.
      req.unsentBytes = unsent;
      this.abort(req, reason);
    }
  }

  /** DRAIN: the responses waiting on the connection may write again. */
  drained(conn: number): void {
    const onConn = this.#byConn.get(conn);
    if (onConn === undefined) return;
    // A resolve runs nothing now (its waiter resumes in a microtask): no copy needed.
    if (onConn.one !== null) wake(onConn.one);
    if (onConn.more !== null) for (const req of onConn.more) wake(req);
  }
}
const SWEEP_AT = 1024;

function wake(req: NativeRequest): void {
  const drain = req.drain;
  req.drain = null;
  drain?.resolve();
}

/** A protocol as its NativeSinks write it (one object a protocol, not a request). */
export interface SinkWire {
  readonly protocol: "fastcgi" | "uwsgi";
  /** What the head's first line starts with, before the status: "Status: " (CGI) or "HTTP/1.1 ". */
  readonly headPrefix: string;
  /** The last head made on this protocol's connections, given again when the next is the same. */
  readonly heads: HeadCache;
}

/**
 * A request on a native connection, from its params to its response's end: the gateway's
 * sink (`respond` writes the head — a byte string, on the first send —, a chunk and the end
 * in one native call and says whether more may be written now; `cut` ends the connection's
 * response without a clean end), what OpenRequests keeps of it, and its RequestMeta (the
 * peer asked of the connection only when a log line needs it). One object a request and
 * one class a protocol, where a request record, a peer object and a literal of closures for
 * the sink were nine.
 */
export abstract class NativeSink<Server extends { cut(connId: number): void }> implements ResponseSink, NativeRequest, RequestMeta {
  readonly controller = new RequestAbort();
  ended = false;
  drain: NativeRequest["drain"] = null;
  unsentBytes = 0;

  constructor(
    readonly requests: OpenRequests,
    readonly native: Server,
    readonly conn: number,
    readonly id: number,
    readonly input: TsgiInput,
    readonly peerOf: (conn: number) => string,
    persistent: boolean,
  ) {
    requests.add(this, persistent);
  }

  /** What the protocol's sinks share: its name, its head's first line, the last head it made. */
  protected abstract get wire(): SinkWire;

  get protocol(): "fastcgi" | "uwsgi" {
    return this.wire.protocol;
  }

  get peer(): string {
    return this.peerOf(this.conn);
  }
  protected abstract respond(head: string | null, chunk: Uint8Array | null, last: boolean, status: number): boolean;

  send(head: ResponseHead, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    if (this.ended) return undefined;
    let text: string | null = null;
    if (!head.sent) {
      head.sent = true;
      const wire = this.wire;
      text = head.serialize(wire.headPrefix, wire.heads);
    }
    const ok = this.respond(text, chunk, last, last ? head.code || 0 : 0);
    if (last) {
      this.requests.close(this);
      return undefined;
    }
    if (ok) return undefined;
    return new Promise<void>((resolve, reject) => (this.drain = { resolve, reject }));
  }

  abort(): void {
    if (this.ended) return;
    this.requests.close(this);
    this.native.cut(this.conn);
  }

  unsent(): number {
    return this.unsentBytes;
  }
}

/**
 * The names a listener's packed params number, each as a property key already (a key V8
 * has internalized: storing under it needs no string-table lookup, as a name fresh from the
 * wire does).
 */
const PARAM_NAMES: readonly string[] = binding.paramNames.map((name) => Object.keys({ [name]: 0 })[0]!);
const PACK = binding.paramPack;
const ABSENT_WHEN_EMPTY: readonly boolean[] = PARAM_NAMES.map(absentWhenEmpty);

/**
 * Stores the value of the table's name number `id`: a switch with one store written out per
 * name, made once from the table. A store under a name written out may give the object a
 * new shape (V8 keeps those shapes and finds them again for the next request), where a
 * store under a computed key (`params[name]`) turns it into a dictionary past about a dozen
 * properties: the environ of a typical nginx request then cost 2.5x the time to build and
 * ~1.5 KiB more (the dictionary, rebuilt as it grew). Without code made from strings (node
 * --disallow-code-generation-from-strings) the computed store serves.
 */
const storeKnown: (params: Params, id: number, value: string) => void = (() => {
  if (!PARAM_NAMES.every((name) => /^[A-Z][A-Z0-9_]*$/.test(name))) throw new Error("tsgi: the native param names are not identifiers");
  try {
    const cases = PARAM_NAMES.map((name, id) => `case ${id}: params.${name} = value; return;`).join("\n");
    return new Function("params", "id", "value", `switch (id) {\n${cases}\n}`) as (params: Params, id: number, value: string) => void;
  } catch {
    return (params, id, value) => {
      params[PARAM_NAMES[id]!] = value;
    };
  }
})();

/**
 * The params of one request as a native listener packs them (native/param_pack.h): `packed`
 * holds the values, and the names not in PARAM_NAMES, back to back; `layout` from `at` says
 * how many pairs, whether a name came twice, then for each pair its name's number or -1 and
 * where its name and its value end. The layout is the listener's shared array: read now,
 * during the callback that brought it.
 */
export function unpackParams(packed: string, layout: Int32Array, at: number, abort: RequestAbort): Params {
  const params = newParams(abort);
  const fresh = (layout[at + PACK.FLAGS]! & PACK.REPEATED) === 0;
  let pos = 0;
  for (let k = at + PACK.HEAD, end = k + 3 * layout[at + PACK.PAIRS]!; k < end; k += 3) {
    const id = layout[k]!;
    const nameEnd = layout[k + 1]!;
    const valueEnd = layout[k + 2]!;
    if (id < 0 || !fresh) {
      addParam(params, id >= 0 ? PARAM_NAMES[id]! : packed.slice(pos, nameEnd), packed.slice(nameEnd, valueEnd), fresh);
    } else if (valueEnd > nameEnd || !ABSENT_WHEN_EMPTY[id]) {
      // addParam's rules for a table name: none starts with "tsgi." (they are identifiers);
      // an empty one of absentWhenEmpty's is absent.
      storeKnown(params, id, packed.slice(nameEnd, valueEnd));
    }
    pos = valueEnd;
  }
  return params;
}

/** Whether a packed FastCGI request keeps its connection for more (FCGI_KEEP_CONN). */
export function packedKeepConn(layout: Int32Array, at: number): boolean {
  return (layout[at + PACK.FLAGS]! & PACK.KEEP_CONN) !== 0;
}

/** The role of a packed FastCGI request (unpackParams). */
export function packedRole(layout: Int32Array, at: number): number {
  return layout[at + PACK.ROLE]!;
}

/**
 * CONTENT_LENGTH of a packed FastCGI request (the last one, as the environ keeps it): null
 * when absent, empty or not 1 to 16 digits — then the body ends with its stream.
 */
export function packedContentLength(layout: Int32Array, at: number): number | null {
  const high = layout[at + PACK.LENGTH_HIGH]!;
  return high < 0 ? null : high * 2 ** 32 + (layout[at + PACK.LENGTH_LOW]! >>> 0);
}

/** `length` bytes of `chunk` from `offset`: the chunk itself when that is all of it, else a view. */
export function slice(chunk: Buffer, offset: number, length: number): Buffer {
  return offset === 0 && length === chunk.length ? chunk : chunk.subarray(offset, offset + length);
}

/**
 * The events both listeners report alike, at `ev[i]`: a peer refused at accept (not in
 * `allow`), a malformed stream (logged with the peer; the connection is gone), a header
 * timeout (logged unless it closed a persistent connection idle between requests), the peer
 * gone, and DRAIN. False for any other kind.
 */
export function connectionEvent(
  site: Site,
  requests: OpenRequests,
  conn: number,
  ev: Float64Array,
  i: number,
  objects: unknown[] | undefined,
  peer: string | undefined,
  protocol: "fastcgi" | "uwsgi",
): boolean {
  const timeoutCode: ErrorCode = protocol === "fastcgi" ? "TSGI_ERR_FCGI_HEADER_TIMEOUT" : "TSGI_ERR_UWSGI_HEADER_TIMEOUT";
  switch (ev[i]) {
    case binding.serverEvents.REFUSED: {
      site.log.warn(refusedLine(peer ?? "a peer", `${protocol} ${objects![ev[i + 2]!] as string}`, ev[i + 1]!));
      return true;
    }
    case EVENT.ERROR:
      site.log.error(codecErrorLine(peer, codecErrorOf(ev[i + 1]!, ev[i + 2]!, objects![ev[i + 3]!] as string)));
      requests.abortConnection(conn, "malformed packet");
      return true;
    case binding.serverEvents.TIMEOUT:
      if (ev[i + 1] !== 1) site.log.info(headerTimeoutLine(peer, timeoutCode, site.headerTimeout));
      return true;
    case binding.serverEvents.CLOSE:
      requests.abortConnection(conn, "connection closed", ev[i + 1]!);
      return true;
    case binding.serverEvents.DRAIN:
      requests.drained(conn);
      return true;
    default:
      return false;
  }
}

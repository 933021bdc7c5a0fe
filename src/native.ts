// The one place that finds and loads the native bridge (native/binding), checks the
// arguments JavaScript hands it (the C++ side trusts them, better-sqlite3's split) and gives
// its results TypeScript types. The decoders' event layout below is a cross-language contract
// with native/binding/decoders.cc.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { nativeStatusCode, tsgiError, type ErrorCode } from "./errors.ts";
import { ROOT as root } from "./paths.ts";

/**
 * Where the addon may be: TSGI_NATIVE (an ASan or debug build) first, then node-gyp's and
 * cmake-js's outputs (a local build wins), then the prebuild the package carries for this
 * platform (prebuilds/linux-x64/, scripts/prebuild.mjs), as node-gyp-build finds it.
 */
function candidates(require: NodeJS.Require): string[] {
  const env = process.env.TSGI_NATIVE;
  let prebuilt: string[] = [];
  try {
    prebuilt = [(require("node-gyp-build") as { resolve(dir: string): string }).resolve(root)];
  } catch {
    // No prebuild for this platform (or node-gyp-build absent): the builds above or nothing.
  }
  return [
    ...(env ? [env] : []),
    join(root, "build", "Release", "tsgi.node"),
    join(root, "build-cmake", "Release", "tsgi.node"),
    join(root, "build-cmake", "tsgi.node"),
    join(root, "build", "Debug", "tsgi.node"),
    ...prebuilt,
  ];
}

interface RawDecoder {
  push(chunk: Uint8Array): RawEvents;
  end(): RawEvents;
}
interface RawFastCgiDecoder extends RawDecoder {
  release(id: number): void;
  readonly activeRequests: number;
}
interface Binding {
  events: Record<EventName, number>;
  statuses: string[];
  limits: {
    defaultMaxParams: number;
    maxParamsCeiling: number;
    maxNameBytes: number;
    defaultMaxRequests: number;
    maxRequestsCeiling: number;
    maxRecordContent: number;
  };
  FastCgiDecoder: new (maxParams: number, maxRequests: number) => RawFastCgiDecoder;
  UwsgiDecoder: new (maxParams: number) => RawDecoder;
  fcgiEncodeStream(type: number, id: number, data: Uint8Array | string, maxContent: number): Buffer;
  fcgiEncodeStreamEnd(type: number, id: number): Buffer;
  fcgiEncodeEndRequest(id: number, appStatus: number, protocolStatus: number): Buffer;
  fcgiEncodeBeginRequest(id: number, role: number, flags: number): Buffer;
  fcgiEncodeAbortRequest(id: number): Buffer;
  fcgiEncodeUnknownType(type: number): Buffer;
  fcgiEncodePairs(pairs: string[]): Buffer;
  fcgiFrameResponse(id: number, data: Uint8Array | string | null, end: boolean, appStatus: number, head?: string): Buffer;
  uwsgiEncodeRequest(vars: string[], modifier1: number, modifier2: number): Buffer;
  UwsgiServer: NativeListenerClass<NativeUwsgiServer, [maxParams: number]>;
  FastCgiServer: NativeListenerClass<NativeFastCgiServer, [maxParams: number, maxRequests: number]>;
  serverEvents: { CLOSE: number; DRAIN: number; TIMEOUT: number; UNKNOWN_ROLE: number; CHUNK: number; REFUSED: number; HANDOFF: number };
  /** The names the listeners' packed params number (native/param_pack.h), and the layout's slots. */
  paramNames: string[];
  paramPack: { HEAD: number; PAIRS: number; ROLE: number; FLAGS: number; LENGTH_HIGH: number; LENGTH_LOW: number; REPEATED: number; KEEP_CONN: number };
  /** Master side: bound, listening sockets that nothing accepts on (native/binding/listen.cc). */
  bindTcp(host: string, port: number, backlog: number): { fd: number; port: number };
  bindUnix(path: string, backlog: number): { fd: number };
  closeFd(fd: number): void;
  /** A connected socket: 1 when a byte waits, 0 when the peer closed, -1 when nothing waits yet (or an error). */
  peek(fd: number): number;
  /** `ondemand`: calls back once per start() when a connection waits on a listening socket (never accepts). */
  ReadableWatch: new (fd: number, onReadable: (status: number) => void) => ReadableWatch;
  /** glibc's M_TRIM_THRESHOLD (native/binding/process.cc); false where it does not apply. */
  mallocTrimThreshold(bytes: number): boolean;
  /** One datagram to a unix datagram socket (`@name`: abstract); null, or the reason it was not sent (native/binding/process.cc). */
  notify(path: string, message: string): string | null;
  /** What an inherited descriptor is (and marks it close-on-exec); `error` when it is none (not open, not a socket). */
  socketAddress(fd: number): InheritedSocketAddress;
}

export interface ReadableWatch {
  start(): void;
  stop(): void;
  close(): void;
}

export type InheritedSocketAddress =
  | { error: string }
  | { listening: boolean; stream: boolean; family: "unix"; path: string }
  | { listening: boolean; stream: boolean; family: "inet" | "inet6"; host: string; port: number }
  | { listening: boolean; stream: boolean; family: "other" };

/**
 * Called once per read (or timeout, drain, close) of connection `connId` with its events:
 * `count` slots of `events`, four an event as in a decoder's push, except that a slot
 * carrying a string or a Buffer holds its index in `objects`. `peer` comes with ERROR,
 * TIMEOUT and REFUSED (connection 0); `layouts` holds the packed params of this call's PARAMS
 * and REQUEST events (native/param_pack.h). `events` and `layouts` are the listener's own,
 * reused by its next call: valid during this one.
 */
export type ServerEventHandler = (
  connId: number,
  events: Float64Array,
  count: number,
  objects: unknown[] | undefined,
  peer: string | undefined,
  layouts: Int32Array,
) => void;

/** A native listener's constructor: the listening fd and the common settings, then the protocol's limits. */
type NativeListenerClass<T, Limits extends unknown[]> = new (
  fd: number,
  isPipe: boolean,
  headerTimeoutMs: number,
  maxConnections: number,
  onEvents: ServerEventHandler,
  /** The TCP peers that may connect, packed (src/daemon/allow.ts); null: every peer. */
  allow: Uint8Array | null,
  ...limits: Limits
) => T;

/** What both native listeners (native/binding/stream_server.h) do with a connection. */
interface NativeListenerBase {
  /** End the connection's response without a clean end (a reset on TCP, after what was written). */
  cut(connId: number): void;
  /** Stop or resume reading the connection (request-body backpressure). */
  pause(connId: number, paused: boolean): void;
  peer(connId: number): string;
  /**
   * Stop accepting; connections with no request on them close, the others after their last
   * response. `keepIdle`: idle persistent connections stay open until their next response (or
   * a later close()). `handoff` too: a persistent connection between requests is handed to
   * JavaScript (a HANDOFF event with a duplicate of its socket) instead of being closed.
   */
  close(keepIdle?: boolean, handoff?: boolean): void;
  /** Serve a connected socket handed off by another worker (a duplicate is taken: the caller closes `fd`); false when stopped or full. */
  adopt(fd: number): boolean;
  /** Stop or resume accepting (the listening socket stays open); false when it could not resume. */
  pauseAccept(paused: boolean): boolean;
  readonly connections: number;
}

/** A uwsgi listener whose connections the native bridge owns (native/binding/uwsgi_server.cc). */
export interface NativeUwsgiServer extends NativeListenerBase {
  /** Head (byte string), body, end: false means wait for a DRAIN event before writing more. */
  respond(connId: number, head: string | null, body: Uint8Array | string | null, end: boolean): boolean;
}

/** A FastCGI listener whose connections the native bridge owns (native/binding/fastcgi_server.cc). */
export interface NativeFastCgiServer extends NativeListenerBase {
  /** FCGI_STDOUT of request `requestId`; with `end`, FCGI_END_REQUEST carrying `appStatus`. False: wait for DRAIN. */
  respond(connId: number, requestId: number, head: string | null, body: Uint8Array | string | null, end: boolean, appStatus: number): boolean;
}

function load(): Binding {
  const require = createRequire(import.meta.url);
  const failed: string[] = [];
  for (const path of candidates(require)) {
    if (!existsSync(path)) continue;
    try {
      return require(path) as Binding;
    } catch (err) {
      failed.push(`${path}: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  throw tsgiError("TSGI_ERR_NATIVE_LOAD", { reason: failed.length > 0 ? failed.join("; ") : `no build/Release/tsgi.node and no prebuilds/${process.platform}-${process.arch}/ in ${root}` });
}

export const binding: Binding = load();

/** The common arguments of a native listener, checked before the binding trusts them. */
export function checkListener(fd: number, headerTimeoutMs: number, maxConnections: number, maxParams: number, allow: Uint8Array | null): void {
  checkInt("fd", fd, 0, 0x7fffffff);
  // 17 bytes a network (native/binding/allow_list.h): 16 of address, a prefix length ≤ 128.
  if (allow !== null) {
    if (!(allow instanceof Uint8Array) || allow.length % 17 !== 0) throw new TypeError("allow must be a Uint8Array of 17-byte networks, or null");
    for (let i = 16; i < allow.length; i += 17) if (allow[i]! > 128) throw new RangeError(`allow: prefix length ${allow[i]} over 128`);
  }
  checkInt("headerTimeoutMs", headerTimeoutMs, 0, 2 ** 31 - 1);
  checkInt("maxConnections", maxConnections, 0, 2 ** 31 - 1);
  checkInt("maxParams", maxParams, 1, LIMITS.maxParamsCeiling);
}

export type EventName =
  | "BEGIN" | "PARAMS" | "STDIN" | "STDIN_END" | "DATA" | "DATA_END" | "ABORT" | "GET_VALUES"
  | "UNKNOWN_TYPE" | "OVERLOADED" | "REQUEST" | "BODY" | "BODY_END" | "ERROR";

/**
 * Event kinds as the binding numbers them. A push returns a flat array, four slots an event:
 *
 * | kind | [1] | [2] | [3] |
 * |---|---|---|---|
 * | BEGIN | id | role | flags |
 * | PARAMS | id | string[] (name0, value0, …) | 0 |
 * | STDIN, DATA | id | offset in the pushed chunk | length |
 * | STDIN_END, DATA_END, ABORT, OVERLOADED | id | 0 | 0 |
 * | GET_VALUES | 0 | string[] | 0 |
 * | UNKNOWN_TYPE | 0 | record type | 0 |
 * | REQUEST | modifier1 + 256 × modifier2 | string[] | contentLength |
 * | BODY | 0 | offset in the pushed chunk | length |
 * | BODY_END | 0 | 0 | 0 |
 * | ERROR | index into `statuses` | stream offset | reason |
 *
 * Strings are byte strings (latin1: one char per byte). Body offsets index the chunk given to
 * that push, so `chunk.subarray(off, off + len)` is the body without a copy.
 *
 * The native listeners (`FastCgiServer`, `UwsgiServer`) use the same kinds with these
 * differences (ServerEventHandler): the slots are numbers, and a string or Buffer an event
 * carries is in the callback's `objects`, its slot holding the index; PARAMS and REQUEST carry
 * their params packed, [2] a string and [3] where their layout starts in the callback's
 * `layouts` (src/protocol/native-listener.ts unpackParams; FastCGI's role and CONTENT_LENGTH
 * are in the layout, uwsgi's body length in [1]); there is no BEGIN (a request appears with
 * its params) and no GET_VALUES or UNKNOWN_TYPE (answered natively); and the server kinds of
 * `serverEvents` are added: CHUNK ([2] a Buffer holding the read, [3] its length) comes
 * before the first body event of a read, whose offsets index it; CLOSE ([1] the bytes still
 * queued for the connection, never sent), DRAIN, TIMEOUT ([1] 1 when a persistent connection
 * idle between requests was closed), UNKNOWN_ROLE ([1] id, [2] role) and REFUSED (connection
 * 0: a TCP peer not in `allow` closed at accept; [1] how many more since the last one, [2]
 * the listener's "HOST:PORT").
 */
export const EVENT = binding.events;
export type RawEvents = (number | string | string[])[];
export const EVENT_WIDTH = 4;
export const LIMITS = binding.limits;

export interface CodecError {
  /** The native status name, e.g. `FCGI_VERSION`. */
  status: string;
  code: ErrorCode;
  /** Absolute byte offset in the connection's stream. */
  offset: number;
  reason: string;
}

/** The error at `events[i]` (an ERROR event) as a CodecError. */
export function codecError(events: RawEvents, i: number): CodecError {
  return codecErrorOf(events[i + 1] as number, events[i + 2] as number, events[i + 3] as string);
}

/** An ERROR event's error from its slots: the index into `statuses`, the stream offset, the reason. */
export function codecErrorOf(statusIndex: number, offset: number, reason: string): CodecError {
  const status = binding.statuses[statusIndex]!;
  return { status, code: nativeStatusCode(status), offset, reason };
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw tsgiError("TSGI_ERR_NATIVE_ARGUMENT", { reason: `${name} must be an integer from ${min} to ${max}, got ${value}` });
  }
  return value;
}

function checkBytes(name: string, value: unknown): void {
  if (!(value instanceof Uint8Array) && typeof value !== "string") {
    throw tsgiError("TSGI_ERR_NATIVE_ARGUMENT", { reason: `${name} must be a Uint8Array or a string` });
  }
}

// Byte strings carry one byte per char: a char above U+00FF cannot be sent as-is.
const NOT_LATIN1 = /[^\x00-\xff]/;
function checkByteStrings(name: string, list: string[]): void {
  if (!Array.isArray(list) || list.length % 2 !== 0) {
    throw tsgiError("TSGI_ERR_NATIVE_ARGUMENT", { reason: `${name} must be a flat [name, value, …] array` });
  }
  for (const s of list) {
    if (typeof s !== "string" || NOT_LATIN1.test(s)) {
      throw tsgiError("TSGI_ERR_NATIVE_ARGUMENT", { reason: `${name} holds a non-string or a char above U+00FF: ${JSON.stringify(s)}` });
    }
  }
}

export interface FastCgiLimits {
  /** Bytes of one request's params stream (`max-params`). */
  maxParams?: number;
  /** Requests active at once on one connection (`FCGI_MAX_REQS`). */
  maxRequests?: number;
}

export type FastCgiDecoder = RawFastCgiDecoder;
export type UwsgiDecoder = RawDecoder;

export function createFastCgiDecoder(limits: FastCgiLimits = {}): FastCgiDecoder {
  const maxParams = checkInt("maxParams", limits.maxParams ?? LIMITS.defaultMaxParams, 1, LIMITS.maxParamsCeiling);
  const maxRequests = checkInt("maxRequests", limits.maxRequests ?? LIMITS.defaultMaxRequests, 1, LIMITS.maxRequestsCeiling);
  return new binding.FastCgiDecoder(maxParams, maxRequests);
}

export function createUwsgiDecoder(limits: { maxParams?: number } = {}): UwsgiDecoder {
  const maxParams = checkInt("maxParams", limits.maxParams ?? LIMITS.defaultMaxParams, 1, LIMITS.maxParamsCeiling);
  return new binding.UwsgiDecoder(maxParams);
}

/** FastCGI encoders (FastCGI 1.0 §3.3, §5, §8). Strings given as content are sent as UTF-8. */
export const fcgi = {
  /** Content of a stream type in records of at most `maxContent` bytes, padded to 8; empty content gives an empty buffer. */
  stream(type: number, id: number, data: Uint8Array | string, maxContent: number = LIMITS.maxRecordContent): Buffer {
    checkInt("type", type, 0, 255);
    checkInt("id", id, 0, 0xffff);
    checkBytes("data", data);
    checkInt("maxContent", maxContent, 8, 0xffff);
    return binding.fcgiEncodeStream(type, id, data, maxContent);
  },
  streamEnd(type: number, id: number): Buffer {
    return binding.fcgiEncodeStreamEnd(checkInt("type", type, 0, 255), checkInt("id", id, 0, 0xffff));
  },
  endRequest(id: number, appStatus: number, protocolStatus: number): Buffer {
    return binding.fcgiEncodeEndRequest(
      checkInt("id", id, 0, 0xffff),
      checkInt("appStatus", appStatus, 0, 0xffffffff),
      checkInt("protocolStatus", protocolStatus, 0, 255),
    );
  },
  beginRequest(id: number, role: number, flags: number): Buffer {
    return binding.fcgiEncodeBeginRequest(checkInt("id", id, 0, 0xffff), checkInt("role", role, 0, 0xffff), checkInt("flags", flags, 0, 255));
  },
  abortRequest(id: number): Buffer {
    return binding.fcgiEncodeAbortRequest(checkInt("id", id, 0, 0xffff));
  },
  unknownType(type: number): Buffer {
    return binding.fcgiEncodeUnknownType(checkInt("type", type, 0, 255));
  },
  /** Name-value pairs (§3.4) from byte strings [name0, value0, …], without a record header. */
  pairs(pairs: string[]): Buffer {
    checkByteStrings("pairs", pairs);
    return binding.fcgiEncodePairs(pairs);
  },
  /**
   * The hot path of a response: `data` as STDOUT records and, when `end`, the empty STDOUT
   * and FCGI_END_REQUEST(appStatus, FCGI_REQUEST_COMPLETE), in one buffer; `head`, a byte
   * string, goes first in the same records. Arguments are
   * trusted: the protocol server passes them straight from its own state.
   */
  frameResponse(id: number, data: Uint8Array | string | null, end: boolean, appStatus: number, head?: string): Buffer {
    return binding.fcgiFrameResponse(id, data, end, appStatus, head);
  },
};

/** uwsgi encoder (clients and tests): the 4-byte header and the vars block. */
export const uwsgi = {
  request(vars: string[], modifier1 = 0, modifier2 = 0): Buffer {
    checkByteStrings("vars", vars);
    checkInt("modifier1", modifier1, 0, 255);
    checkInt("modifier2", modifier2, 0, 255);
    let size = 0;
    for (const s of vars) size += 2 + s.length;
    if (size > 0xffff) {
      throw tsgiError("TSGI_ERR_NATIVE_ARGUMENT", { reason: `uwsgi vars take ${size} bytes; datasize is 16-bit (65535 at most)` });
    }
    return binding.uwsgiEncodeRequest(vars, modifier1, modifier2);
  },
};

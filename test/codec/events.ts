// The decoders' event log as tests compare it: the native decoders (through src/native.ts)
// and the oracle (test/oracle/) both produce `Event[]`; `canonical` joins adjacent body
// chunks of the same request so that a log does not depend on how the stream was split.
// The rules behind every event are in native/README.md.

import {
  EVENT,
  EVENT_WIDTH,
  binding,
  createFastCgiDecoder,
  createUwsgiDecoder,
  type FastCgiLimits,
  type RawEvents,
} from "../../src/native.ts";

export type Event =
  | { type: "BEGIN"; id: number; role: number; flags: number }
  | { type: "OVERLOADED"; id: number }
  | { type: "PARAMS"; id: number; params: string[] }
  | { type: "STDIN" | "DATA"; id: number; data: Uint8Array }
  | { type: "STDIN_END" | "DATA_END" | "ABORT"; id: number }
  | { type: "GET_VALUES"; params: string[] }
  | { type: "UNKNOWN_TYPE"; recordType: number }
  | { type: "REQUEST"; modifier1: number; modifier2: number; vars: string[]; contentLength: number }
  | { type: "BODY"; data: Uint8Array }
  | { type: "BODY_END" }
  | { type: "ERROR"; status: string; offset: number; reason: string };

export type Protocol = "fastcgi" | "uwsgi";

export interface Limits extends FastCgiLimits {}

/** A decoder as the tests drive it: both native and oracle implement this. */
export interface EventDecoder {
  push(chunk: Uint8Array): Event[];
  end(): Event[];
  /** FastCGI only: the owner finished with request `id`. */
  release?(id: number): void;
}

const NAMES = Object.fromEntries(Object.entries(EVENT).map(([name, n]) => [n, name])) as Record<number, string>;

/** Converts one push's flat native array into events; body slices are copied so they outlive the chunk. */
export function fromRaw(raw: RawEvents, chunk: Uint8Array | null): Event[] {
  const out: Event[] = [];
  for (let i = 0; i < raw.length; i += EVENT_WIDTH) {
    const kind = NAMES[raw[i] as number];
    const a = raw[i + 1] as number;
    switch (kind) {
      case "BEGIN":
        out.push({ type: "BEGIN", id: a, role: raw[i + 2] as number, flags: raw[i + 3] as number });
        break;
      case "PARAMS":
        out.push({ type: "PARAMS", id: a, params: raw[i + 2] as string[] });
        break;
      case "STDIN":
      case "DATA":
      case "BODY": {
        const off = raw[i + 2] as number;
        const len = raw[i + 3] as number;
        const data = Uint8Array.prototype.slice.call(chunk!, off, off + len);
        out.push(kind === "BODY" ? { type: "BODY", data } : { type: kind, id: a, data });
        break;
      }
      case "STDIN_END":
      case "DATA_END":
      case "ABORT":
      case "OVERLOADED":
        out.push({ type: kind, id: a });
        break;
      case "GET_VALUES":
        out.push({ type: "GET_VALUES", params: raw[i + 2] as string[] });
        break;
      case "UNKNOWN_TYPE":
        out.push({ type: "UNKNOWN_TYPE", recordType: raw[i + 2] as number });
        break;
      case "REQUEST":
        out.push({
          type: "REQUEST",
          modifier1: a & 0xff,
          modifier2: a >> 8,
          vars: raw[i + 2] as string[],
          contentLength: raw[i + 3] as number,
        });
        break;
      case "BODY_END":
        out.push({ type: "BODY_END" });
        break;
      case "ERROR":
        out.push({
          type: "ERROR",
          status: binding.statuses[a]!,
          offset: raw[i + 2] as number,
          reason: raw[i + 3] as string,
        });
        break;
      default:
        throw new Error(`unknown native event kind ${String(raw[i])}`);
    }
  }
  return out;
}

export function nativeDecoder(protocol: Protocol, limits: Limits = {}): EventDecoder {
  if (protocol === "fastcgi") {
    const d = createFastCgiDecoder(limits);
    return {
      push: (chunk) => fromRaw(d.push(chunk), chunk),
      end: () => fromRaw(d.end(), null),
      release: (id) => d.release(id),
    };
  }
  const d = createUwsgiDecoder({ maxParams: limits.maxParams });
  return { push: (chunk) => fromRaw(d.push(chunk), chunk), end: () => fromRaw(d.end(), null) };
}

/**
 * Feeds `chunks` then ends the stream. Like a server, it releases a FastCGI request as soon
 * as its input is complete (STDIN_END), when `releaseOnStdinEnd` is set.
 */
export function decodeAll(decoder: EventDecoder, chunks: Iterable<Uint8Array>, releaseOnStdinEnd = false): Event[] {
  const log: Event[] = [];
  for (const chunk of chunks) {
    for (const ev of decoder.push(chunk)) {
      log.push(ev);
      if (releaseOnStdinEnd && ev.type === "STDIN_END") decoder.release?.(ev.id);
    }
    if (log.at(-1)?.type === "ERROR") return log;
  }
  log.push(...decoder.end());
  return log;
}

/**
 * The split-independent form of a log: adjacent STDIN/DATA/BODY chunks of one request joined,
 * data shown as hex, error reasons dropped (native and oracle may word them differently),
 * nothing after the first error.
 */
export function canonical(log: Event[]): unknown[] {
  // Runs of adjacent chunks are gathered first and joined once: byte-by-byte feeds of large
  // bodies would make pairwise joining quadratic.
  const joined: { ev: Event; parts?: Uint8Array[] }[] = [];
  for (const ev of log) {
    const prev = joined.at(-1);
    if (
      prev?.parts &&
      (ev.type === "STDIN" || ev.type === "DATA" || ev.type === "BODY") &&
      prev.ev.type === ev.type &&
      (ev.type === "BODY" || (prev.ev as { id: number }).id === (ev as { id: number }).id)
    ) {
      prev.parts.push(ev.data);
      continue;
    }
    joined.push("data" in ev ? { ev, parts: [ev.data] } : { ev });
    if (ev.type === "ERROR") break;
  }
  return joined.map(({ ev, parts }) => {
    if (parts) return { ...ev, data: Buffer.concat(parts).toString("hex") };
    if (ev.type === "ERROR") return { type: "ERROR", status: ev.status, offset: ev.offset };
    return ev;
  });
}

/** The stream whole, byte by byte, and cut at `count` sets of random points (seeded). */
export function splits(stream: Uint8Array, seed: number, count = 3): { name: string; chunks: Uint8Array[] }[] {
  const out = [
    { name: "whole", chunks: [stream] },
    { name: "byte by byte", chunks: Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1)) },
  ];
  let state = seed >>> 0 || 1;
  const rand = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x100000000;
  };
  for (let k = 0; k < count; k++) {
    const chunks: Uint8Array[] = [];
    let at = 0;
    while (at < stream.length) {
      const len = 1 + Math.floor(rand() * Math.min(stream.length - at, 1 + Math.floor(rand() * 64)));
      chunks.push(stream.subarray(at, at + len));
      at += len;
    }
    out.push({ name: `random split ${k} (seed ${seed})`, chunks });
  }
  return out;
}

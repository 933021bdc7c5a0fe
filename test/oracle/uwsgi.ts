// The uwsgi reference decoder and request encoder, for tests only: native/README.md's uwsgi
// contract written as plainly as possible (keep the bytes until the header and vars are all
// there, read them in one go, then count the body off) so the differential tests can hold the
// C++ codec to it.

import type { Event, EventDecoder, Limits } from "../codec/events.ts";

export const kDefaultMaxParams = 65536;
export const kMaxNameBytes = 8192;
const HEADER = 4;
const MAX_CONTENT_LENGTH = 2 ** 53 - 1;

type Vars =
  | { ok: true; vars: string[]; contentLength: number }
  | { ok: false; status: string; offset: number; reason: string };

/** The vars block at stream offsets [HEADER, HEADER + datasize), read pair by pair in order. */
export function parseVars(stream: Uint8Array, datasize: number): Vars {
  const end = HEADER + datasize;
  const vars: string[] = [];
  let contentLength: number | undefined;
  let at = HEADER;
  const malformed = (offset: number): Vars => ({ ok: false, status: "UWSGI_VARS_MALFORMED", offset, reason: "var runs past the block" });
  while (at < end) {
    const keyPrefix = at;
    if (at + 2 > end) return malformed(keyPrefix);
    const keySize = stream[at]! | (stream[at + 1]! << 8);
    // README: the key limit is checked before the value's length.
    if (keySize > kMaxNameBytes) return { ok: false, status: "UWSGI_NAME_TOO_LONG", offset: keyPrefix, reason: "key longer than 8192 bytes" };
    at += 2;
    if (at + keySize > end) return malformed(keyPrefix);
    const key = latin1(stream.subarray(at, at + keySize));
    at += keySize;
    const valuePrefix = at;
    if (at + 2 > end) return malformed(valuePrefix);
    const valueSize = stream[at]! | (stream[at + 1]! << 8);
    at += 2;
    if (at + valueSize > end) return malformed(valuePrefix);
    const value = latin1(stream.subarray(at, at + valueSize));
    at += valueSize;
    if (key === "CONTENT_LENGTH") {
      const bad = (reason: string): Vars => ({ ok: false, status: "UWSGI_CONTENT_LENGTH", offset: keyPrefix, reason });
      if (value !== "" && (!/^[0-9]{1,16}$/.test(value) || Number(value) > MAX_CONTENT_LENGTH)) return bad("CONTENT_LENGTH is not a length");
      // README: "an empty or absent CONTENT_LENGTH is 0"; a second one must give the same length.
      const length = value === "" ? 0 : Number(value);
      if (contentLength !== undefined && contentLength !== length) return bad("two different CONTENT_LENGTH values");
      contentLength = length;
    }
    vars.push(key, value);
  }
  return { ok: true, vars, contentLength: contentLength ?? 0 };
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("latin1");
}

export class UwsgiOracle implements EventDecoder {
  private readonly maxParams: number;
  /** The header and vars, kept until the REQUEST event is out; the body is counted, not kept. */
  private head: Uint8Array[] = [];
  private header: { modifier1: number; datasize: number; modifier2: number } | undefined;
  private received = 0;
  /** The body's stream offsets [start, end), once the REQUEST event is out. */
  private body: { start: number; end: number } | undefined;
  private bodyEnded = false;
  private error: Event | undefined;

  constructor(limits: Limits = {}) {
    this.maxParams = limits.maxParams ?? kDefaultMaxParams;
  }

  end(): Event[] {
    if (this.error) return [this.error];
    if (!this.bodyEnded) return [this.fail("UWSGI_TRUNCATED", this.received, "stream ends before the body does")];
    return [];
  }

  push(chunk: Uint8Array): Event[] {
    if (this.error) return [this.error];
    const chunkStart = this.received;
    this.received += chunk.length;
    const events: Event[] = [];

    if (!this.body) {
      this.head.push(chunk.slice());
      if (this.received < HEADER) return events;
      if (!this.header) {
        const h = Buffer.concat(this.head);
        this.header = { modifier1: h[0]!, datasize: h.readUInt16LE(1), modifier2: h[3]! };
        if (h[0] !== 0) return [this.fail("UWSGI_MODIFIER", 0, `modifier1 ${h[0]}`)];
        if (this.header.datasize > this.maxParams) return [this.fail("UWSGI_VARS_TOO_LARGE", 0, "vars over max-params")];
      }
      const { modifier1, datasize, modifier2 } = this.header;
      if (this.received < HEADER + datasize) return events;
      const parsed = parseVars(Buffer.concat(this.head), datasize);
      if (!parsed.ok) return [this.fail(parsed.status, parsed.offset, parsed.reason)];
      events.push({ type: "REQUEST", modifier1, modifier2, vars: parsed.vars, contentLength: parsed.contentLength });
      this.body = { start: HEADER + datasize, end: HEADER + datasize + parsed.contentLength };
      this.head = [];
      if (parsed.contentLength === 0) {
        this.bodyEnded = true;
        events.push({ type: "BODY_END" });
      }
    }

    const { start, end } = this.body;
    if (!this.bodyEnded) {
      const from = Math.max(chunkStart, start);
      const to = Math.min(this.received, end);
      if (to > from) events.push({ type: "BODY", data: chunk.slice(from - chunkStart, to - chunkStart) });
      if (this.received >= end) {
        this.bodyEnded = true;
        events.push({ type: "BODY_END" });
      }
    }
    if (this.received > end) events.push(this.fail("UWSGI_TRAILING_DATA", Math.max(chunkStart, end), "bytes after the body"));
    return events;
  }

  private fail(status: string, offset: number, reason: string): Event {
    this.error = { type: "ERROR", status, offset, reason };
    return this.error;
  }
}

/** The same bytes as `uwsgi.request` in src/native.ts: header, then each var as u16 LE size + latin1 bytes. */
export const uwsgiOracle = {
  request(vars: string[], modifier1 = 0, modifier2 = 0): Buffer {
    const parts: Buffer[] = [];
    for (const s of vars) {
      const bytes = Buffer.from(s, "latin1");
      const size = Buffer.alloc(2);
      size.writeUInt16LE(bytes.length);
      parts.push(size, bytes);
    }
    const block = Buffer.concat(parts);
    const header = Buffer.from([modifier1, block.length & 0xff, block.length >> 8, modifier2]);
    return Buffer.concat([header, block]);
  },
};

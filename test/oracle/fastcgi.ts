// The FastCGI reference decoder and encoders, for tests only: native/README.md's FastCGI
// contract written as plainly as possible (a byte buffer, one record at a time, the rule table
// in its own order) so the differential tests can hold the C++ codec to it. Speed is not a goal;
// the header rules cite their row of the README table.

import type { Event, EventDecoder, Limits } from "../codec/events.ts";

export const kDefaultMaxParams = 65536;
export const kDefaultMaxRequests = 100;
export const kMaxNameBytes = 8192;
export const kMaxRecordContent = 0xfff8;

export const FCGI_BEGIN_REQUEST = 1;
export const FCGI_ABORT_REQUEST = 2;
export const FCGI_END_REQUEST = 3;
export const FCGI_PARAMS = 4;
export const FCGI_STDIN = 5;
export const FCGI_STDOUT = 6;
export const FCGI_STDERR = 7;
export const FCGI_DATA = 8;
export const FCGI_GET_VALUES = 9;
export const FCGI_GET_VALUES_RESULT = 10;
export const FCGI_UNKNOWN_TYPE = 11;

const HEADER = 8;
const WRITTEN_BY_APPLICATIONS = new Set([FCGI_END_REQUEST, FCGI_STDOUT, FCGI_STDERR, FCGI_GET_VALUES_RESULT, FCGI_UNKNOWN_TYPE]);

interface Request {
  paramsDone: boolean;
  stdinDone: boolean;
  dataDone: boolean;
  params: Uint8Array[];
}

type Content =
  | { kind: "skip" }
  | { kind: "begin" }
  | { kind: "getValues" }
  | { kind: "params"; request: Request }
  | { kind: "stdin" | "data"; id: number };

type Parsed = { ok: true; pairs: string[] } | { ok: false; status: string; reason: string };

/** Name-value pairs, spec §3.4: a length is 1 byte (high bit clear) or 4 bytes BE with the high bit masked off. */
export function parsePairs(block: Uint8Array): Parsed {
  const pairs: string[] = [];
  let at = 0;
  const length = (): number | undefined => {
    if (at >= block.length) return undefined;
    if (block[at]! < 0x80) return block[at++]!;
    if (at + 4 > block.length) return undefined;
    const n = ((block[at]! & 0x7f) * 0x1000000) + (block[at + 1]! << 16) + (block[at + 2]! << 8) + block[at + 3]!;
    at += 4;
    return n;
  };
  while (at < block.length) {
    const nameLength = length();
    if (nameLength === undefined) return { ok: false, status: "FCGI_PARAMS_MALFORMED", reason: "name length runs past the block" };
    // README: the name limit is checked as soon as the name's length is read, before the value's length.
    if (nameLength > kMaxNameBytes) return { ok: false, status: "FCGI_NAME_TOO_LONG", reason: "name longer than 8192 bytes" };
    const valueLength = length();
    if (valueLength === undefined) return { ok: false, status: "FCGI_PARAMS_MALFORMED", reason: "value length runs past the block" };
    if (at + nameLength + valueLength > block.length) {
      return { ok: false, status: "FCGI_PARAMS_MALFORMED", reason: "name or value runs past the block" };
    }
    pairs.push(latin1(block.subarray(at, at + nameLength)));
    at += nameLength;
    pairs.push(latin1(block.subarray(at, at + valueLength)));
    at += valueLength;
  }
  return { ok: true, pairs };
}

function byteLength(chunks: Uint8Array[]): number {
  return chunks.reduce((n, c) => n + c.length, 0);
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("latin1");
}

export class FastCgiOracle implements EventDecoder {
  private readonly maxParams: number;
  private readonly maxRequests: number;
  private readonly requests = new Map<number, Request>();
  private pending = new Uint8Array(0);
  /** Absolute stream offset of pending[0]. */
  private offset = 0;
  private state: "header" | "content" | "padding" = "header";
  private recordOffset = 0;
  private type = 0;
  private id = 0;
  private contentLeft = 0;
  private paddingLeft = 0;
  private content: Content = { kind: "skip" };
  private gathered: Uint8Array[] = [];
  private error: Event | undefined;

  constructor(limits: Limits = {}) {
    this.maxParams = limits.maxParams ?? kDefaultMaxParams;
    this.maxRequests = limits.maxRequests ?? kDefaultMaxRequests;
  }

  /**
   * README: "after that, records for the id are skipped again" — including the rest of a record
   * of that id that is half read. Releasing an id that is not active changes nothing.
   */
  release(id: number): void {
    if (!this.requests.delete(id)) return;
    const c = this.content;
    if (this.state === "content" && this.id === id && (c.kind === "params" || c.kind === "stdin" || c.kind === "data")) {
      this.content = { kind: "skip" };
    }
  }

  end(): Event[] {
    if (this.error) return [this.error];
    if (this.state !== "header" || this.pending.length > 0) {
      return [this.fail("FCGI_TRUNCATED", this.offset + this.pending.length, "stream ends inside a record")];
    }
    return [];
  }

  push(chunk: Uint8Array): Event[] {
    if (this.error) return [this.error];
    const joined = new Uint8Array(this.pending.length + chunk.length);
    joined.set(this.pending, 0);
    joined.set(chunk, this.pending.length);
    this.pending = joined;
    const events: Event[] = [];
    for (;;) {
      if (this.state === "header") {
        if (this.pending.length < HEADER) break;
        const header = this.take(HEADER);
        const error = this.onHeader(header, events);
        if (error) {
          events.push(error);
          return events;
        }
        if (this.contentLeft === 0) {
          const done = this.onContentComplete(events);
          if (done) {
            events.push(done);
            return events;
          }
        }
      } else if (this.state === "content") {
        const n = Math.min(this.contentLeft, this.pending.length);
        if (n === 0) break;
        const bytes = this.take(n);
        this.contentLeft -= n;
        const c = this.content;
        if (c.kind === "stdin") events.push({ type: "STDIN", id: c.id, data: bytes.slice() });
        else if (c.kind === "data") events.push({ type: "DATA", id: c.id, data: bytes.slice() });
        else if (c.kind === "params") c.request.params.push(bytes.slice());
        else if (c.kind !== "skip") this.gathered.push(bytes.slice());
        if (this.contentLeft === 0) {
          const done = this.onContentComplete(events);
          if (done) {
            events.push(done);
            return events;
          }
        }
      } else {
        const n = Math.min(this.paddingLeft, this.pending.length);
        if (n === 0) break;
        this.take(n);
        this.paddingLeft -= n;
        if (this.paddingLeft === 0) this.state = "header";
      }
    }
    return events;
  }

  private take(n: number): Uint8Array {
    const bytes = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    this.offset += n;
    return bytes;
  }

  private fail(status: string, offset: number, reason: string): Event {
    this.error = { type: "ERROR", status, offset, reason };
    return this.error;
  }

  /** The README's rule table, rows 1 to 18, in order; returns the error, if any. */
  private onHeader(h: Uint8Array, events: Event[]): Event | undefined {
    this.recordOffset = this.offset - HEADER;
    const version = h[0]!;
    this.type = h[1]!;
    this.id = (h[2]! << 8) | h[3]!;
    this.contentLeft = (h[4]! << 8) | h[5]!;
    this.paddingLeft = h[6]!;
    this.content = { kind: "skip" };
    this.gathered = [];
    this.state = "content";
    const type = this.type;
    const id = this.id;
    const empty = this.contentLeft === 0;
    const at = this.recordOffset;

    // Rule numbers are the rows of native/README.md's FastCGI table.
    if (version !== 1) return this.fail("FCGI_VERSION", at, `version ${version}`); // 1
    if (WRITTEN_BY_APPLICATIONS.has(type)) return this.fail("FCGI_UNEXPECTED_RECORD", at, `record type ${type} from the server`); // 2
    if (type === 0 || type > FCGI_UNKNOWN_TYPE) {
      // 3
      events.push({ type: "UNKNOWN_TYPE", recordType: type });
      return undefined;
    }
    if (type === FCGI_GET_VALUES && id === 0) {
      // 4
      this.content = { kind: "getValues" };
      return undefined;
    }
    if (id === 0 || type === FCGI_GET_VALUES) return this.fail("FCGI_UNEXPECTED_RECORD", at, `record type ${type} with id ${id}`); // 5
    const request = this.requests.get(id);
    if (type === FCGI_BEGIN_REQUEST) {
      if (this.contentLeft !== 8) return this.fail("FCGI_BEGIN_BODY", at, "BEGIN_REQUEST body is not 8 bytes"); // 6
      if (request) return this.fail("FCGI_DUPLICATE_REQUEST", at, `request ${id} is active`); // 7
      this.content = { kind: "begin" }; // 8, 9: decided when the content is complete
      return undefined;
    }
    // 10: ABORT_REQUEST, PARAMS, STDIN, DATA for an inactive id are skipped (spec §3.3).
    if (!request) return undefined;
    if (type === FCGI_ABORT_REQUEST) {
      // 11
      events.push({ type: "ABORT", id });
      return undefined;
    }
    if (type === FCGI_PARAMS) {
      if (request.paramsDone) return this.fail("FCGI_UNEXPECTED_RECORD", at, "PARAMS after the params stream ended"); // 12
      if (!empty) {
        if (byteLength(request.params) + this.contentLeft > this.maxParams) return this.fail("FCGI_PARAMS_TOO_LARGE", at, "params over max-params"); // 13
        this.content = { kind: "params", request }; // 14
        return undefined;
      }
      // 15
      request.paramsDone = true;
      const parsed = parsePairs(Buffer.concat(request.params));
      request.params = [];
      if (!parsed.ok) return this.fail(parsed.status, at, parsed.reason);
      events.push({ type: "PARAMS", id, params: parsed.pairs });
      return undefined;
    }
    // STDIN or DATA: 16 to 18.
    const stdin = type === FCGI_STDIN;
    if (!request.paramsDone || (stdin ? request.stdinDone : request.dataDone)) {
      return this.fail("FCGI_UNEXPECTED_RECORD", at, `${stdin ? "STDIN" : "DATA"} out of place`);
    }
    if (empty) {
      if (stdin) request.stdinDone = true;
      else request.dataDone = true;
      events.push({ type: stdin ? "STDIN_END" : "DATA_END", id });
      return undefined;
    }
    this.content = { kind: stdin ? "stdin" : "data", id };
    return undefined;
  }

  /** BEGIN and GET_VALUES are emitted when their content is complete; then the padding follows. */
  private onContentComplete(events: Event[]): Event | undefined {
    this.state = this.paddingLeft > 0 ? "padding" : "header";
    const body = Buffer.concat(this.gathered);
    if (this.content.kind === "begin") {
      // Rule 8 is evaluated when BEGIN/OVERLOADED is emitted (README: "BEGIN, OVERLOADED and
      // GET_VALUES when the record's content is complete"), so a release() in between counts.
      if (this.requests.size >= this.maxRequests) {
        events.push({ type: "OVERLOADED", id: this.id });
      } else {
        this.requests.set(this.id, { paramsDone: false, stdinDone: false, dataDone: false, params: [] });
        events.push({ type: "BEGIN", id: this.id, role: (body[0]! << 8) | body[1]!, flags: body[2]! });
      }
    } else if (this.content.kind === "getValues") {
      const parsed = parsePairs(body);
      if (!parsed.ok) return this.fail(parsed.status, this.recordOffset, parsed.reason);
      events.push({ type: "GET_VALUES", params: parsed.pairs });
    }
    return undefined;
  }
}

function header(type: number, id: number, contentLength: number, paddingLength: number): Buffer {
  return Buffer.from([1, type, id >> 8, id & 0xff, contentLength >> 8, contentLength & 0xff, paddingLength, 0]);
}

function bytesOf(data: Uint8Array | string): Buffer {
  return typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function pairLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  return Buffer.from([((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** The same bytes as `fcgi` in src/native.ts, written from the spec (§3.3, §3.4, §5). */
export const fcgiOracle = {
  stream(type: number, id: number, data: Uint8Array | string, maxContent = kMaxRecordContent): Buffer {
    const bytes = bytesOf(data);
    const max = maxContent - (maxContent % 8);
    const parts: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += max) {
      const piece = bytes.subarray(at, Math.min(at + max, bytes.length));
      const padding = (8 - (piece.length % 8)) % 8;
      parts.push(header(type, id, piece.length, padding), piece, Buffer.alloc(padding));
    }
    return Buffer.concat(parts);
  },
  streamEnd(type: number, id: number): Buffer {
    return header(type, id, 0, 0);
  },
  endRequest(id: number, appStatus: number, protocolStatus: number): Buffer {
    const body = Buffer.alloc(8);
    body.writeUInt32BE(appStatus, 0);
    body[4] = protocolStatus;
    return Buffer.concat([header(FCGI_END_REQUEST, id, 8, 0), body]);
  },
  beginRequest(id: number, role: number, flags: number): Buffer {
    return Buffer.concat([header(FCGI_BEGIN_REQUEST, id, 8, 0), Buffer.from([role >> 8, role & 0xff, flags, 0, 0, 0, 0, 0])]);
  },
  abortRequest(id: number): Buffer {
    return header(FCGI_ABORT_REQUEST, id, 0, 0);
  },
  unknownType(type: number): Buffer {
    return Buffer.concat([header(FCGI_UNKNOWN_TYPE, 0, 8, 0), Buffer.from([type, 0, 0, 0, 0, 0, 0, 0])]);
  },
  pairs(pairs: string[]): Buffer {
    const parts: Buffer[] = [];
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const name = Buffer.from(pairs[i]!, "latin1");
      const value = Buffer.from(pairs[i + 1]!, "latin1");
      parts.push(pairLength(name.length), pairLength(value.length), name, value);
    }
    return Buffer.concat(parts);
  },
  frameResponse(id: number, data: Uint8Array | string | null, end: boolean, appStatus: number): Buffer {
    const parts = [data === null ? Buffer.alloc(0) : fcgiOracle.stream(FCGI_STDOUT, id, data)];
    if (end) parts.push(fcgiOracle.streamEnd(FCGI_STDOUT, id), fcgiOracle.endRequest(id, appStatus, 0));
    return Buffer.concat(parts);
  },
};

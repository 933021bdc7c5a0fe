// `start_response` with PEP 3333's rules (DESIGN §1): the status is "NNN Reason", headers
// are [name, value] pairs of legal HTTP text, hop-by-hop headers are refused by name, the
// headers are held until the first non-empty body chunk, a second call is allowed only with
// `excInfo` and only until the headers went out (after that it rethrows), and the legacy
// `write()` sends its bytes at once.

import { tsgiError } from "../errors.ts";
import type { Chunk } from "./environ.ts";

export type Headers = [string, string][];
/**
 * The legacy write(): sends at once, or after the sends still waiting for the socket. It
 * returns a promise when the socket has to drain first: an application that awaits it keeps
 * its memory bounded (one that does not, as in PEP 3333's blocking write, is simply queued).
 * The promise never rejects; `tsgi.signal` says when the client is gone.
 */
export type Write = (chunk: Chunk) => void | Promise<void>;
export type StartResponse = (status: string, headers: Headers, excInfo?: unknown) => Write;

// RFC 9110 §7.6.1: connection-specific header fields; the front server owns them.
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
]);
// RFC 9110 §5.6.2 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A field value: visible text, spaces and tabs; no CR, LF or NUL (RFC 9110 §5.5), so a
// header can never smuggle another one in.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS = /^[1-9][0-9]{2} [\t\x20-\x7e\x80-\xff]*$/;

/**
 * Header names already found to be tokens, neither hop-by-hop nor Status: an application
 * sends the same few names on every response (string literals of its code), and a name seen
 * before is one hash lookup instead of a regular expression, a lower-casing and two
 * comparisons. Bounded: names made per request (a header per user id) stop being remembered
 * at NAMES_KEPT, and are checked in full every time.
 */
const goodNames = new Set<string>();
const NAMES_KEPT = 512;

function checkName(name: string): void {
  if (goodNames.has(name)) return;
  if (!TOKEN.test(name)) throw tsgiError("TSGI_ERR_RESPONSE_HEADER", { reason: `header name ${JSON.stringify(name)} is not an HTTP token` });
  const lower = name.toLowerCase();
  if (HOP_BY_HOP.has(lower)) throw tsgiError("TSGI_ERR_RESPONSE_HOP_BY_HOP", { name });
  // The CGI response of FastCGI carries the status in its own Status header.
  if (lower === "status") throw tsgiError("TSGI_ERR_RESPONSE_HEADER", { reason: "Status is not a header: pass it as start_response's status" });
  if (goodNames.size < NAMES_KEPT) goodNames.add(name);
}

/**
 * Checks a status and headers; throws a coded error naming what is wrong. Returns the
 * headers as they were checked, names and values flat ([name, value, name, value, …]): what
 * is sent is what was checked, whatever the application does with its array afterwards.
 */
export function checkResponseHead(status: unknown, headers: unknown): string[] {
  if (typeof status !== "string" || !STATUS.test(status)) {
    throw tsgiError("TSGI_ERR_RESPONSE_STATUS", { status: JSON.stringify(status) });
  }
  if (!Array.isArray(headers)) throw tsgiError("TSGI_ERR_RESPONSE_HEADER", { reason: "headers must be an array of [name, value] pairs" });
  // Sized once: pushed one by one, four fields grew a backing store of 17.
  const fields = new Array<string>(2 * headers.length);
  for (let i = 0; i < headers.length; i++) {
    const pair: unknown = headers[i];
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
      throw tsgiError("TSGI_ERR_RESPONSE_HEADER", { reason: `${JSON.stringify(pair)} is not a [name, value] pair of strings` });
    }
    const name: string = pair[0];
    const value: string = pair[1];
    checkName(name);
    if (!FIELD_VALUE.test(value)) {
      throw tsgiError("TSGI_ERR_RESPONSE_HEADER", { reason: `header ${name} has a value with a control character (CR, LF, NUL, …)` });
    }
    fields[2 * i] = name;
    fields[2 * i + 1] = value;
  }
  return fields;
}

/** Chunk bytes: strings are sent as UTF-8 (DESIGN §1). */
export function toBytes(chunk: Chunk): Uint8Array {
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  if (chunk instanceof Uint8Array) return chunk;
  throw tsgiError("TSGI_ERR_RESPONSE_CHUNK", { type: chunk === null ? "null" : typeof chunk });
}

/** Where the legacy write() sends its chunk (and the head before it): the request runner. */
export interface LegacyWriter {
  write(chunk: Uint8Array): void | Promise<void>;
}

const NO_WRITER: LegacyWriter = { write() {} };

/** The state of one response's head, shared by start_response and the server that sends it. */
export class ResponseHead {
  status: string | null = null;
  /** The status code of `status` (0 until it is set). */
  code = 0;
  /** The headers, names and values flat: [name, value, name, value, …]. */
  fields: string[] = [];
  /** Set by the server once the head went to the wire. */
  sent = false;
  readonly #writer: LegacyWriter;

  constructor(writer: LegacyWriter = NO_WRITER) {
    this.#writer = writer;
  }

  readonly startResponse: StartResponse = (status, headers, excInfo) => {
    if (this.status !== null) {
      if (excInfo === undefined || excInfo === null) throw tsgiError("TSGI_ERR_RESPONSE_STARTED_TWICE", {});
      // PEP 3333: after the head went out, the only honest thing left is to re-raise.
      if (this.sent) throw excInfo;
    }
    this.fields = checkResponseHead(status, headers);
    this.status = status as string;
    this.code = parseInt(status as string, 10);
    return this.#legacyWrite;
  };

  // Made with the head, not when start_response first returns it: made lazily inside
  // start_response (`??=`), the request path measured ~1.5 µs a request slower (not looked
  // into further).
  readonly #legacyWrite: Write = (chunk) => this.#writer.write(toBytes(chunk));

  /** The headers as [name, value] pairs (a copy). */
  get headers(): Headers {
    const pairs: Headers = [];
    for (let i = 0; i < this.fields.length; i += 2) pairs.push([this.fields[i]!, this.fields[i + 1]!]);
    return pairs;
  }

  /** Makes this the head of a short plain-text answer the server gives itself (400, 500, 504…); returns its body. */
  plainText(code: number, reason: string, text: string): Buffer {
    const payload = Buffer.from(text, "utf8");
    this.status = `${code} ${reason}`;
    this.code = code;
    this.fields = ["Content-Type", "text/plain; charset=utf-8", "Content-Length", String(payload.length)];
    return payload;
  }

  /**
   * The head as the wire carries it: `prefix` and the status ("Status: 200 OK" for a CGI
   * head, "HTTP/1.1 200 OK" for uwsgi's raw HTTP), then the headers, as a byte string (header
   * values are latin-1, PEP 3333: one char per byte). With `cache`, the head a protocol made
   * last is given again when this one is the same (an application's responses mostly are:
   * the same literals each time), where making it is a dozen string concatenations.
   */
  serialize(prefix: string, cache?: HeadCache): string {
    const status = this.status!;
    const fields = this.fields;
    if (cache !== undefined && cache.status === status && cache.prefix === prefix && sameFields(cache.fields, fields)) return cache.text;
    let text = `${prefix}${status}\r\n`;
    for (let i = 0; i < fields.length; i += 2) text += `${fields[i]}: ${fields[i + 1]}\r\n`;
    text += "\r\n";
    if (cache !== undefined) {
      cache.prefix = prefix;
      cache.status = status;
      cache.fields = fields;
      cache.text = text;
    }
    return text;
  }
}

/** The last head a protocol serialized (ResponseHead.serialize). The fields arrays are never changed once made. */
export class HeadCache {
  prefix = "";
  status = "";
  fields: readonly string[] = [];
  text = "";
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

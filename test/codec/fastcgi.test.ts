// The native FastCGI decoder against hand-written expected event logs (native/README.md),
// each stream fed whole, byte by byte and at random splits, with the same result.
import { describe, expect, it } from "vitest";
import { fcgi } from "../../src/native.ts";
import { canonical, decodeAll, nativeDecoder, splits, type Limits } from "./events.ts";

const BEGIN = 1, ABORT = 2, END = 3, PARAMS = 4, STDIN = 5, STDOUT = 6, DATA = 8, GET_VALUES = 9;
const RESPONDER = 1, AUTHORIZER = 2, FILTER = 3, KEEP_CONN = 1;

const cat = (...parts: (Buffer | Uint8Array)[]) => Buffer.concat(parts);
const params = (id: number, list: string[], maxContent?: number) =>
  cat(fcgi.stream(PARAMS, id, fcgi.pairs(list), maxContent), fcgi.streamEnd(PARAMS, id));
const stdin = (id: number, data: string) => cat(fcgi.stream(STDIN, id, data), fcgi.streamEnd(STDIN, id));
const hex = (s: string) => Buffer.from(s).toString("hex");
/** A record with a hand-set header, for what the encoders never produce. */
const record = (type: number, id: number, content: Buffer | number[] = [], padding = 0, version = 1) => {
  const body = Buffer.from(content);
  return cat(Buffer.from([version, type, id >> 8, id & 0xff, body.length >> 8, body.length & 0xff, padding, 0]), body, Buffer.alloc(padding));
};

interface Case {
  name: string;
  stream: Buffer;
  /** Pushed one after the other, each part split on its own: a server reads the next keep-conn request only after it answered (and released) the previous one. */
  parts?: Buffer[];
  limits?: Limits;
  release?: boolean;
  expected: unknown[];
}

const nginxParams = ["REQUEST_METHOD", "GET", "SCRIPT_NAME", "/caf\xc3\xa9", "REQUEST_URI", "/caf%C3%A9?q=1", "QUERY_STRING", "q=1"];

const cases: Case[] = [
  {
    name: "an nginx-shaped GET: one padded PARAMS record, an empty STDIN",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), params(1, nginxParams), fcgi.streamEnd(STDIN, 1)),
    expected: [
      { type: "BEGIN", id: 1, role: RESPONDER, flags: 0 },
      { type: "PARAMS", id: 1, params: nginxParams },
      { type: "STDIN_END", id: 1 },
    ],
  },
  {
    name: "an Apache-shaped POST: params cut in 16-byte records so pairs straddle them, unpadded",
    stream: cat(
      fcgi.beginRequest(7, RESPONDER, 0),
      ...chunk(fcgi.pairs(nginxParams), 13).map((c) => record(PARAMS, 7, c)),
      record(PARAMS, 7),
      stdin(7, "a=1&b=2"),
    ),
    expected: [
      { type: "BEGIN", id: 7, role: RESPONDER, flags: 0 },
      { type: "PARAMS", id: 7, params: nginxParams },
      { type: "STDIN", id: 7, data: hex("a=1&b=2") },
      { type: "STDIN_END", id: 7 },
    ],
  },
  {
    name: "4-byte lengths and empty values",
    stream: cat(fcgi.beginRequest(2, RESPONDER, 0), params(2, ["HTTP_X_LONG", "v".repeat(200), "EMPTY", "", "N".repeat(130), "x"]), fcgi.streamEnd(STDIN, 2)),
    expected: [
      { type: "BEGIN", id: 2, role: RESPONDER, flags: 0 },
      { type: "PARAMS", id: 2, params: ["HTTP_X_LONG", "v".repeat(200), "EMPTY", "", "N".repeat(130), "x"] },
      { type: "STDIN_END", id: 2 },
    ],
  },
  {
    name: "two requests interleaved on one connection",
    stream: cat(
      fcgi.beginRequest(1, RESPONDER, KEEP_CONN),
      fcgi.beginRequest(2, RESPONDER, KEEP_CONN),
      params(2, ["A", "2"]),
      params(1, ["A", "1"]),
      fcgi.stream(STDIN, 1, "one"),
      fcgi.stream(STDIN, 2, "two"),
      fcgi.stream(STDIN, 1, "ONE"),
      fcgi.streamEnd(STDIN, 2),
      fcgi.streamEnd(STDIN, 1),
    ),
    expected: [
      { type: "BEGIN", id: 1, role: RESPONDER, flags: KEEP_CONN },
      { type: "BEGIN", id: 2, role: RESPONDER, flags: KEEP_CONN },
      { type: "PARAMS", id: 2, params: ["A", "2"] },
      { type: "PARAMS", id: 1, params: ["A", "1"] },
      { type: "STDIN", id: 1, data: hex("one") },
      { type: "STDIN", id: 2, data: hex("two") },
      { type: "STDIN", id: 1, data: hex("ONE") },
      { type: "STDIN_END", id: 2 },
      { type: "STDIN_END", id: 1 },
    ],
  },
  {
    name: "keep-conn: the same id again once the first request was released",
    release: true,
    stream: Buffer.alloc(0),
    parts: [
      cat(fcgi.beginRequest(1, RESPONDER, KEEP_CONN), params(1, ["N", "1"]), fcgi.streamEnd(STDIN, 1)),
      cat(fcgi.beginRequest(1, RESPONDER, KEEP_CONN), params(1, ["N", "2"]), fcgi.streamEnd(STDIN, 1)),
    ],
    expected: [
      { type: "BEGIN", id: 1, role: RESPONDER, flags: KEEP_CONN },
      { type: "PARAMS", id: 1, params: ["N", "1"] },
      { type: "STDIN_END", id: 1 },
      { type: "BEGIN", id: 1, role: RESPONDER, flags: KEEP_CONN },
      { type: "PARAMS", id: 1, params: ["N", "2"] },
      { type: "STDIN_END", id: 1 },
    ],
  },
  {
    name: "an AUTHORIZER request with no STDIN at all (mod_authnz_fcgi)",
    stream: cat(fcgi.beginRequest(1, AUTHORIZER, 0), params(1, ["FCGI_ROLE", "AUTHORIZER", "REMOTE_PASSWD", "pw"])),
    expected: [
      { type: "BEGIN", id: 1, role: AUTHORIZER, flags: 0 },
      { type: "PARAMS", id: 1, params: ["FCGI_ROLE", "AUTHORIZER", "REMOTE_PASSWD", "pw"] },
    ],
  },
  {
    name: "a FILTER request: DATA after STDIN",
    stream: cat(fcgi.beginRequest(3, FILTER, 0), params(3, []), stdin(3, "in"), fcgi.stream(DATA, 3, "file"), fcgi.streamEnd(DATA, 3)),
    expected: [
      { type: "BEGIN", id: 3, role: FILTER, flags: 0 },
      { type: "PARAMS", id: 3, params: [] },
      { type: "STDIN", id: 3, data: hex("in") },
      { type: "STDIN_END", id: 3 },
      { type: "DATA", id: 3, data: hex("file") },
      { type: "DATA_END", id: 3 },
    ],
  },
  {
    name: "FCGI_ABORT_REQUEST for an active request, ignored for an inactive one",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), params(1, []), fcgi.abortRequest(9), fcgi.abortRequest(1)),
    expected: [
      { type: "BEGIN", id: 1, role: RESPONDER, flags: 0 },
      { type: "PARAMS", id: 1, params: [] },
      { type: "ABORT", id: 1 },
    ],
  },
  {
    name: "records for inactive ids are skipped",
    stream: cat(params(5, ["A", "B"]), stdin(5, "x"), fcgi.beginRequest(1, RESPONDER, 0)),
    expected: [{ type: "BEGIN", id: 1, role: RESPONDER, flags: 0 }],
  },
  {
    name: "FCGI_GET_VALUES and an unknown management type",
    stream: cat(fcgi.stream(GET_VALUES, 0, fcgi.pairs(["FCGI_MAX_CONNS", "", "FCGI_MPXS_CONNS", ""])), record(42, 0, [1, 2, 3], 5)),
    expected: [
      { type: "GET_VALUES", params: ["FCGI_MAX_CONNS", "", "FCGI_MPXS_CONNS", ""] },
      { type: "UNKNOWN_TYPE", recordType: 42 },
    ],
  },
  {
    name: "version 2 closes the connection at its record",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), record(PARAMS, 1, [], 0, 2)),
    expected: [{ type: "BEGIN", id: 1, role: RESPONDER, flags: 0 }, { type: "ERROR", status: "FCGI_VERSION", offset: 16 }],
  },
  {
    name: "a record type only applications write",
    stream: record(STDOUT, 1, [0x41]),
    expected: [{ type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 0 }],
  },
  {
    name: "END_REQUEST from the server",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), record(END, 1, [0, 0, 0, 0, 0, 0, 0, 0])),
    expected: [{ type: "BEGIN", id: 1, role: RESPONDER, flags: 0 }, { type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 16 }],
  },
  {
    name: "a BEGIN_REQUEST body that is not 8 bytes",
    stream: record(BEGIN, 1, [0, 1, 0, 0, 0, 0, 0]),
    expected: [{ type: "ERROR", status: "FCGI_BEGIN_BODY", offset: 0 }],
  },
  {
    name: "a second BEGIN_REQUEST for an active id",
    stream: cat(fcgi.beginRequest(4, RESPONDER, 0), fcgi.beginRequest(4, RESPONDER, 0)),
    expected: [{ type: "BEGIN", id: 4, role: RESPONDER, flags: 0 }, { type: "ERROR", status: "FCGI_DUPLICATE_REQUEST", offset: 16 }],
  },
  {
    name: "STDIN before the params stream ended",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(STDIN, 1, "x")),
    expected: [{ type: "BEGIN", id: 1, role: RESPONDER, flags: 0 }, { type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 16 }],
  },
  {
    name: "a pair whose value runs past the params block",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), record(PARAMS, 1, [1, 9, 0x41, 0x42]), record(PARAMS, 1)),
    expected: [{ type: "BEGIN", id: 1, role: RESPONDER, flags: 0 }, { type: "ERROR", status: "FCGI_PARAMS_MALFORMED", offset: 28 }],
  },
  {
    name: "a 4-byte length cut by the end of the block",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), record(PARAMS, 1, [0x80, 0]), record(PARAMS, 1)),
    expected: [{ type: "BEGIN", id: 1, role: RESPONDER, flags: 0 }, { type: "ERROR", status: "FCGI_PARAMS_MALFORMED", offset: 26 }],
  },
  {
    name: "a 4-byte length of 2^31-1 is refused, not allocated",
    stream: cat(fcgi.beginRequest(1, RESPONDER, 0), record(PARAMS, 1, [1, 0xff, 0xff, 0xff, 0xff, 0x41]), record(PARAMS, 1)),
    expected: [{ type: "BEGIN", id: 1, role: RESPONDER, flags: 0 }, { type: "ERROR", status: "FCGI_PARAMS_MALFORMED", offset: 30 }],
  },
];

function chunk(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

describe("FastCGI decoder: expected event logs at every split", () => {
  for (const c of cases) {
    it(c.name, () => {
      const parts = (c.parts ?? [c.stream]).map((part) => splits(part, 0x5eed + part.length));
      for (let k = 0; k < parts[0]!.length; k++) {
        const chunks = parts.flatMap((p) => p[k]!.chunks);
        const log = canonical(decodeAll(nativeDecoder("fastcgi", c.limits), chunks, c.release));
        expect(log, parts[0]![k]!.name).toEqual(c.expected);
      }
    });
  }

  it("reports an error once, then the same error on every later push and on end", () => {
    const d = nativeDecoder("fastcgi");
    const [first] = d.push(record(STDOUT, 1));
    expect(first).toMatchObject({ type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 0 });
    expect((first as { reason: string }).reason).toMatch(/written by applications/);
    expect(d.push(fcgi.beginRequest(1, RESPONDER, 0))).toEqual([first]);
    expect(d.end()).toEqual([first]);
  });

  it("end() inside a record is FCGI_TRUNCATED at the stream's length; at a boundary it is nothing", () => {
    const whole = cat(fcgi.beginRequest(1, RESPONDER, 0), params(1, nginxParams));
    for (const cut of [3, 8, 20, whole.length - 1]) {
      const d = nativeDecoder("fastcgi");
      d.push(whole.subarray(0, cut));
      expect(d.end()).toMatchObject([{ type: "ERROR", status: "FCGI_TRUNCATED", offset: cut }]);
    }
    const d = nativeDecoder("fastcgi");
    d.push(whole);
    expect(d.end()).toEqual([]);
  });

  it("hands STDIN bytes as offsets into the pushed chunk (no copy)", async () => {
    const { createFastCgiDecoder, EVENT } = await import("../../src/native.ts");
    const d = createFastCgiDecoder();
    const stream = cat(fcgi.beginRequest(1, RESPONDER, 0), params(1, []), fcgi.stream(STDIN, 1, "payload"));
    const raw = d.push(stream);
    const at = raw.lastIndexOf(EVENT.STDIN, raw.length - 4);
    expect(raw[at]).toBe(EVENT.STDIN);
    const off = raw[at + 2] as number, len = raw[at + 3] as number;
    expect(stream.subarray(off, off + len).toString()).toBe("payload");
  });

  it("frames a head (byte string) and a chunk in the same records, as if they were one", () => {
    const head = "Status: 200 OK\r\nX-Caf\xe9: \xff\r\n\r\n";
    const body = Buffer.alloc(70000, 0x61);
    const joined = Buffer.concat([Buffer.from(head, "latin1"), body]);
    expect(fcgi.frameResponse(3, body, true, 200, head)).toEqual(fcgi.frameResponse(3, joined, true, 200));
    expect(fcgi.frameResponse(3, null, false, 0, head)).toEqual(fcgi.frameResponse(3, Buffer.from(head, "latin1"), false, 0));
  });
});

// Pins the reference decoders and encoders in test/oracle/ to native/README.md and the specs
// with hand-written bytes, without the native addon: the differential tests trust the oracle,
// so the oracle answers to these examples alone.

import { describe, it, expect } from "vitest";
import type { Event, EventDecoder } from "../codec/events.ts";
import { FastCgiOracle, fcgiOracle } from "./fastcgi.ts";
import { UwsgiOracle, uwsgiOracle } from "./uwsgi.ts";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

/** Events with data as hex, fed whole and byte by byte (the two must agree). */
function decode(make: () => EventDecoder, stream: Uint8Array, release: number[] = []): unknown[] {
  const show = (log: Event[]) => {
    const out: unknown[] = [];
    for (const ev of log) {
      const prev = out.at(-1) as { type: string; id?: number; data?: string } | undefined;
      if ("data" in ev && prev && prev.type === ev.type && prev.id === (ev as { id?: number }).id) {
        prev.data += Buffer.from(ev.data).toString("hex");
        continue;
      }
      if ("data" in ev) out.push({ ...ev, data: Buffer.from(ev.data).toString("hex") });
      else if (ev.type === "ERROR") out.push({ type: "ERROR", status: ev.status, offset: ev.offset });
      else out.push(ev);
    }
    return out;
  };
  const feed = (chunks: Uint8Array[]) => {
    const d = make();
    const log: Event[] = [];
    for (const c of chunks) {
      const events = d.push(c);
      log.push(...events);
      for (const ev of events) if (ev.type === "STDIN_END" && release.includes(ev.id)) d.release?.(ev.id);
      if (log.at(-1)?.type === "ERROR") return show(log);
    }
    return show([...log, ...d.end()]);
  };
  const whole = feed([stream]);
  const bytes = feed(Array.from(stream, (_, i) => stream.subarray(i, i + 1)));
  expect(bytes).toEqual(whole);
  return whole;
}

const fcgi = (stream: Uint8Array, limits = {}, release: number[] = []) => decode(() => new FastCgiOracle(limits), stream, release);
const uwsgi = (stream: Uint8Array, limits = {}) => decode(() => new UwsgiOracle(limits), stream);

// FCGI_BEGIN_REQUEST id 1, RESPONDER, KEEP_CONN (spec §5.1).
const BEGIN_1 = "01 01 0001 0008 00 00  0001 01 0000000000";

describe("FastCGI oracle", () => {
  it("decodes a responder request with nginx-style padding", () => {
    // PARAMS: "A"="b" and a 4-byte value length (spec §3.4: 0x80000003 is 3), padded to 16 (13 + 3).
    const stream = hex(`${BEGIN_1}
      01 04 0001 000d 03 00  01 01 41 62 01 80000003 42 78 79 7a 000000
      01 04 0001 0000 00 00
      01 05 0001 0003 05 00  616263 0000000000
      01 05 0001 0000 00 00`);
    expect(fcgi(stream)).toEqual([
      { type: "BEGIN", id: 1, role: 1, flags: 1 },
      { type: "PARAMS", id: 1, params: ["A", "b", "B", "xyz"] },
      { type: "STDIN", id: 1, data: "616263" },
      { type: "STDIN_END", id: 1 },
    ]);
  });

  it("joins a pair split across Apache-style records and keeps bytes as latin1", () => {
    const stream = hex(`${BEGIN_1}
      01 04 0001 0003 00 00  02 01 ff
      01 04 0001 0002 00 00  e9 00
      01 04 0001 0000 00 00`);
    expect(fcgi(stream)).toEqual([
      { type: "BEGIN", id: 1, role: 1, flags: 1 },
      { type: "PARAMS", id: 1, params: ["\u00ff\u00e9", "\u0000"] },
    ]);
  });

  it("answers management records and skips records of inactive ids", () => {
    const stream = hex(`
      01 09 0000 0010 00 00  0e 00 46 43 47 49 5f 4d 41 58 5f 43 4f 4e 4e 53
      01 0c 0007 0002 00 00  ffff
      01 05 0009 0001 07 00  61 00000000000000
      01 00 0000 0000 00 00`);
    expect(fcgi(stream)).toEqual([
      { type: "GET_VALUES", params: ["FCGI_MAX_CONNS", ""] },
      { type: "UNKNOWN_TYPE", recordType: 12 },
      { type: "UNKNOWN_TYPE", recordType: 0 },
    ]);
  });

  it("gives errors the offset of the record header", () => {
    expect(fcgi(hex(`${BEGIN_1} 02 05 0001 0000 00 00`))).toEqual([
      { type: "BEGIN", id: 1, role: 1, flags: 1 },
      { type: "ERROR", status: "FCGI_VERSION", offset: 16 },
    ]);
    expect(fcgi(hex(`${BEGIN_1} 01 06 0001 0000 00 00`)).at(-1)).toEqual({ type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 16 });
    expect(fcgi(hex(`01 04 0000 0000 00 00`))).toEqual([{ type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 0 }]);
    expect(fcgi(hex(`01 09 0001 0000 00 00`))).toEqual([{ type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 0 }]);
    expect(fcgi(hex(`01 01 0001 0007 00 00 00000000000000`))).toEqual([{ type: "ERROR", status: "FCGI_BEGIN_BODY", offset: 0 }]);
    expect(fcgi(hex(`${BEGIN_1} ${BEGIN_1}`)).at(-1)).toEqual({ type: "ERROR", status: "FCGI_DUPLICATE_REQUEST", offset: 16 });
    expect(fcgi(hex(`${BEGIN_1} 01 05 0001 0000 00 00`)).at(-1)).toEqual({ type: "ERROR", status: "FCGI_UNEXPECTED_RECORD", offset: 16 });
    // The pair claims a 3-byte value with 2 bytes left: the error points at the empty PARAMS record.
    expect(fcgi(hex(`${BEGIN_1} 01 04 0001 0004 00 00 01 03 41 62 01 04 0001 0000 00 00`)).at(-1)).toEqual({
      type: "ERROR",
      status: "FCGI_PARAMS_MALFORMED",
      offset: 28,
    });
    // A 4-byte length cut short.
    expect(fcgi(hex(`${BEGIN_1} 01 04 0001 0003 00 00 80 00 00 01 04 0001 0000 00 00`)).at(-1)).toMatchObject({
      status: "FCGI_PARAMS_MALFORMED",
      offset: 27,
    });
  });

  it("checks the name limit (8192) before the value length", () => {
    const ok = Buffer.concat([hex("80002000 00"), Buffer.alloc(8192, 0x41)]);
    const over = hex("80002001");
    const params = (block: Buffer) => Buffer.concat([hex(BEGIN_1), fcgiOracle.stream(4, 1, block, 0xfff8), fcgiOracle.streamEnd(4, 1)]);
    expect(fcgi(params(ok))[1]).toEqual({ type: "PARAMS", id: 1, params: ["A".repeat(8192), ""] });
    expect(fcgi(params(over)).at(-1)).toEqual({ type: "ERROR", status: "FCGI_NAME_TOO_LONG", offset: 16 + 16 });
  });

  it("stops params at maxParams, checking each record's contentLength", () => {
    const stream = hex(`${BEGIN_1} 01 04 0001 0004 00 00 01 01 41 62 01 04 0001 0001 00 00 00`);
    expect(fcgi(stream, { maxParams: 5 })).toEqual([{ type: "BEGIN", id: 1, role: 1, flags: 1 }]);
    expect(fcgi(stream, { maxParams: 4 }).at(-1)).toEqual({ type: "ERROR", status: "FCGI_PARAMS_TOO_LARGE", offset: 28 });
    expect(fcgi(stream, { maxParams: 3 }).at(-1)).toEqual({ type: "ERROR", status: "FCGI_PARAMS_TOO_LARGE", offset: 16 });
  });

  it("answers OVERLOADED past maxRequests and lets a released id begin again", () => {
    const begin2 = "01 01 0002 0008 00 00 0002 00 0000000000";
    expect(fcgi(hex(`${BEGIN_1} ${begin2}`), { maxRequests: 1 })).toEqual([
      { type: "BEGIN", id: 1, role: 1, flags: 1 },
      { type: "OVERLOADED", id: 2 },
    ]);
    const d = new FastCgiOracle();
    const end1 = hex("01 04 0001 0000 00 00 01 05 0001 0000 00 00");
    expect(d.push(Buffer.concat([hex(BEGIN_1), end1])).map((e) => e.type)).toEqual(["BEGIN", "PARAMS", "STDIN_END"]);
    d.release(1);
    expect(d.push(Buffer.concat([hex(BEGIN_1), end1])).map((e) => e.type)).toEqual(["BEGIN", "PARAMS", "STDIN_END"]);
  });

  it("skips the rest of a half-read record once its id is released, and ignores releasing an inactive id", () => {
    const d = new FastCgiOracle({ maxRequests: 1 });
    const types = (events: Event[]) => events.map((e) => ("data" in e ? `${e.type} ${Buffer.from(e.data).toString("hex")}` : e.type));
    expect(types(d.push(hex(`${BEGIN_1} 01 04 0001 0000 00 00 01 05 0001 0004 00 00 6162`)))).toEqual(["BEGIN", "PARAMS", "STDIN 6162"]);
    d.release(1);
    expect(types(d.push(hex("6364 01 01 0002 0008 00 00 0001 00 00")))).toEqual([]);
    d.release(2);
    expect(types(d.push(hex("00000000")))).toEqual(["BEGIN"]);
    expect(d.end()).toEqual([]);
  });

  it("emits ABORT and DATA for a filter, and truncation at the stream length", () => {
    const stream = hex(`01 01 0003 0008 00 00 0003 00 0000000000
      01 02 0003 0000 00 00
      01 04 0003 0000 00 00
      01 08 0003 0002 00 00 6869
      01 08 0003 0000 00 00
      01 05 0003 0004 00 00 6869`);
    expect(fcgi(stream)).toEqual([
      { type: "BEGIN", id: 3, role: 3, flags: 0 },
      { type: "ABORT", id: 3 },
      { type: "PARAMS", id: 3, params: [] },
      { type: "DATA", id: 3, data: "6869" },
      { type: "DATA_END", id: 3 },
      { type: "STDIN", id: 3, data: "6869" },
      { type: "ERROR", status: "FCGI_TRUNCATED", offset: 60 },
    ]);
    expect(fcgi(hex("01 0c 0000 0000 02"))).toEqual([{ type: "ERROR", status: "FCGI_TRUNCATED", offset: 7 }]);
    expect(fcgi(hex("01 0c 0000 0000 02 00 00"))).toEqual([
      { type: "UNKNOWN_TYPE", recordType: 12 },
      { type: "ERROR", status: "FCGI_TRUNCATED", offset: 9 },
    ]);
  });

  it("encodes records as the spec lays them out", () => {
    expect(fcgiOracle.beginRequest(0x102, 1, 1)).toEqual(hex("01 01 0102 0008 00 00 0001 01 0000000000"));
    expect(fcgiOracle.endRequest(1, 0x01020304, 3)).toEqual(hex("01 03 0001 0008 00 00 01020304 03 000000"));
    expect(fcgiOracle.abortRequest(7)).toEqual(hex("01 02 0007 0000 00 00"));
    expect(fcgiOracle.unknownType(200)).toEqual(hex("01 0b 0000 0008 00 00 c8 00000000000000"));
    expect(fcgiOracle.streamEnd(6, 1)).toEqual(hex("01 06 0001 0000 00 00"));
    expect(fcgiOracle.stream(6, 1, "")).toEqual(Buffer.alloc(0));
    expect(fcgiOracle.stream(6, 1, "é")).toEqual(hex("01 06 0001 0002 06 00 c3a9 000000000000"));
    // maxContent 13 rounds down to 8: 20 bytes are 8 + 8 + 4 (padded to 8).
    const twenty = Buffer.alloc(20, 0x61);
    expect(fcgiOracle.stream(5, 2, twenty, 13)).toEqual(
      hex(`01 05 0002 0008 00 00 ${"61".repeat(8)} 01 05 0002 0008 00 00 ${"61".repeat(8)} 01 05 0002 0004 04 00 61616161 00000000`),
    );
    const big = fcgiOracle.stream(6, 1, Buffer.alloc(0xfff8 + 1));
    expect(big.subarray(0, 8)).toEqual(hex("01 06 0001 fff8 00 00"));
    expect(big.subarray(8 + 0xfff8, 16 + 0xfff8)).toEqual(hex("01 06 0001 0001 07 00"));
    expect(big.length).toBe(8 + 0xfff8 + 16);
    expect(fcgiOracle.pairs(["A", "x".repeat(128), "", ""])).toEqual(
      Buffer.concat([hex("01 80000080 41"), Buffer.alloc(128, 0x78), hex("00 00")]),
    );
    expect(fcgiOracle.frameResponse(1, "ok", true, 5)).toEqual(
      hex("01 06 0001 0002 06 00 6f6b 000000000000 01 06 0001 0000 00 00 01 03 0001 0008 00 00 00000005 00 000000"),
    );
    expect(fcgiOracle.frameResponse(1, null, false, 0)).toEqual(Buffer.alloc(0));
  });
});

describe("uwsgi oracle", () => {
  // modifier1 0, datasize 0x0013 (19) LE, modifier2 5; CONTENT_LENGTH=3.
  const request = "00 1300 05  0e00 434f4e54454e545f4c454e475448 0100 33";

  it("decodes a request and its body", () => {
    expect(uwsgi(hex(`${request} 616263`))).toEqual([
      { type: "REQUEST", modifier1: 0, modifier2: 5, vars: ["CONTENT_LENGTH", "3"], contentLength: 3 },
      { type: "BODY", data: "616263" },
      { type: "BODY_END" },
    ]);
    expect(uwsgi(hex("00 0000 00"))).toEqual([{ type: "REQUEST", modifier1: 0, modifier2: 0, vars: [], contentLength: 0 }, { type: "BODY_END" }]);
    expect(uwsgi(hex("00 0600 00 0100 ff 0100 e9"))).toEqual([
      { type: "REQUEST", modifier1: 0, modifier2: 0, vars: ["\u00ff", "\u00e9"], contentLength: 0 },
      { type: "BODY_END" },
    ]);
  });

  it("gives each error the offset the README defines", () => {
    expect(uwsgi(hex(`${request} 61626364`)).at(-1)).toEqual({ type: "ERROR", status: "UWSGI_TRAILING_DATA", offset: 26 });
    expect(uwsgi(hex(`${request} 6162`)).at(-1)).toEqual({ type: "ERROR", status: "UWSGI_TRUNCATED", offset: 25 });
    expect(uwsgi(hex(""))).toEqual([{ type: "ERROR", status: "UWSGI_TRUNCATED", offset: 0 }]);
    expect(uwsgi(hex("05 0000 00"))).toEqual([{ type: "ERROR", status: "UWSGI_MODIFIER", offset: 0 }]);
    expect(uwsgi(hex("00 0600 00 0100 41 0100 42"), { maxParams: 5 })).toEqual([{ type: "ERROR", status: "UWSGI_VARS_TOO_LARGE", offset: 0 }]);
    // Value length claims 2 bytes, 1 left: offset of the value's length prefix.
    expect(uwsgi(hex("00 0600 00 0100 41 0200 42"))).toEqual([{ type: "ERROR", status: "UWSGI_VARS_MALFORMED", offset: 7 }]);
    expect(uwsgi(hex("00 0100 00 01"))).toEqual([{ type: "ERROR", status: "UWSGI_VARS_MALFORMED", offset: 4 }]);
    expect(uwsgi(hex("00 0400 00 0120 0000"))).toEqual([{ type: "ERROR", status: "UWSGI_NAME_TOO_LONG", offset: 4 }]);
    const cl = (value: string) => uwsgiOracle.request(["A", "", "CONTENT_LENGTH", value]);
    expect(uwsgi(cl("1x")).at(-1)).toEqual({ type: "ERROR", status: "UWSGI_CONTENT_LENGTH", offset: 9 });
    expect(uwsgi(cl("12345678901234567")).at(-1)).toMatchObject({ status: "UWSGI_CONTENT_LENGTH" });
    expect(uwsgi(cl("9007199254740992")).at(-1)).toMatchObject({ status: "UWSGI_CONTENT_LENGTH" });
    expect(uwsgi(cl("9007199254740991"))[0]).toMatchObject({ type: "REQUEST", contentLength: 2 ** 53 - 1 });
    expect(uwsgi(cl(""))[0]).toMatchObject({ type: "REQUEST", contentLength: 0 });
    const twice = uwsgiOracle.request(["CONTENT_LENGTH", "1", "CONTENT_LENGTH", "2"]);
    expect(uwsgi(twice)).toEqual([{ type: "ERROR", status: "UWSGI_CONTENT_LENGTH", offset: 4 + 2 + 14 + 2 + 1 }]);
    expect(uwsgi(Buffer.concat([uwsgiOracle.request(["CONTENT_LENGTH", "01", "CONTENT_LENGTH", "1"]), hex("aa")]))[1]).toEqual({ type: "BODY", data: "aa" });
  });

  it("encodes the header and vars little-endian", () => {
    expect(uwsgiOracle.request(["CONTENT_LENGTH", "3"], 0, 5)).toEqual(hex(request));
    expect(uwsgiOracle.request([], 7, 9)).toEqual(hex("07 0000 09"));
  });
});

// The native uwsgi decoder against hand-written expected event logs (native/README.md),
// each packet fed whole, byte by byte and at random splits, with the same result.
import { describe, expect, it } from "vitest";
import { uwsgi } from "../../src/native.ts";
import { canonical, decodeAll, nativeDecoder, splits } from "./events.ts";

const cat = (...parts: (Buffer | Uint8Array | string)[]) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : p)));
const hex = (s: string) => Buffer.from(s).toString("hex");
const nginxVars = ["REQUEST_METHOD", "POST", "PATH_INFO", "/caf\xc3\xa9", "CONTENT_LENGTH", "5", "HTTP_X_FORWARDED_FOR", "a, b"];

interface Case {
  name: string;
  stream: Buffer;
  expected: unknown[];
}

const cases: Case[] = [
  {
    name: "an nginx-shaped POST with its body",
    stream: cat(uwsgi.request(nginxVars), "hello"),
    expected: [
      { type: "REQUEST", modifier1: 0, modifier2: 0, vars: nginxVars, contentLength: 5 },
      { type: "BODY", data: hex("hello") },
      { type: "BODY_END" },
    ],
  },
  {
    name: "a GET without CONTENT_LENGTH ends at once",
    stream: uwsgi.request(["REQUEST_METHOD", "GET"]),
    expected: [{ type: "REQUEST", modifier1: 0, modifier2: 0, vars: ["REQUEST_METHOD", "GET"], contentLength: 0 }, { type: "BODY_END" }],
  },
  {
    name: "an empty CONTENT_LENGTH is no body",
    stream: uwsgi.request(["CONTENT_LENGTH", ""]),
    expected: [{ type: "REQUEST", modifier1: 0, modifier2: 0, vars: ["CONTENT_LENGTH", ""], contentLength: 0 }, { type: "BODY_END" }],
  },
  {
    name: "an empty vars block",
    stream: uwsgi.request([]),
    expected: [{ type: "REQUEST", modifier1: 0, modifier2: 0, vars: [], contentLength: 0 }, { type: "BODY_END" }],
  },
  {
    name: "modifier2 is reported, UWSGI_* vars are plain data",
    stream: uwsgi.request(["UWSGI_FILE", "/etc/passwd", "UWSGI_MODULE", "os"], 0, 7),
    expected: [
      { type: "REQUEST", modifier1: 0, modifier2: 7, vars: ["UWSGI_FILE", "/etc/passwd", "UWSGI_MODULE", "os"], contentLength: 0 },
      { type: "BODY_END" },
    ],
  },
  {
    name: "modifier1 other than 0",
    stream: uwsgi.request(["A", "B"], 5),
    expected: [{ type: "ERROR", status: "UWSGI_MODIFIER", offset: 0 }],
  },
  {
    name: "a CONTENT_LENGTH that is not digits",
    stream: uwsgi.request(["A", "B", "CONTENT_LENGTH", "-1"]),
    expected: [{ type: "ERROR", status: "UWSGI_CONTENT_LENGTH", offset: 4 + 6 }],
  },
  {
    name: "two CONTENT_LENGTH that disagree",
    stream: uwsgi.request(["CONTENT_LENGTH", "1", "CONTENT_LENGTH", "2"]),
    expected: [{ type: "ERROR", status: "UWSGI_CONTENT_LENGTH", offset: 4 + 19 }],
  },
  {
    name: "two CONTENT_LENGTH that agree",
    stream: cat(uwsgi.request(["CONTENT_LENGTH", "1", "CONTENT_LENGTH", "1"]), "x"),
    expected: [
      { type: "REQUEST", modifier1: 0, modifier2: 0, vars: ["CONTENT_LENGTH", "1", "CONTENT_LENGTH", "1"], contentLength: 1 },
      { type: "BODY", data: hex("x") },
      { type: "BODY_END" },
    ],
  },
  {
    name: "a key that runs past the vars block",
    stream: Buffer.from([0, 4, 0, 0, 9, 0, 0x41, 0x42]),
    expected: [{ type: "ERROR", status: "UWSGI_VARS_MALFORMED", offset: 4 }],
  },
  {
    name: "a value length cut by the block end",
    stream: Buffer.from([0, 4, 0, 0, 1, 0, 0x41, 0x01]),
    expected: [{ type: "ERROR", status: "UWSGI_VARS_MALFORMED", offset: 7 }],
  },
  {
    name: "bytes after the body (one request per connection)",
    stream: cat(uwsgi.request(["CONTENT_LENGTH", "2"]), "okEXTRA"),
    expected: [
      { type: "REQUEST", modifier1: 0, modifier2: 0, vars: ["CONTENT_LENGTH", "2"], contentLength: 2 },
      { type: "BODY", data: hex("ok") },
      { type: "BODY_END" },
      { type: "ERROR", status: "UWSGI_TRAILING_DATA", offset: 4 + 2 + 14 + 2 + 1 + 2 },
    ],
  },
];

describe("uwsgi decoder: expected event logs at every split", () => {
  for (const c of cases) {
    it(c.name, () => {
      for (const split of splits(c.stream, 0x0b5e + c.stream.length)) {
        expect(canonical(decodeAll(nativeDecoder("uwsgi"), split.chunks)), split.name).toEqual(c.expected);
      }
    });
  }

  it("end() before the body is complete is UWSGI_TRUNCATED at the stream's length", () => {
    const whole = cat(uwsgi.request(nginxVars), "hello");
    for (const cut of [0, 2, 10, whole.length - 1]) {
      const d = nativeDecoder("uwsgi");
      d.push(whole.subarray(0, cut));
      expect(d.end()).toMatchObject([{ type: "ERROR", status: "UWSGI_TRUNCATED", offset: cut }]);
    }
    const d = nativeDecoder("uwsgi");
    d.push(whole);
    expect(d.end()).toEqual([]);
  });
});

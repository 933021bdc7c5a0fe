// Every codec limit at N (accepted) and N+1 (a coded error), with its default and its
// configurable range (native/README.md, "Limits").
import { describe, expect, it } from "vitest";
import { LIMITS, createFastCgiDecoder, createUwsgiDecoder, fcgi, uwsgi } from "../../src/native.ts";
import { nativeStatusCode } from "../../src/errors.ts";
import { decodeAll, nativeDecoder, type Event, type Limits } from "./events.ts";

const PARAMS = 4, STDIN = 5, RESPONDER = 1;
const KiB = 1024, MiB = 1024 * KiB;

/** A request whose params stream is exactly `size` bytes: one pair padded with a long value. */
function paramsOfSize(size: number): Buffer {
  const name = "HTTP_X_PAD";
  // 1 byte of name length + 4 bytes of value length (values >= 128 bytes)
  const value = "v".repeat(size - name.length - 1 - 4);
  const block = fcgi.pairs([name, value]);
  expect(block.length).toBe(size);
  return Buffer.concat([fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(PARAMS, 1, block), fcgi.streamEnd(PARAMS, 1), fcgi.streamEnd(STDIN, 1)]);
}

const decode = (protocol: "fastcgi" | "uwsgi", stream: Buffer, limits?: Limits): Event[] =>
  decodeAll(nativeDecoder(protocol, limits), [stream]);
const errorOf = (log: Event[]) => log.find((e) => e.type === "ERROR");

describe("limits", () => {
  it("exports the named constants", () => {
    expect(LIMITS).toMatchObject({
      defaultMaxParams: 64 * KiB,
      maxParamsCeiling: MiB,
      maxNameBytes: 8192,
      defaultMaxRequests: 100,
      maxRequestsCeiling: 65535,
      maxRecordContent: 0xfff8,
    });
  });

  describe("FastCGI params block (max-params)", () => {
    it("accepts 64 KiB by default and refuses 64 KiB + 1 with FCGI_PARAMS_TOO_LARGE", () => {
      expect(errorOf(decode("fastcgi", paramsOfSize(64 * KiB)))).toBeUndefined();
      const err = errorOf(decode("fastcgi", paramsOfSize(64 * KiB + 1)));
      expect(err).toMatchObject({ type: "ERROR", status: "FCGI_PARAMS_TOO_LARGE" });
      expect(nativeStatusCode((err as { status: string }).status)).toBe("TSGI_ERR_FCGI_PARAMS_TOO_LARGE");
    });

    it("accepts 1 MiB when configured to the ceiling and refuses 1 MiB + 1", () => {
      expect(errorOf(decode("fastcgi", paramsOfSize(MiB), { maxParams: MiB }))).toBeUndefined();
      expect(errorOf(decode("fastcgi", paramsOfSize(MiB + 1), { maxParams: MiB }))).toMatchObject({ status: "FCGI_PARAMS_TOO_LARGE" });
    });

    it("refuses a configuration above the 1 MiB ceiling", () => {
      expect(() => createFastCgiDecoder({ maxParams: MiB + 1 })).toThrow(expect.objectContaining({ code: "TSGI_ERR_NATIVE_ARGUMENT" }));
      expect(() => createFastCgiDecoder({ maxParams: 0 })).toThrow(/maxParams must be an integer from 1 to 1048576/);
    });

    it("stops at the record that crosses the limit, before buffering it", () => {
      const stream = paramsOfSize(1000);
      const log = decode("fastcgi", stream, { maxParams: 999 });
      // The first PARAMS record follows the 16-byte BEGIN_REQUEST.
      expect(errorOf(log)).toMatchObject({ status: "FCGI_PARAMS_TOO_LARGE", offset: 16 });
    });
  });

  describe("a single name (kMaxNameBytes)", () => {
    const fcgiName = (n: number) =>
      Buffer.concat([fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(PARAMS, 1, fcgi.pairs(["N".repeat(n), "v"])), fcgi.streamEnd(PARAMS, 1)]);

    it("FastCGI: 8192 bytes pass, 8193 are FCGI_NAME_TOO_LONG", () => {
      const ok = decode("fastcgi", fcgiName(8192));
      expect(ok.find((e) => e.type === "PARAMS")).toMatchObject({ params: ["N".repeat(8192), "v"] });
      expect(errorOf(decode("fastcgi", fcgiName(8193)))).toMatchObject({ status: "FCGI_NAME_TOO_LONG" });
    });

    it("uwsgi: 8192 bytes pass, 8193 are UWSGI_NAME_TOO_LONG at the key's length prefix", () => {
      const ok = decode("uwsgi", uwsgi.request(["N".repeat(8192), "v"]));
      expect(ok[0]).toMatchObject({ type: "REQUEST", vars: ["N".repeat(8192), "v"] });
      expect(errorOf(decode("uwsgi", uwsgi.request(["A", "b", "N".repeat(8193), "v"])))).toMatchObject({
        status: "UWSGI_NAME_TOO_LONG",
        offset: 4 + 2 + 1 + 2 + 1,
      });
    });
  });

  describe("uwsgi vars block (max-params)", () => {
    const varsOfSize = (n: number) => uwsgi.request(["V", "x".repeat(n - 2 - 1 - 2)]);

    it("accepts the largest datasize (65535) by default", () => {
      expect(decode("uwsgi", varsOfSize(65535))[0]).toMatchObject({ type: "REQUEST" });
    });

    it("accepts N and refuses N+1 with UWSGI_VARS_TOO_LARGE when max-params is N", () => {
      expect(decode("uwsgi", varsOfSize(1000), { maxParams: 1000 })[0]).toMatchObject({ type: "REQUEST" });
      expect(errorOf(decode("uwsgi", varsOfSize(1001), { maxParams: 1000 }))).toMatchObject({ status: "UWSGI_VARS_TOO_LARGE", offset: 0 });
      expect(() => createUwsgiDecoder({ maxParams: MiB + 1 })).toThrow(expect.objectContaining({ code: "TSGI_ERR_NATIVE_ARGUMENT" }));
    });

    it("CONTENT_LENGTH: 2^53-1 is a length, 2^53 and 17 digits are UWSGI_CONTENT_LENGTH", () => {
      expect(decode("uwsgi", uwsgi.request(["CONTENT_LENGTH", String(2 ** 53 - 1)]))[0]).toMatchObject({ contentLength: 2 ** 53 - 1 });
      expect(errorOf(decode("uwsgi", uwsgi.request(["CONTENT_LENGTH", String(2 ** 53)])))).toMatchObject({ status: "UWSGI_CONTENT_LENGTH" });
      expect(errorOf(decode("uwsgi", uwsgi.request(["CONTENT_LENGTH", "00000000000000001"])))).toMatchObject({ status: "UWSGI_CONTENT_LENGTH" });
    });
  });

  describe("FastCGI requests active on one connection (maxRequests)", () => {
    const begins = (from: number, count: number) =>
      Buffer.concat(Array.from({ length: count }, (_, i) => fcgi.beginRequest(from + i, RESPONDER, 1)));

    it("admits 100 by default; the 101st is OVERLOADED and stays inactive", () => {
      const d = nativeDecoder("fastcgi");
      const log = d.push(begins(1, 101));
      expect(log.filter((e) => e.type === "BEGIN")).toHaveLength(100);
      expect(log.at(-1)).toEqual({ type: "OVERLOADED", id: 101 });
      // Its later records are ignored, like any inactive id's.
      expect(d.push(Buffer.concat([fcgi.stream(PARAMS, 101, fcgi.pairs(["A", "B"])), fcgi.streamEnd(PARAMS, 101)]))).toEqual([]);
    });

    it("admits a new request once one is released", () => {
      const d = nativeDecoder("fastcgi", { maxRequests: 2 });
      expect(d.push(begins(1, 3)).map((e) => e.type)).toEqual(["BEGIN", "BEGIN", "OVERLOADED"]);
      d.release!(1);
      expect(d.push(begins(3, 1))).toEqual([{ type: "BEGIN", id: 3, role: RESPONDER, flags: 1 }]);
    });

    it("refuses a maxRequests outside 1..65535", () => {
      expect(() => createFastCgiDecoder({ maxRequests: 0 })).toThrow(expect.objectContaining({ code: "TSGI_ERR_NATIVE_ARGUMENT" }));
      expect(() => createFastCgiDecoder({ maxRequests: 65536 })).toThrow(expect.objectContaining({ code: "TSGI_ERR_NATIVE_ARGUMENT" }));
    });
  });
});

// Param names come out of the binding as V8's own property keys, made once per name and kept
// (native/binding/binding.h, NameCache): bounded at 256 names of at most 48 bytes, past which a
// name is a fresh string. Whatever the cache holds, every name must come out as it was sent.
import { describe, expect, test } from "vitest";
import { createFastCgiDecoder, createUwsgiDecoder, fcgi, uwsgi } from "../../src/native.ts";

function fastcgiNames(pairs: string[]): string[] {
  const d = createFastCgiDecoder({ maxParams: 1 << 20 });
  const ev = d.push(Buffer.concat([fcgi.beginRequest(1, 1, 0), fcgi.stream(4, 1, fcgi.pairs(pairs)), fcgi.streamEnd(4, 1)]));
  return ev[6] as string[];
}

describe("param names through the name cache", () => {
  test("every name as sent, past the cache's 256 names and 48 bytes, twice over", () => {
    const pairs: string[] = [];
    for (let i = 0; i < 400; i++) pairs.push(`HTTP_X_HEADER_${i}`, `v${i}`);
    pairs.push("HTTP_" + "L".repeat(60), "long", "__proto__", "p", "constructor", "c", "0", "zero", "4294967295", "big", "ÿÿ", "latin1");
    expect(fastcgiNames(pairs)).toEqual(pairs);
    expect(fastcgiNames(pairs)).toEqual(pairs);
  });

  test("uwsgi vars share the cache and come out as sent", () => {
    const vars = ["REQUEST_METHOD", "GET", "HTTP_X_HEADER_7", "seven", "__proto__", "p", "PATH_INFO", "/"];
    const d = createUwsgiDecoder();
    const ev = d.push(uwsgi.request(vars));
    expect(ev[2]).toEqual(vars);
  });

  test("an environ built from cached names has them as own keys", () => {
    const pairs = ["HTTP_HOST", "example.org", "REQUEST_METHOD", "POST"];
    const names = fastcgiNames(pairs);
    const o: Record<string, string> = {};
    for (let i = 0; i < names.length; i += 2) o[names[i]!] = names[i + 1]!;
    expect(o).toEqual({ HTTP_HOST: "example.org", REQUEST_METHOD: "POST" });
  });
});

// The native uwsgi decoder and encoder against the spec-literal oracle (test/oracle/uwsgi.ts):
// fast-check builds requests as nginx and Apache send them, breaks them on purpose and at
// random, feeds both decoders the same chunks and compares the canonical event logs. Seeded by
// TSGI_DIFF_SEED (else the clock); the seed is printed so a failure replays with
// `TSGI_DIFF_SEED=<seed> npx vitest run test/differential`.

import { isDeepStrictEqual } from "node:util";
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { byteString, bytes, differentialRuns, mutate, mutationsArb, seed } from "./common.ts";
import { canonical, decodeAll, nativeDecoder, splits, type Limits } from "../codec/events.ts";
import { uwsgi } from "../../src/native.ts";
import { UwsgiOracle, uwsgiOracle } from "../oracle/uwsgi.ts";

const RUNS = {
  valid: 1000,
  broken: 1000,
  mutated: 700,
  vars: 500,
  bytes: 200,
  encoder: 400,
};
const params = differentialRuns("uwsgi", RUNS);


/** Vars as nginx's uwsgi_params and Apache's mod_proxy_uwsgi send them, plus arbitrary bytes. */
const varsArb = fc
  .array(
    fc.tuple(
      fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "HTTP_HOST", "SCRIPT_NAME", "UWSGI_FILE", "") },
        { weight: 3, arbitrary: byteString(16) },
        { weight: 1, arbitrary: byteString(300) },
      ),
      fc.oneof({ weight: 2, arbitrary: fc.constant("") }, { weight: 4, arbitrary: byteString(30) }, { weight: 1, arbitrary: byteString(500) }),
    ),
    { maxLength: 10 },
  )
  .map((list) => list.flat());

interface Request {
  vars: string[];
  body: Uint8Array;
  modifier2: number;
}

/** A valid request: CONTENT_LENGTH equal to the body, placed anywhere, absent or empty when there is no body. */
const requestArb: fc.Arbitrary<Request> = fc
  .record({
    vars: varsArb,
    body: fc.oneof(bytes(0), bytes(200), bytes(3000)),
    modifier2: fc.oneof(fc.constant(0), fc.nat(255)),
    where: fc.nat(),
    form: fc.constantFrom("plain", "zeros", "twice", "absent-or-empty"),
  })
  .map(({ vars, body, modifier2, where, form }) => {
    const clean = [];
    for (let i = 0; i + 1 < vars.length; i += 2) if (vars[i] !== "CONTENT_LENGTH") clean.push(vars[i]!, vars[i + 1]!);
    const length = String(body.length);
    let cl: string[] = ["CONTENT_LENGTH", length];
    if (form === "zeros") cl = ["CONTENT_LENGTH", length.padStart(16, "0")];
    if (form === "twice") cl = ["CONTENT_LENGTH", length, "CONTENT_LENGTH", "0" + length];
    if (form === "absent-or-empty" && body.length === 0) cl = where % 2 ? [] : ["CONTENT_LENGTH", ""];
    const at = 2 * (where % (clean.length / 2 + 1));
    return { vars: [...clean.slice(0, at), ...cl, ...clean.slice(at)], body, modifier2 };
  });

function encode(r: Request, modifier1 = 0): Buffer {
  return Buffer.concat([uwsgiOracle.request(r.vars, modifier1, r.modifier2), r.body]);
}

const limitsArb: fc.Arbitrary<Limits> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.record({ maxParams: fc.integer({ min: 1, max: 400 }) }) },
  { weight: 1, arbitrary: fc.record({ maxParams: fc.integer({ min: 1, max: 1 << 20 }) }) },
);

/** Native and oracle over the same chunks (whole, byte by byte when short, two random splits); the log must not depend on the split. */
function agree(stream: Uint8Array, limits: Limits, splitSeed: number): void {
  const hex = Buffer.from(stream).toString("hex");
  let first: unknown[] | undefined;
  for (const { name, chunks } of splits(stream, splitSeed, 2)) {
    if (name === "byte by byte" && stream.length > 3000) continue;
    const native = canonical(decodeAll(nativeDecoder("uwsgi", limits), chunks));
    const oracle = canonical(decodeAll(new UwsgiOracle(limits), chunks));
    if (!isDeepStrictEqual(native, oracle)) {
      expect({ split: name, limits, stream: hex, log: native }).toEqual({ split: name, limits, stream: hex, log: oracle });
    }
    first ??= oracle;
    if (!isDeepStrictEqual(first, oracle)) expect({ split: name, stream: hex, log: oracle }).toEqual({ split: name, stream: hex, log: first });
  }
}

/** The vars block with one var replaced or added (raw: a value of any bytes, in order). */
function withVars(r: Request, extra: string[], at: number): Request {
  const i = 2 * (at % (r.vars.length / 2 + 1));
  return { ...r, vars: [...r.vars.slice(0, i), ...extra, ...r.vars.slice(i)] };
}

const badLength = fc.oneof(
  fc.constantFrom("-1", "+1", " 1", "1 ", "0x10", "1e3", "12345678901234567", "9007199254740992", "99999999999999999999", "\u00b2"),
  byteString(6).filter((s) => !/^[0-9]*$/.test(s)),
);

type Breaker = (r: Request, pick: number) => fc.Arbitrary<Buffer>;

const BREAKERS: Record<string, Breaker> = {
  modifier1: (r) => fc.integer({ min: 1, max: 255 }).map((m) => encode(r, m)),
  contentLength: (r, pick) => badLength.map((v) => encode(withVars(r, ["CONTENT_LENGTH", v], pick))),
  secondContentLength: (r, pick) =>
    fc.oneof(fc.nat(5000).map(String), fc.constant("")).map((v) => encode(withVars(withVars(r, ["CONTENT_LENGTH", v], pick), ["CONTENT_LENGTH", String(r.body.length)], pick + 1))),
  trailing: (r) => bytes(20).filter((b) => b.length > 0).map((t) => Buffer.concat([encode(r), t])),
  truncated: (r, pick) => fc.constant(encode(r)).map((s) => s.subarray(0, pick % s.length)),
  longName: (r, pick) => fc.integer({ min: 8190, max: 8194 }).map((n) => encode(withVars(r, ["K".repeat(n), "v"], pick))),
  datasize: (r) =>
    fc.integer({ min: -4, max: 4 }).map((delta) => {
      const s = encode(r);
      s.writeUInt16LE(Math.max(0, Math.min(0xffff, s.readUInt16LE(1) + delta)), 1);
      return s;
    }),
  bigVars: () => fc.integer({ min: 60000, max: 65535 }).map((n) => uwsgiOracle.request(["X", "v".repeat(n - 5)])),
};

describe(`uwsgi native decoder = oracle (seed ${seed})`, () => {
  it("valid requests", () => {
    fc.assert(
      fc.property(requestArb, limitsArb, fc.nat(), (r, limits, splitSeed) => agree(encode(r), limits, splitSeed)),
      params(RUNS.valid),
    );
  });

  it("broken requests: modifier1, CONTENT_LENGTH, trailing data, truncation, long names, datasize", () => {
    const broken = fc
      .tuple(requestArb, fc.constantFrom(...Object.keys(BREAKERS)), fc.nat())
      .chain(([r, name, pick]) => BREAKERS[name]!(r, pick));
    fc.assert(
      fc.property(broken, limitsArb, fc.nat(), (stream, limits, splitSeed) => agree(stream, limits, splitSeed)),
      params(RUNS.broken),
    );
  });

  it("mutated requests: byte flips, inserts and deletions", () => {
    const ops = mutationsArb;
    fc.assert(
      fc.property(requestArb, ops, limitsArb, fc.nat(), (r, mutations, limits, splitSeed) => agree(mutate(encode(r), mutations), limits, splitSeed)),
      params(RUNS.mutated),
    );
  });

  it("random vars blocks behind a valid header", () => {
    const size = fc.oneof({ weight: 4, arbitrary: fc.nat(24) }, fc.nat(0xffff)).map((n) => Buffer.from([n & 0xff, n >> 8]));
    const block = fc.array(fc.oneof(bytes(6), size, fc.constant(Buffer.from("CONTENT_LENGTH"))), { maxLength: 12 });
    fc.assert(
      fc.property(block, bytes(8), limitsArb, fc.nat(), (parts, tail, limits, splitSeed) => {
        const vars = Buffer.concat(parts);
        agree(Buffer.concat([Buffer.from([0, vars.length & 0xff, vars.length >> 8, 0]), vars, tail]), limits, splitSeed);
      }),
      params(RUNS.vars),
    );
  });

  it("random bytes", () => {
    fc.assert(
      fc.property(fc.oneof(bytes(40), bytes(40).map((b) => Buffer.concat([Buffer.from([0]), b]))), limitsArb, fc.nat(), (stream, limits, splitSeed) =>
        agree(stream, limits, splitSeed),
      ),
      params(RUNS.bytes),
    );
  });
});

describe("uwsgi native decoder = oracle, fixed cases", () => {
  // README: "an empty or absent CONTENT_LENGTH is 0", and a second CONTENT_LENGTH with a
  // different value is an error: "10" then "" are two different lengths.
  it("an empty CONTENT_LENGTH after a non-empty one", () => {
    agree(uwsgiOracle.request(["CONTENT_LENGTH", "1", "CONTENT_LENGTH", ""]), {}, 1);
    agree(uwsgiOracle.request(["CONTENT_LENGTH", "", "CONTENT_LENGTH", "1"]), {}, 1);
    agree(uwsgiOracle.request(["CONTENT_LENGTH", "", "CONTENT_LENGTH", "0"]), {}, 1);
  });
});

describe(`uwsgi native encoder = oracle (seed ${seed})`, () => {
  it("request", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(byteString(40), byteString(3000)), { maxLength: 10 }), fc.nat(255), fc.nat(255), (list, m1, m2) => {
        const vars = list.length % 2 ? list.slice(1) : list;
        expect(uwsgi.request(vars, m1, m2).toString("hex")).toBe(uwsgiOracle.request(vars, m1, m2).toString("hex"));
      }),
      params(RUNS.encoder),
    );
  });

  it("request at the 16-bit datasize limit", () => {
    const vars = ["A", "b".repeat(0xffff - 2 - 1 - 2)];
    expect(uwsgi.request(vars).equals(uwsgiOracle.request(vars))).toBe(true);
    expect(() => uwsgi.request(["A", "b".repeat(0xffff - 2 - 1 - 2 + 1)])).toThrow();
  });
});

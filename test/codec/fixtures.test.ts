// The byte captures recorded from real nginx and Apache httpd (test/codec/fixtures/, made by
// record.ts): each is decoded whole, byte by byte and at random splits with the same result,
// matches its reviewed <name>.events.json, agrees with the oracle, and shows what an
// application would see from that front-server setup.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { canonical, decodeAll, nativeDecoder, splits, type Event, type EventDecoder, type Protocol } from "./events.ts";
import { FastCgiOracle } from "../oracle/fastcgi.ts";
import { UwsgiOracle } from "../oracle/uwsgi.ts";
import {
  FIXTURES_DIR,
  answerPoints,
  cutAt,
  fcgiRecords,
  fixtureBytes,
  loadManifest,
  sha256,
  storedForm,
  type Fixture,
  type RecordHeader,
} from "./fixtures/manifest.ts";

const manifest = loadManifest();

type Make = (p: Protocol) => EventDecoder;
const native: Make = (p) => nativeDecoder(p);
const oracle: Make = (p) => (p === "fastcgi" ? new FastCgiOracle() : new UwsgiOracle());

/** Decodes like a server: FastCGI ids released on STDIN_END, and never a read spanning an answer point. */
function decode(make: Make, f: Fixture, bytes: Uint8Array, chunks: Uint8Array[]): Event[] {
  const fed = f.protocol === "fastcgi" ? cutAt(chunks, answerPoints(bytes)) : chunks;
  return coalesce(decodeAll(make(f.protocol), fed, true));
}

// The checks of what each front server sent read whole bodies: adjacent chunks of a request
// are joined into one event (canonical() does the same, but into hex).
function coalesce(log: Event[]): Event[] {
  const out: Event[] = [];
  for (let i = 0; i < log.length; ) {
    const ev = log[i]!;
    if (!("data" in ev)) {
      out.push(ev);
      i++;
      continue;
    }
    const run: Uint8Array[] = [];
    let j = i;
    for (; j < log.length; j++) {
      const next = log[j]!;
      if (next.type !== ev.type || !("data" in next) || ("id" in next && "id" in ev && next.id !== ev.id)) break;
      run.push(next.data);
    }
    out.push({ ...ev, data: new Uint8Array(Buffer.concat(run)) });
    i = j;
  }
  return out;
}

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");
/** A UTF-8 text as the decoders show it: one char per byte. */
const asByteString = (text: string) => Buffer.from(text, "utf8").toString("latin1");

/** Name → values (in order) of a flat [name0, value0, …] list. */
function pairs(flat: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) out.set(flat[i]!, [...(out.get(flat[i]!) ?? []), flat[i + 1]!]);
  return out;
}

/** The single value of `name`, failing when it is repeated; undefined when absent. */
function one(p: Map<string, string[]>, name: string): string | undefined {
  const v = p.get(name);
  expect(v?.length ?? 1, `${name} sent ${v?.length} times`).toBe(1);
  return v?.[0];
}

const types = (log: Event[]) => log.map((e) => e.type);
const ofType = <T extends Event["type"]>(log: Event[], t: T) => log.filter((e) => e.type === t) as Extract<Event, { type: T }>[];
const paramsOf = (log: Event[], n = 0) => pairs(ofType(log, "PARAMS")[n]!.params);
const varsOf = (log: Event[]) => pairs(ofType(log, "REQUEST")[0]!.vars);
const dataOf = (log: Event[], t: "STDIN" | "BODY") => Buffer.concat(ofType(log, t).map((e) => e.data));
const paramsRecords = (recs: RecordHeader[]) => recs.filter((r) => r.type === 4 && r.contentLength > 0);
const fact = (f: Fixture, k: string) => f.facts[k] as string;
const numFact = (f: Fixture, k: string) => f.facts[k] as number;

/** Name-value pairs (FastCGI §3.4) of one record's content; throws when a pair runs past it. */
function pairsInRecord(bytes: Uint8Array, r: RecordHeader): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = r.offset + 8 + r.contentLength;
  let at = r.offset + 8;
  let count = 0;
  const len = () => {
    if (view.getUint8(at) < 0x80) return view.getUint8(at++);
    const n = view.getUint32(at) & 0x7fffffff;
    at += 4;
    return n;
  };
  while (at < end) {
    const n = len();
    const v = len();
    at += n + v;
    if (at > end) throw new Error(`pair cut at the end of the record at ${r.offset}`);
    count++;
  }
  return count;
}

/** What a user of each setup would see, beyond the decoders' agreement. */
const checks: Record<string, (log: Event[], f: Fixture, bytes: Uint8Array, recs: RecordHeader[]) => void> = {
  "nginx-fastcgi": (log, f, _bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS", "STDIN_END"]);
    expect(log[0]).toEqual({ type: "BEGIN", id: 1, role: 1, flags: 0 });
    const p = paramsOf(log);
    expect(one(p, "REQUEST_METHOD")).toBe("GET");
    expect(one(p, "REQUEST_URI")).toBe(fact(f, "requestUri"));
    expect(one(p, "QUERY_STRING")).toBe(fact(f, "queryString"));
    // $fastcgi_script_name is the decoded, normalised URI: the whole path, as UTF-8 bytes.
    expect(one(p, "SCRIPT_NAME")).toBe(asByteString(fact(f, "scriptNameUtf8")));
    expect(one(p, "DOCUMENT_URI")).toBe(asByteString(fact(f, "scriptNameUtf8")));
    expect(p.has("PATH_INFO")).toBe(false);
    expect(p.has("SCRIPT_FILENAME")).toBe(false);
    // fastcgi_params sends every variable, empty or not (only HTTPS is if_not_empty).
    expect(one(p, "CONTENT_LENGTH")).toBe("");
    expect(one(p, "CONTENT_TYPE")).toBe("");
    // Debian's fastcgi_params adds `HTTP_HOST $host` (no port), which hides the client's Host.
    expect(one(p, "HTTP_HOST")).toBe("127.0.0.1");
    expect(one(p, "HTTP_X_REQUEST_ID")).toBe("7f3a");
    expect(one(p, "HTTP_ACCEPT_LANGUAGE")).toBe("fr-CH, fr;q=0.9");
    expect(one(p, "HTTP_USER_AGENT")).toBe("fixtures/1.0");
    expect(paramsRecords(recs)).toHaveLength(1);
    for (const r of recs) expect((r.contentLength + r.paddingLength) % 8).toBe(0);
  },
  "nginx-fastcgi-keepconn": (log, f, _bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS", "STDIN_END", "BEGIN", "PARAMS", "STDIN", "STDIN_END"]);
    expect(ofType(log, "BEGIN")).toEqual([
      { type: "BEGIN", id: 1, role: 1, flags: 1 },
      { type: "BEGIN", id: 1, role: 1, flags: 1 },
    ]);
    expect(one(paramsOf(log, 0), "REQUEST_URI")).toBe("/first?n=1");
    const second = paramsOf(log, 1);
    expect(one(second, "REQUEST_METHOD")).toBe("POST");
    expect(one(second, "REQUEST_URI")).toBe("/second");
    expect(one(second, "CONTENT_LENGTH")).toBe(String(fact(f, "postBody").length));
    expect(latin1(dataOf(log, "STDIN"))).toBe(fact(f, "postBody"));
    expect(new Set(recs.map((r) => r.id))).toEqual(new Set([1]));
  },
  "nginx-fastcgi-chunked-unbuffered": (log, f, _bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS", "STDIN", "STDIN_END"]);
    const p = paramsOf(log);
    // No length is known: the param is there, empty (nginx sends $content_length as it is).
    expect(one(p, "CONTENT_LENGTH")).toBe("");
    expect(one(p, "HTTP_TRANSFER_ENCODING")).toBe("chunked");
    const body = dataOf(log, "STDIN");
    expect(body.length).toBe(numFact(f, "uploadLength"));
    expect(sha256(body)).toBe(fact(f, "uploadSha256"));
    // Streamed as the client's chunks arrived: many STDIN records of varying sizes.
    const stdin = recs.filter((r) => r.type === 5 && r.contentLength > 0);
    expect(stdin.length).toBeGreaterThan(2);
    expect(new Set(stdin.map((r) => r.contentLength)).size).toBeGreaterThan(1);
  },
  "nginx-fastcgi-post": (log, f, _bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS", "STDIN", "STDIN_END"]);
    const p = paramsOf(log);
    expect(one(p, "REQUEST_METHOD")).toBe("POST");
    expect(one(p, "CONTENT_LENGTH")).toBe(String(numFact(f, "bodyLength")));
    // nginx also passes the client's Content-Length header itself.
    expect(one(p, "HTTP_CONTENT_LENGTH")).toBe(String(numFact(f, "bodyLength")));
    const body = dataOf(log, "STDIN");
    expect(body.length).toBe(numFact(f, "bodyLength"));
    expect(sha256(body)).toBe(fact(f, "bodySha256"));
    for (const r of recs) expect((r.contentLength + r.paddingLength) % 8).toBe(0);
  },
  "nginx-uwsgi": (log, f) => {
    expect(types(log)).toEqual(["REQUEST", "BODY", "BODY_END"]);
    const req = ofType(log, "REQUEST")[0]!;
    expect([req.modifier1, req.modifier2]).toEqual([0, 0]);
    expect(req.contentLength).toBe(fact(f, "body").length);
    const v = varsOf(log);
    expect(one(v, "CONTENT_LENGTH")).toBe(String(fact(f, "body").length));
    expect(one(v, "PATH_INFO")).toBe("/api/items");
    expect(v.has("SCRIPT_NAME")).toBe(false);
    // nginx 1.22 passes repeated headers one by one; merging ("a, b", "a=1; b=2") came in 1.23.0.
    expect(v.get("HTTP_X_FORWARDED_FOR")).toEqual(f.facts.forwardedFor);
    expect(v.get("HTTP_COOKIE")).toEqual(f.facts.cookies);
    expect(latin1(dataOf(log, "BODY"))).toBe(fact(f, "body"));
  },
  "apache-proxy-fcgi": (log, f, _bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS", "STDIN", "STDIN_END"]);
    expect(log[0]).toEqual({ type: "BEGIN", id: 1, role: 1, flags: 0 });
    const p = paramsOf(log);
    expect(one(p, "REQUEST_METHOD")).toBe("POST");
    expect(one(p, "REQUEST_URI")).toBe("/app/hello/world?x=1");
    expect(one(p, "SCRIPT_NAME")).toBe(fact(f, "scriptName"));
    expect(p.has("PATH_INFO")).toBe(false);
    expect(one(p, "SCRIPT_FILENAME")).toMatch(/^proxy:fcgi:\/\/127\.0\.0\.1:\d+\/hello\/world$/);
    expect(one(p, "CONTENT_LENGTH")).toBe(String(fact(f, "body").length));
    expect(latin1(dataOf(log, "STDIN"))).toBe(fact(f, "body"));
    for (const r of recs) expect(r.paddingLength).toBe(0);
  },
  "apache-proxy-fcgi-big-header": (log, f, bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS", "STDIN", "STDIN_END"]);
    const p = paramsOf(log);
    expect(p.has("HTTP_X_BIG")).toBe(false);
    expect(one(p, "HTTP_X_SMALL")).toBe("kept");
    expect(f.serverLog.join("\n")).toMatch(/AH02536: couldn't encode envvar 'HTTP_X_BIG' in 16384 bytes/);
    // The skipped variable also ends the record being filled: two small PARAMS records.
    const params = paramsRecords(recs);
    expect(params).toHaveLength(2);
    for (const r of params) pairsInRecord(bytes, r);
    expect(latin1(dataOf(log, "STDIN"))).toBe(fact(f, "body"));
  },
  "apache-proxy-fcgi-many-headers": (log, f, bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS", "STDIN_END"]);
    const params = paramsRecords(recs);
    expect(params.length).toBeGreaterThanOrEqual(2);
    let total = 0;
    for (const r of params) {
      expect(r.contentLength).toBeLessThanOrEqual(16384);
      expect(r.paddingLength).toBe(0);
      total += pairsInRecord(bytes, r); // Apache never cuts a pair between records.
    }
    const p = paramsOf(log);
    expect(total).toBe(ofType(log, "PARAMS")[0]!.params.length / 2);
    for (let i = 0; i < numFact(f, "fillerCount"); i++) {
      expect(one(p, `HTTP_X_FILLER_${String(i).padStart(2, "0")}`)).toBe("f".repeat(numFact(f, "fillerLength")));
    }
  },
  "apache-proxy-uwsgi": (log, f) => {
    expect(types(log)).toEqual(["REQUEST", "BODY", "BODY_END"]);
    const req = ofType(log, "REQUEST")[0]!;
    expect([req.modifier1, req.modifier2]).toEqual([0, 0]);
    expect(req.contentLength).toBe(fact(f, "body").length);
    const v = varsOf(log);
    expect(one(v, "REQUEST_URI")).toBe("/app/echo/x%20y?z=1");
    // PATH_INFO is the tail of the uwsgi:// URL, unescaped; SCRIPT_NAME the mount prefix.
    expect(one(v, "PATH_INFO")).toBe("/echo/x y");
    expect(one(v, "SCRIPT_NAME")).toBe("/app");
    expect(one(v, "QUERY_STRING")).toBe("z=1");
    expect(one(v, "CONTENT_LENGTH")).toBe(String(fact(f, "body").length));
    expect(latin1(dataOf(log, "BODY"))).toBe(fact(f, "body"));
  },
  "apache-authnz-fcgi": (log, f, _bytes, recs) => {
    expect(types(log)).toEqual(["BEGIN", "PARAMS"]);
    expect(log[0]).toEqual({ type: "BEGIN", id: 1, role: 2, flags: 0 });
    const p = paramsOf(log);
    expect(one(p, "FCGI_ROLE")).toBe("AUTHORIZER");
    expect(one(p, "FCGI_APACHE_ROLE")).toBe("AUTHENTICATOR");
    expect(one(p, "REMOTE_USER")).toBe(fact(f, "user"));
    expect(one(p, "REMOTE_PASSWD")).toBe(fact(f, "password"));
    for (const absent of ["CONTENT_LENGTH", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "HTTP_AUTHORIZATION"]) {
      expect(p.has(absent), absent).toBe(false);
    }
    expect(recs.filter((r) => r.type === 5)).toEqual([]);
  },
};

describe.each(manifest.fixtures.map((f) => [f.name, f] as const))("%s", (name, f) => {
  const bytes = fixtureBytes(f);
  const whole = decode(native, f, bytes, [bytes]);

  it("is the recorded capture", () => {
    expect(bytes.length).toBe(f.bytes);
    expect(sha256(bytes)).toBe(f.sha256);
    if (f.protocol === "fastcgi") {
      const recs = fcgiRecords(bytes);
      const last = recs.at(-1)!;
      expect(last.offset + 8 + last.contentLength + last.paddingLength).toBe(bytes.length);
      for (const r of recs) expect([r.version, r.id]).toEqual([1, 1]);
    }
  });

  it("decodes to the same log whole, byte by byte and at random splits", () => {
    const expected = canonical(whole);
    for (const split of splits(bytes, 0x5eed + f.bytes)) {
      expect(canonical(decode(native, f, bytes, split.chunks)), split.name).toEqual(expected);
    }
  });

  it(`matches ${name}.events.json`, () => {
    const stored: unknown = JSON.parse(readFileSync(join(FIXTURES_DIR, `${name}.events.json`), "utf8"));
    expect(storedForm(canonical(whole))).toEqual(stored);
  });

  it("agrees with the oracle", () => {
    expect(canonical(decode(oracle, f, bytes, [bytes]))).toEqual(canonical(whole));
    const [, byteByByte] = splits(bytes, 1, 0);
    expect(canonical(decode(oracle, f, bytes, byteByByte!.chunks))).toEqual(canonical(whole));
  });

  it("shows what the front server sent", () => {
    const check = checks[name];
    expect(check, `no checks for fixture ${name}`).toBeDefined();
    check!(whole, f, bytes, f.protocol === "fastcgi" ? fcgiRecords(bytes) : []);
  });
});

it("covers every capture the manifest lists, and only those", () => {
  expect(manifest.fixtures.map((f) => f.name).sort()).toEqual(Object.keys(checks).sort());
});

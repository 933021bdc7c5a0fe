// Raw sockets straight to `tsgi serve`'s FastCGI and uwsgi listeners (no front server):
// malformed input — garbage, FastCGI version 2, absurd lengths, truncated packets, a half-sent
// request held open past `--header-timeout 1s`, uwsgi modifier1 5, a bad CONTENT_LENGTH — must
// close that connection with one log line naming the peer (address:port) and the TSGI_ERR_
// code, and the next normal request must succeed. Then FastCGI's management side on the wire:
// FCGI_GET_VALUES, an unknown management type, role FILTER, two requests multiplexed on one
// connection, FCGI_ABORT_REQUEST answered at once (and seen by the application), and HEAD
// over both protocols carrying no body bytes. Requests are built with src/native.ts's
// encoders and checked with its decoder; responses are split into records here.
// bad-input.test.ts runs it against the native listeners, bad-input-net.test.ts against the
// node:net servers (TSGI_NATIVE_IO=0).

import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createFastCgiDecoder, EVENT, fcgi, uwsgi } from "../../src/native.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";

const FCGI_BEGIN_REQUEST = 1;
const FCGI_ABORT_REQUEST = 2;
const FCGI_END_REQUEST = 3;
const FCGI_PARAMS = 4;
const FCGI_STDIN = 5;
const FCGI_STDOUT = 6;
const FCGI_GET_VALUES = 9;
const FCGI_GET_VALUES_RESULT = 10;
const FCGI_UNKNOWN_TYPE = 11;
const RESPONDER = 1;
const FILTER = 3;
const KEEP_CONN = 1;
const FCGI_UNKNOWN_ROLE = 3;

/** The whole suite against one `tsgi serve` process started with `env` added to its environment. */
export function defineBadInputSuite(env?: Record<string, string>): void {
  let tsgi: TsgiProcess;
  let fcgiPort: number;
  let uwsgiPort: number;

  beforeAll(async () => {
    tsgi = await startTsgi({ listen: [{ proto: "fastcgi" }, { proto: "uwsgi" }], args: ["--header-timeout", "1s"], ...(env ? { env } : {}) });
    fcgiPort = tsgi.tcp("fastcgi").port;
    uwsgiPort = tsgi.tcp("uwsgi").port;
  });

  afterAll(async () => {
    await tsgi?.stop();
  });

  // ---- a raw connection ---------------------------------------------------------------------

  interface Conn {
    sock: Socket;
    /** "127.0.0.1:PORT" as tsgi names this peer. */
    peer: string;
    received(): Buffer;
    closed: Promise<void>;
    /** Resolves once `check(received)` holds (rejects after `timeoutMs`). */
    until(check: (b: Buffer) => boolean, timeoutMs?: number): Promise<Buffer>;
  }

  async function open(port: number): Promise<Conn> {
    const sock = connect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    const chunks: Buffer[] = [];
    const waiters: (() => void)[] = [];
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      for (const w of waiters.splice(0)) w();
    });
    sock.on("error", () => undefined);
    const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
    const received = () => Buffer.concat(chunks);
    return {
      sock,
      peer: `127.0.0.1:${sock.localPort}`,
      received,
      closed,
      async until(check, timeoutMs = 5000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const b = received();
          if (check(b)) return b;
          if (Date.now() > deadline || sock.destroyed) throw new Error(`connection ${sock.localPort}: condition not met; received ${b.length} bytes`);
          await new Promise<void>((r) => {
            waiters.push(r);
            setTimeout(r, 50);
          });
        }
      },
    };
  }

  async function closedWithin(c: Conn, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      c.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`tsgi did not close the connection from ${c.peer} within ${ms} ms`)), ms);
      }),
    ]);
    clearTimeout(timer);
  }

  // ---- FastCGI records ------------------------------------------------------------------------

  interface FcgiRecord {
    version: number;
    type: number;
    id: number;
    content: Buffer;
  }

  /** Splits what tsgi wrote into records (a trailing partial record is left out). */
  function records(b: Buffer): FcgiRecord[] {
    const out: FcgiRecord[] = [];
    let at = 0;
    while (at + 8 <= b.length) {
      const len = b.readUInt16BE(at + 4);
      const pad = b[at + 6]!;
      if (at + 8 + len + pad > b.length) break;
      out.push({ version: b[at]!, type: b[at + 1]!, id: b.readUInt16BE(at + 2), content: b.subarray(at + 8, at + 8 + len) });
      at += 8 + len + pad;
    }
    return out;
  }

  /** Name-value pairs (spec §3.4) of a record's content. */
  function pairsOf(b: Buffer): Record<string, string> {
    const out: Record<string, string> = {};
    let at = 0;
    const len = () => {
      if (b[at]! < 0x80) return b[at++]!;
      const n = b.readUInt32BE(at) & 0x7fffffff;
      at += 4;
      return n;
    };
    while (at < b.length) {
      const n = len();
      const v = len();
      out[b.toString("latin1", at, at + n)] = b.toString("latin1", at + n, at + n + v);
      at += n + v;
    }
    return out;
  }

  function params(path: string, extra: string[] = []): string[] {
    const q = path.indexOf("?");
    return [
      "REQUEST_METHOD", "GET",
      "REQUEST_URI", path,
      "DOCUMENT_URI", q < 0 ? path : path.slice(0, q),
      "QUERY_STRING", q < 0 ? "" : path.slice(q + 1),
      "SERVER_PROTOCOL", "HTTP/1.1",
      "REMOTE_ADDR", "127.0.0.1",
      ...extra,
    ];
  }

  /** One whole FastCGI request's records: BEGIN, PARAMS, empty PARAMS, STDIN, empty STDIN. */
  function fcgiRecords(id: number, list: string[], body = "", flags = 0): Buffer[] {
    const parts = [fcgi.beginRequest(id, RESPONDER, flags), fcgi.stream(FCGI_PARAMS, id, fcgi.pairs(list)), fcgi.streamEnd(FCGI_PARAMS, id)];
    if (body) parts.push(fcgi.stream(FCGI_STDIN, id, body));
    parts.push(fcgi.streamEnd(FCGI_STDIN, id));
    return parts;
  }

  const fcgiRequest = (id: number, list: string[], body = "", flags = 0) => Buffer.concat(fcgiRecords(id, list, body, flags));

  function stdoutOf(recs: FcgiRecord[], id: number): string {
    return Buffer.concat(recs.filter((r) => r.type === FCGI_STDOUT && r.id === id).map((r) => r.content)).toString("utf8");
  }

  const hasEnd = (id: number) => (b: Buffer) => records(b).some((r) => r.type === FCGI_END_REQUEST && r.id === id);

  /** A normal FastCGI request on a new connection succeeds (tsgi closes it: no FCGI_KEEP_CONN). */
  async function fcgiWorks(): Promise<void> {
    const c = await open(fcgiPort);
    c.sock.write(fcgiRequest(1, params("/environ?after=bad")));
    await closedWithin(c, 5000);
    const recs = records(c.received());
    const out = stdoutOf(recs, 1);
    expect(out).toMatch(/^Status: 200 OK\r\n/);
    expect(out).toContain('"QUERY_STRING":"after=bad"');
    const end = recs.find((r) => r.type === FCGI_END_REQUEST);
    expect(end?.content[4]).toBe(0); // FCGI_REQUEST_COMPLETE
  }

  /** A normal uwsgi request on a new connection succeeds. */
  async function uwsgiWorks(): Promise<void> {
    const c = await open(uwsgiPort);
    c.sock.write(uwsgi.request(params("/environ?after=bad")));
    await closedWithin(c, 5000);
    const text = c.received().toString("utf8");
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain('"QUERY_STRING":"after=bad"');
  }

  /** The error-log lines that name `peer`. */
  const linesAbout = (peer: string) => tsgi.stderr().split("\n").filter((l) => l.includes(`${peer}:`) || l.includes(`${peer} `));

  /** The one log line about `peer`; it must name the code. */
  async function logLine(peer: string, code: RegExp): Promise<string> {
    await tsgi.waitForStderr(new RegExp(`${peer.replace(/\./g, "\\.")}\\b.*`), 5000);
    const lines = linesAbout(peer);
    expect(lines, `log lines naming ${peer}`).toHaveLength(1);
    expect(lines[0]).toMatch(code);
    return lines[0]!;
  }

  // ---- malformed input ------------------------------------------------------------------------

  describe("fastcgi listener: malformed input closes the connection with one log line", () => {
    const cases: { name: string; code: RegExp; send: () => Buffer; endAfter?: boolean }[] = [
      { name: "garbage (an HTTP request on the FastCGI port)", code: /TSGI_ERR_FCGI_VERSION/, send: () => Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n") },
      {
        name: "a record with version 2",
        code: /TSGI_ERR_FCGI_VERSION/,
        send: () => Buffer.from([2, FCGI_BEGIN_REQUEST, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      },
      {
        name: "a param name length of 0x7fffffff (4-byte form)",
        code: /TSGI_ERR_FCGI_NAME_TOO_LONG/,
        send: () => {
          const absurd = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01, 0x41, 0x42]);
          return Buffer.concat([fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(FCGI_PARAMS, 1, absurd), fcgi.streamEnd(FCGI_PARAMS, 1)]);
        },
      },
      {
        name: "a param value length of 0x7fffffff (4-byte form)",
        code: /TSGI_ERR_FCGI_PARAMS_MALFORMED/,
        send: () => {
          const absurd = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0x41, 0x42]);
          return Buffer.concat([fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(FCGI_PARAMS, 1, absurd), fcgi.streamEnd(FCGI_PARAMS, 1)]);
        },
      },
      {
        name: "a truncated record, then the client closes",
        code: /TSGI_ERR_FCGI_TRUNCATED/,
        send: () => Buffer.concat([fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(FCGI_PARAMS, 1, fcgi.pairs(params("/environ"))).subarray(0, 20)]),
        endAfter: true,
      },
    ];

    for (const c of cases) {
      test(`fastcgi: ${c.name}`, async () => {
        const conn = await open(fcgiPort);
        conn.sock.write(c.send());
        if (c.endAfter) conn.sock.end();
        await closedWithin(conn, 3000);
        expect(records(conn.received()).filter((r) => r.type === FCGI_STDOUT)).toHaveLength(0);
        await logLine(conn.peer, c.code);
        await fcgiWorks();
      });
    }

    test("fastcgi: a half-sent request held open is closed by header-timeout (1 s)", async () => {
      const conn = await open(fcgiPort);
      const started = Date.now();
      conn.sock.write(Buffer.concat([fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(FCGI_PARAMS, 1, fcgi.pairs(params("/environ")))]));
      await closedWithin(conn, 4000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      await logLine(conn.peer, /header-timeout.*TSGI_ERR_\w+|TSGI_ERR_\w+.*header-timeout/);
      await fcgiWorks();
    });

    test("fastcgi: a keep-conn connection idle after its request is closed at header-timeout, without a log line", async () => {
      const conn = await open(fcgiPort);
      conn.sock.write(fcgiRequest(1, params("/environ?idle=1"), "", KEEP_CONN));
      await conn.until(hasEnd(1));
      const answered = Date.now();
      await closedWithin(conn, 4000);
      expect(Date.now() - answered).toBeGreaterThanOrEqual(900);
      // The request's own access line goes to stdout; nothing about this peer on stderr.
      await new Promise((r) => setTimeout(r, 200));
      const lines = linesAbout(conn.peer);
      expect(lines).toEqual([]);
    });

    test("fastcgi: header-timeout runs from a keep-conn connection's last request, not its first (requests 0.6 s apart keep it open)", async () => {
      const conn = await open(fcgiPort);
      for (let id = 1; id <= 4; id++) {
        conn.sock.write(fcgiRequest(id, params(`/environ?spaced=${id}`), "", KEEP_CONN));
        await conn.until(hasEnd(id));
        if (id < 4) await new Promise((r) => setTimeout(r, 600));
      }
      // 1.8 s after the first request, its connection still open and answering.
      expect(await Promise.race([conn.closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("open"), 50))])).toBe("open");
      const answered = Date.now();
      await closedWithin(conn, 4000);
      expect(Date.now() - answered).toBeGreaterThanOrEqual(900);
      expect(records(conn.received()).filter((r) => r.type === FCGI_END_REQUEST)).toHaveLength(4);
    });
  });

  describe("uwsgi listener: malformed input closes the connection with one log line", () => {
    const cases: { name: string; code: RegExp; send: () => Buffer; endAfter?: boolean }[] = [
      {
        name: "garbage vars (a key length running past the block)",
        code: /TSGI_ERR_UWSGI_VARS_MALFORMED/,
        // datasize 16; the first key claims 100 bytes of the 14 left.
        send: () => Buffer.concat([Buffer.from([0, 16, 0, 0, 100, 0]), Buffer.from("garbage-garbag")]),
      },
      { name: "modifier1 5 (PSGI)", code: /TSGI_ERR_UWSGI_MODIFIER/, send: () => uwsgi.request(params("/environ"), 5) },
      {
        name: "a CONTENT_LENGTH that is not a length",
        code: /TSGI_ERR_UWSGI_CONTENT_LENGTH/,
        send: () => uwsgi.request(params("/environ", ["CONTENT_LENGTH", "12abc"])),
      },
      {
        name: "a truncated packet, then the client closes",
        code: /TSGI_ERR_UWSGI_TRUNCATED/,
        send: () => uwsgi.request(params("/environ")).subarray(0, 30),
        endAfter: true,
      },
    ];

    for (const c of cases) {
      test(`uwsgi: ${c.name}`, async () => {
        const conn = await open(uwsgiPort);
        conn.sock.write(c.send());
        if (c.endAfter) conn.sock.end();
        await closedWithin(conn, 3000);
        expect(conn.received().length, "no response bytes").toBe(0);
        await logLine(conn.peer, c.code);
        await uwsgiWorks();
      });
    }

    test("uwsgi: a half-sent packet held open is closed by header-timeout (1 s)", async () => {
      const conn = await open(uwsgiPort);
      const started = Date.now();
      conn.sock.write(uwsgi.request(params("/environ")).subarray(0, 40));
      await closedWithin(conn, 4000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      await logLine(conn.peer, /header-timeout.*TSGI_ERR_\w+|TSGI_ERR_\w+.*header-timeout/);
      await uwsgiWorks();
    });
  });

  // ---- FastCGI management and multiplexing ----------------------------------------------------

  describe("fastcgi listener: management records, roles, multiplexing, abort", () => {
    test("fastcgi: the requests this file builds are well-formed (checked with the native decoder)", () => {
      const d = createFastCgiDecoder();
      const ev = d.push(fcgiRequest(7, params("/environ"), "body", KEEP_CONN));
      const kinds = ev.filter((_, i) => i % 4 === 0);
      expect(kinds).toEqual([EVENT.BEGIN, EVENT.PARAMS, EVENT.STDIN, EVENT.STDIN_END]);
    });

    test("fastcgi: FCGI_GET_VALUES is answered with FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS", async () => {
      const c = await open(fcgiPort);
      const ask = fcgi.pairs(["FCGI_MAX_CONNS", "", "FCGI_MAX_REQS", "", "FCGI_MPXS_CONNS", "", "FCGI_NOT_A_VARIABLE", ""]);
      c.sock.write(fcgi.stream(FCGI_GET_VALUES, 0, ask));
      const b = await c.until((x) => records(x).some((r) => r.type === FCGI_GET_VALUES_RESULT));
      const result = records(b).find((r) => r.type === FCGI_GET_VALUES_RESULT)!;
      expect(result.id).toBe(0);
      const values = pairsOf(result.content);
      expect(Object.keys(values).sort()).toEqual(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]);
      expect(values.FCGI_MPXS_CONNS).toBe("1");
      expect(Number(values.FCGI_MAX_REQS)).toBeGreaterThan(1);
      expect(values.FCGI_MAX_CONNS).toMatch(/^\d+$/);
      c.sock.destroy();
    });

    test("fastcgi: an unknown management record type is answered with FCGI_UNKNOWN_TYPE", async () => {
      const c = await open(fcgiPort);
      c.sock.write(Buffer.from([1, 42, 0, 0, 0, 8, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]));
      const b = await c.until((x) => records(x).some((r) => r.type === FCGI_UNKNOWN_TYPE));
      const r = records(b).find((x) => x.type === FCGI_UNKNOWN_TYPE)!;
      expect(r.id).toBe(0);
      expect(r.content[0]).toBe(42);
      expect(r.content.length).toBe(8);
      // The connection stays usable.
      c.sock.write(fcgiRequest(1, params("/environ?still=open")));
      await closedWithin(c, 5000);
      expect(stdoutOf(records(c.received()), 1)).toContain('"QUERY_STRING":"still=open"');
    });

    test("fastcgi: role FILTER is answered with FCGI_END_REQUEST, protocolStatus FCGI_UNKNOWN_ROLE", async () => {
      const c = await open(fcgiPort);
      c.sock.write(Buffer.concat([fcgi.beginRequest(1, FILTER, KEEP_CONN), fcgi.stream(FCGI_PARAMS, 1, fcgi.pairs(params("/environ"))), fcgi.streamEnd(FCGI_PARAMS, 1)]));
      const b = await c.until(hasEnd(1));
      const end = records(b).find((r) => r.type === FCGI_END_REQUEST)!;
      expect(end.id).toBe(1);
      expect(end.content[4]).toBe(FCGI_UNKNOWN_ROLE);
      expect(records(b).filter((r) => r.type === FCGI_STDOUT)).toHaveLength(0);
      c.sock.destroy();
    });

    test("fastcgi: two requests multiplexed on one connection (ids 1 and 2) are both answered", async () => {
      const c = await open(fcgiPort);
      const one = fcgiRecords(1, params("/environ?req=1", ["CONTENT_LENGTH", "3"]), "one", KEEP_CONN);
      const two = fcgiRecords(2, params("/environ?req=2", ["CONTENT_LENGTH", "5"]), "two!!", KEEP_CONN);
      // Interleaved record by record: BEGIN 1, BEGIN 2, PARAMS 1, PARAMS 2, …
      const mixed = one.flatMap((r, i) => [r, two[i]!]);
      c.sock.write(Buffer.concat(mixed));
      const b = await c.until((x) => hasEnd(1)(x) && hasEnd(2)(x));
      const recs = records(b);
      for (const [id, q, body] of [
        [1, "req=1", "one"],
        [2, "req=2", "two!!"],
      ] as const) {
        const out = stdoutOf(recs, id);
        expect(out).toMatch(/^Status: 200 OK\r\n/);
        const json = JSON.parse(out.slice(out.indexOf("\r\n\r\n") + 4)) as { environ: Record<string, string>; body: { length: number } };
        expect(json.environ.QUERY_STRING).toBe(q);
        expect(json.body.length).toBe(body.length);
        expect(recs.find((r) => r.type === FCGI_END_REQUEST && r.id === id)!.content[4]).toBe(0);
      }
      c.sock.destroy();
    });

    test("fastcgi: FCGI_ABORT_REQUEST is answered at once with FCGI_END_REQUEST, and the application sees the abort", async () => {
      const c = await open(fcgiPort);
      const id = `fcgi-abort-${Date.now()}`;
      c.sock.write(fcgiRequest(1, params(`/slow-stream?id=${id}`), "", KEEP_CONN));
      await c.until((x) => records(x).some((r) => r.type === FCGI_STDOUT && r.id === 1 && r.content.length > 0));
      const sentAt = Date.now();
      c.sock.write(fcgi.abortRequest(1));
      const b = await c.until(hasEnd(1), 2000);
      expect(Date.now() - sentAt).toBeLessThan(1000);
      const recs = records(b);
      const endAt = recs.findIndex((r) => r.type === FCGI_END_REQUEST);
      expect(recs.slice(endAt + 1).filter((r) => r.id === 1), "nothing for id 1 after FCGI_END_REQUEST").toHaveLength(0);
      await tsgi.waitForEvent(`${id} abort`);
      await tsgi.waitForEvent(`${id} close`);
      // Nothing more arrives for the aborted request.
      const before = c.received().length;
      await new Promise((r) => setTimeout(r, 200));
      expect(c.received().length).toBe(before);
      c.sock.destroy();
    });

    test("fastcgi: HEAD sends the head and no body bytes", async () => {
      const c = await open(fcgiPort);
      c.sock.write(fcgiRequest(1, ["REQUEST_METHOD", "HEAD", ...params("/stream?mib=1").slice(2)]));
      await closedWithin(c, 5000);
      const out = stdoutOf(records(c.received()), 1);
      expect(out).toMatch(/^Status: 200 OK\r\n/);
      expect(out.endsWith("\r\n\r\n")).toBe(true);
      expect(out.indexOf("\r\n\r\n")).toBe(out.length - 4);
    });

    test("uwsgi: HEAD sends the head and no body bytes", async () => {
      const c = await open(uwsgiPort);
      c.sock.write(uwsgi.request(["REQUEST_METHOD", "HEAD", ...params("/stream?mib=1").slice(2)]));
      await closedWithin(c, 5000);
      const out = c.received().toString("latin1");
      expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(out.indexOf("\r\n\r\n")).toBe(out.length - 4);
    });
  });
}

// Issue 11, Apache as a front: mod_proxy_fcgi sends a request body in FCGI_STDIN records of
// 8 KiB, so one 64 KiB read holds eight of them. The native FastCGI listener hands a request's
// records of one read to the application as one chunk (their bytes moved together over the
// record headers between them), not one chunk per record. These tests send bodies framed as
// Apache frames them, in odd record sizes with padding, multiplexed with another request on the
// same connection, and dribbled a few bytes per write (records split across reads); the
// application must get exactly the bytes sent, and, for Apache's framing, far fewer chunks
// than records. Raw sockets on `tsgi serve`'s FastCGI listener (TCP and a unix socket).

import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { FCGI, cgiParams, fcgi, fcgiHead, fcgiStdinEnd, hasEndRequest, openRaw, records, sleep, splitResponse, stdoutOf, type WireAddress } from "./support/wire.ts";

const APP = new URL("./apps/body-digest-app.mjs", import.meta.url).pathname;

let tsgi: TsgiProcess;

beforeAll(async () => {
  tsgi = await startTsgi({
    app: APP,
    listen: [{ proto: "fastcgi" }, { proto: "fastcgi", unix: true, key: "fastcgi-unix" }],
    args: ["--processes", "1", "--run-as-root"],
  });
});

afterAll(async () => {
  await tsgi?.stop();
});

interface Digest {
  chunks: number;
  length: number;
  sha256: string;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const head = (id: number, length: number) =>
  fcgiHead(id, cgiParams("/upload", ["DOCUMENT_URI", "/upload", "CONTENT_LENGTH", String(length), "CONTENT_TYPE", "application/octet-stream"], "POST"), FCGI.KEEP_CONN);

/** STDIN records of `body` with the content sizes `sizes` gives in turn (each padded to 8). */
function stdinRecords(id: number, body: Buffer, sizes: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; ) {
    const n = Math.min(sizes(), body.length - at);
    out.push(fcgi.stream(FCGI.STDIN, id, body.subarray(at, at + n), 0xfff8));
    at += n;
  }
  return out;
}

function digestOf(bytes: Buffer, id: number): Digest {
  const { status, body } = splitResponse(stdoutOf(bytes, id));
  expect(status).toBe(200);
  return JSON.parse(body.toString("latin1")) as Digest;
}

/** Sends `wire` (in pieces of at most `piece` bytes, `gapMs` apart when given) and waits for the END_REQUEST of every id. */
async function exchange(addr: WireAddress, wire: Buffer, ids: number[], o: { piece?: number; gapMs?: number } = {}): Promise<Buffer> {
  const conn = await openRaw(addr);
  const piece = o.piece ?? wire.length;
  for (let at = 0; at < wire.length; at += piece) {
    conn.sock.write(wire.subarray(at, at + piece));
    if (o.gapMs) await sleep(o.gapMs);
  }
  const bytes = await conn.until((b) => ids.every((id) => hasEndRequest(id)(b)), 20_000);
  conn.sock.destroy();
  return bytes;
}

const addresses = (): [string, WireAddress][] => [
  ["TCP", tsgi.tcp("fastcgi")],
  ["a unix socket", { path: tsgi.unixPath("fastcgi-unix") }],
];

describe("a request body in many FCGI_STDIN records reaches the application whole, a read's records as one chunk", () => {
  test("Apache's framing: 1 MiB in 8 KiB records, written at once", async () => {
    for (const [, addr] of addresses()) {
      const body = randomBytes(1 << 20);
      const recs = stdinRecords(1, body, () => 8192);
      const bytes = await exchange(addr, Buffer.concat([head(1, body.length), ...recs, fcgiStdinEnd(1)]), [1]);
      const d = digestOf(bytes, 1);
      expect(d).toMatchObject({ length: body.length, sha256: sha256(body) });
      // 128 records; a 64 KiB read holds ~8 of them: a chunk per read, not per record.
      expect(recs.length).toBe(128);
      expect(d.chunks).toBeLessThanOrEqual(40);
    }
  });

  test("records of odd sizes, each with its padding", async () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (const [, addr] of addresses()) {
      const body = randomBytes(300_001);
      const recs = stdinRecords(1, body, () => 1 + (next() % 9000));
      const d = digestOf(await exchange(addr, Buffer.concat([head(1, body.length), ...recs, fcgiStdinEnd(1)]), [1]), 1);
      expect(d).toMatchObject({ length: body.length, sha256: sha256(body) });
      expect(d.chunks).toBeLessThan(recs.length);
    }
  });

  test("two requests multiplexed on one connection, their records interleaved", async () => {
    for (const [, addr] of addresses()) {
      const a = randomBytes(200_000);
      const b = randomBytes(150_003);
      const ra = stdinRecords(1, a, () => 8192);
      const rb = stdinRecords(2, b, () => 5000);
      const wire: Buffer[] = [head(1, a.length), head(2, b.length)];
      // Runs of one request's records between the other's: 3 of 1, 1 of 2, ...
      for (let i = 0, j = 0; i < ra.length || j < rb.length; ) {
        wire.push(...ra.slice(i, i + 3));
        i += 3;
        if (j < rb.length) wire.push(rb[j++]!);
      }
      wire.push(fcgiStdinEnd(1), fcgiStdinEnd(2));
      const bytes = await exchange(addr, Buffer.concat(wire), [1, 2]);
      expect(digestOf(bytes, 1)).toMatchObject({ length: a.length, sha256: sha256(a) });
      expect(digestOf(bytes, 2)).toMatchObject({ length: b.length, sha256: sha256(b) });
      expect(records(bytes).filter((r) => r.type === FCGI.END_REQUEST).length).toBe(2);
    }
  });

  test("records split across reads: the body dribbled 7 bytes a write", async () => {
    for (const [, addr] of addresses()) {
      const body = randomBytes(3000);
      const recs = stdinRecords(1, body, () => 100);
      const d = digestOf(await exchange(addr, Buffer.concat([head(1, body.length), ...recs, fcgiStdinEnd(1)]), [1], { piece: 7, gapMs: 1 }), 1);
      expect(d).toMatchObject({ length: body.length, sha256: sha256(body) });
    }
  });
});

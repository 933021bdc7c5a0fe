// `npm run bench:codec`: decode throughput of the native decoders (src/native.ts, the raw
// flat-array push the protocol servers call) against the TypeScript oracle (test/oracle/), on
// request streams shaped like nginx's and Apache's. Prints a table and writes it to
// bench/codec/last.json. Each stream is pushed as a server reads it: at most 64 KiB a push,
// never past the end of a request (front servers send the next keep-conn request only after
// our FCGI_END_REQUEST), releasing the FastCGI id after the push that ended its STDIN.

import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EVENT, EVENT_WIDTH, createFastCgiDecoder, createUwsgiDecoder, fcgi, uwsgi } from "../../src/native.ts";
import type { Event } from "../../test/codec/events.ts";
import { FastCgiOracle } from "../../test/oracle/fastcgi.ts";
import { UwsgiOracle } from "../../test/oracle/uwsgi.ts";

const READ_SIZE = 64 * 1024;
const WARMUP_MS = 300;
const RUN_MS = 1500;

const FCGI_RESPONDER = 1;
const FCGI_KEEP_CONN = 1;
const FCGI_PARAMS = 4;
const FCGI_STDIN = 5;

// ---- the requests ----

/** A browser's headers as nginx and Apache pass them (HTTP_*), about 750 bytes. */
const BROWSER_HEADERS = [
  "HTTP_HOST", "www.example.com",
  "HTTP_CONNECTION", "keep-alive",
  "HTTP_SEC_CH_UA", '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
  "HTTP_SEC_CH_UA_MOBILE", "?0",
  "HTTP_SEC_CH_UA_PLATFORM", '"Linux"',
  "HTTP_UPGRADE_INSECURE_REQUESTS", "1",
  "HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
  "HTTP_SEC_FETCH_SITE", "same-origin",
  "HTTP_SEC_FETCH_MODE", "navigate",
  "HTTP_SEC_FETCH_DEST", "document",
  "HTTP_REFERER", "https://www.example.com/articles/2024/05/index.html",
  "HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd",
  "HTTP_ACCEPT_LANGUAGE", "en-GB,en-US;q=0.9,en;q=0.8,fr;q=0.7",
  "HTTP_COOKIE", "sessionid=8f2a1c9e4b7d6a3f0e5c2b1a9d8e7f6c; csrftoken=Zx8Yq2Lk5Vb7Nm3Pw9Rt4Gh6Jd1Sf0Ae; _ga=GA1.2.1234567890.1700000000",
];

function bodyHeaders(body: number): string[] {
  return body ? ["CONTENT_TYPE", "application/octet-stream", "CONTENT_LENGTH", String(body)] : ["CONTENT_TYPE", "", "CONTENT_LENGTH", ""];
}

/** nginx 1.22's stock fastcgi_params, plus SCRIPT_FILENAME as every site sets it. */
function nginxParams(body: number): string[] {
  return [
    "SCRIPT_FILENAME", "/srv/www/app/index.ts",
    "QUERY_STRING", "page=2&sort=desc",
    "REQUEST_METHOD", body ? "POST" : "GET",
    ...bodyHeaders(body),
    "SCRIPT_NAME", "/app/index",
    "REQUEST_URI", "/app/index?page=2&sort=desc",
    "DOCUMENT_URI", "/app/index",
    "DOCUMENT_ROOT", "/srv/www/app",
    "SERVER_PROTOCOL", "HTTP/1.1",
    "REQUEST_SCHEME", "https",
    "HTTPS", "on",
    "GATEWAY_INTERFACE", "CGI/1.1",
    "SERVER_SOFTWARE", "nginx/1.22.1",
    "REMOTE_ADDR", "203.0.113.57",
    "REMOTE_PORT", "52814",
    "SERVER_ADDR", "198.51.100.10",
    "SERVER_PORT", "443",
    "SERVER_NAME", "www.example.com",
    "REDIRECT_STATUS", "200",
    ...BROWSER_HEADERS,
  ];
}

/** What Apache 2.4's mod_proxy_fcgi sends: the headers first, then its CGI set and the REDIRECT_* vars. */
function apacheParams(body: number): string[] {
  return [
    ...BROWSER_HEADERS,
    ...bodyHeaders(body),
    "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SERVER_SIGNATURE", "<address>Apache/2.4.62 (Debian) Server at www.example.com Port 443</address>\n",
    "SERVER_SOFTWARE", "Apache/2.4.62 (Debian)",
    "SERVER_NAME", "www.example.com",
    "SERVER_ADDR", "198.51.100.10",
    "SERVER_PORT", "443",
    "REMOTE_ADDR", "203.0.113.57",
    "DOCUMENT_ROOT", "/srv/www/app",
    "REQUEST_SCHEME", "https",
    "CONTEXT_PREFIX", "",
    "CONTEXT_DOCUMENT_ROOT", "/srv/www/app",
    "SERVER_ADMIN", "webmaster@example.com",
    "SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:9000/app/index",
    "REMOTE_PORT", "52814",
    "REDIRECT_URL", "/app/index",
    "REDIRECT_QUERY_STRING", "page=2&sort=desc",
    "REDIRECT_HANDLER", "proxy:fcgi://127.0.0.1:9000",
    "REDIRECT_STATUS", "200",
    "REDIRECT_UNIQUE_ID", "ZkQ3rX8AAQEAAB2cOJ0AAAAB",
    "UNIQUE_ID", "ZkQ3rX8AAQEAAB2cOJ0AAAAB",
    "HTTPS", "on",
    "GATEWAY_INTERFACE", "CGI/1.1",
    "SERVER_PROTOCOL", "HTTP/1.1",
    "REQUEST_METHOD", body ? "POST" : "GET",
    "QUERY_STRING", "page=2&sort=desc",
    "REQUEST_URI", "/app/index?page=2&sort=desc",
    "SCRIPT_NAME", "/app/index",
    "PATH_INFO", "",
  ];
}

function payload(size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = 0x12345678;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A record without padding, as Apache writes them. */
function unpaddedRecord(type: number, id: number, content: Uint8Array): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt8(1, 0);
  h.writeUInt8(type, 1);
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  return Buffer.concat([h, content]);
}

function unpaddedStream(type: number, id: number, content: Uint8Array, max: number): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < content.length; at += max) parts.push(unpaddedRecord(type, id, content.subarray(at, at + max)));
  return Buffer.concat(parts);
}

/** nginx: one padded PARAMS record, STDIN in padded records (what fcgi.stream writes). */
function nginxFastCgi(body: number): Buffer {
  return Buffer.concat([
    fcgi.beginRequest(1, FCGI_RESPONDER, FCGI_KEEP_CONN),
    fcgi.stream(FCGI_PARAMS, 1, fcgi.pairs(nginxParams(body))),
    fcgi.streamEnd(FCGI_PARAMS, 1),
    fcgi.stream(FCGI_STDIN, 1, payload(body)),
    fcgi.streamEnd(FCGI_STDIN, 1),
  ]);
}

/** Apache mod_proxy_fcgi: PARAMS in records of at most 16 KiB, STDIN in 8 KiB records (its I/O buffer), no padding. */
function apacheFastCgi(body: number): Buffer {
  return Buffer.concat([
    fcgi.beginRequest(1, FCGI_RESPONDER, FCGI_KEEP_CONN),
    unpaddedStream(FCGI_PARAMS, 1, fcgi.pairs(apacheParams(body)), 16 * 1024),
    unpaddedRecord(FCGI_PARAMS, 1, new Uint8Array(0)),
    unpaddedStream(FCGI_STDIN, 1, payload(body), 8 * 1024),
    unpaddedRecord(FCGI_STDIN, 1, new Uint8Array(0)),
  ]);
}

/** nginx's uwsgi_params (the same CGI set, no SCRIPT_FILENAME) and the body. */
function nginxUwsgi(body: number): Buffer {
  const vars = nginxParams(body).slice(2);
  return Buffer.concat([uwsgi.request(vars), payload(body)]);
}

/** One request as a server reads it: at most READ_SIZE bytes a push. */
function reads(request: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < request.length; at += READ_SIZE) out.push(request.subarray(at, at + READ_SIZE));
  return out;
}

// ---- the decoders as a server drives them ----

/** Runs one request through a decoder; returns the params count, to keep the work observable. */
type Driver = (chunks: Buffer[]) => number;

interface Contender {
  /** A fresh connection: FastCGI decoders live for the connection, uwsgi ones for the request. */
  connect(): Driver;
}

function nativeFastCgi(): Contender {
  return {
    connect() {
      const d = createFastCgiDecoder();
      return (chunks) => {
        let touched = 0;
        for (const chunk of chunks) {
          const ev = d.push(chunk);
          let release = -1;
          for (let i = 0; i < ev.length; i += EVENT_WIDTH) {
            const kind = ev[i];
            if (kind === EVENT.PARAMS) {
              const params = ev[i + 2] as string[];
              for (let j = 0; j < params.length; j++) touched += params[j]!.length;
            } else if (kind === EVENT.STDIN) {
              const off = ev[i + 2] as number;
              touched += chunk.subarray(off, off + (ev[i + 3] as number)).length;
            } else if (kind === EVENT.STDIN_END) {
              release = ev[i + 1] as number;
            } else if (kind === EVENT.ERROR) {
              throw new Error(`native decoder error: ${String(ev[i + 3])}`);
            }
          }
          if (release >= 0) d.release(release);
        }
        return touched;
      };
    },
  };
}

function touchOracle(events: Event[]): { touched: number; release: number } {
  let touched = 0;
  let release = -1;
  for (const ev of events) {
    if (ev.type === "PARAMS" || ev.type === "REQUEST") {
      const list = ev.type === "PARAMS" ? ev.params : ev.vars;
      for (let j = 0; j < list.length; j++) touched += list[j]!.length;
    } else if (ev.type === "STDIN" || ev.type === "BODY") {
      touched += ev.data.length;
    } else if (ev.type === "STDIN_END") {
      release = ev.id;
    } else if (ev.type === "ERROR") {
      throw new Error(`oracle error: ${ev.status} ${ev.reason}`);
    }
  }
  return { touched, release };
}

function oracleFastCgi(): Contender {
  return {
    connect() {
      const d = new FastCgiOracle();
      return (chunks) => {
        let touched = 0;
        for (const chunk of chunks) {
          const t = touchOracle(d.push(chunk));
          touched += t.touched;
          if (t.release >= 0) d.release(t.release);
        }
        return touched;
      };
    },
  };
}

function nativeUwsgi(): Contender {
  return {
    connect() {
      return (chunks) => {
        const d = createUwsgiDecoder();
        let touched = 0;
        for (const chunk of chunks) {
          const ev = d.push(chunk);
          for (let i = 0; i < ev.length; i += EVENT_WIDTH) {
            const kind = ev[i];
            if (kind === EVENT.REQUEST) {
              const vars = ev[i + 2] as string[];
              for (let j = 0; j < vars.length; j++) touched += vars[j]!.length;
            } else if (kind === EVENT.BODY) {
              const off = ev[i + 2] as number;
              touched += chunk.subarray(off, off + (ev[i + 3] as number)).length;
            } else if (kind === EVENT.ERROR) {
              throw new Error(`native decoder error: ${String(ev[i + 3])}`);
            }
          }
        }
        if (d.end().length) throw new Error("native uwsgi decoder: request not complete");
        return touched;
      };
    },
  };
}

function oracleUwsgi(): Contender {
  return {
    connect() {
      return (chunks) => {
        const d = new UwsgiOracle();
        let touched = 0;
        for (const chunk of chunks) touched += touchOracle(d.push(chunk)).touched;
        if (d.end().length) throw new Error("oracle uwsgi decoder: request not complete");
        return touched;
      };
    },
  };
}

// ---- measuring ----

interface Measure {
  mbPerSec: number;
  reqPerSec: number;
}

let sink = 0; // keeps the results observable so the work is not optimised away

function measure(contender: Contender, chunks: Buffer[], bytes: number, ms: number): Measure {
  const run = contender.connect();
  const batch = Math.max(1, Math.floor((1 << 20) / bytes)); // about 1 MiB between clock reads
  let requests = 0;
  const start = process.hrtime.bigint();
  const stop = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < stop) {
    for (let i = 0; i < batch; i++) sink += run(chunks);
    requests += batch;
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - start) / 1e9;
  return { mbPerSec: (requests * bytes) / seconds / 1e6, reqPerSec: requests / seconds };
}

interface Workload {
  name: string;
  request: Buffer;
  params: number;
  native: Contender;
  oracle: Contender;
}

const workloads: Workload[] = [
  { name: "fastcgi nginx, body 0", request: nginxFastCgi(0), params: nginxParams(0).length / 2, native: nativeFastCgi(), oracle: oracleFastCgi() },
  { name: "fastcgi nginx, body 64 KiB", request: nginxFastCgi(65536), params: nginxParams(1).length / 2, native: nativeFastCgi(), oracle: oracleFastCgi() },
  { name: "fastcgi apache, body 0", request: apacheFastCgi(0), params: apacheParams(0).length / 2, native: nativeFastCgi(), oracle: oracleFastCgi() },
  { name: "fastcgi apache, body 64 KiB", request: apacheFastCgi(65536), params: apacheParams(1).length / 2, native: nativeFastCgi(), oracle: oracleFastCgi() },
  { name: "uwsgi nginx, body 0", request: nginxUwsgi(0), params: nginxParams(0).length / 2 - 1, native: nativeUwsgi(), oracle: oracleUwsgi() },
  { name: "uwsgi nginx, body 64 KiB", request: nginxUwsgi(65536), params: nginxParams(1).length / 2 - 1, native: nativeUwsgi(), oracle: oracleUwsgi() },
];

interface Row {
  workload: string;
  requestBytes: number;
  params: number;
  native: Measure;
  oracle: Measure;
  ratio: number;
}

const rows: Row[] = [];
for (const w of workloads) {
  const chunks = reads(w.request);
  // Both sides must decode the request, and see the same params, before either is timed.
  const a = w.native.connect()(chunks);
  const b = w.oracle.connect()(chunks);
  if (a !== b) throw new Error(`${w.name}: native and oracle disagree (${a} vs ${b} bytes touched)`);
  measure(w.native, chunks, w.request.length, WARMUP_MS);
  measure(w.oracle, chunks, w.request.length, WARMUP_MS);
  const native = measure(w.native, chunks, w.request.length, RUN_MS);
  const oracle = measure(w.oracle, chunks, w.request.length, RUN_MS);
  rows.push({ workload: w.name, requestBytes: w.request.length, params: w.params, native, oracle, ratio: native.reqPerSec / oracle.reqPerSec });
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const header = ["workload", "bytes/req", "params", "native MB/s", "native req/s", "oracle MB/s", "oracle req/s", "native/oracle"];
const table = rows.map((r) => [
  r.workload,
  fmt(r.requestBytes),
  String(r.params),
  fmt(r.native.mbPerSec, 1),
  fmt(r.native.reqPerSec),
  fmt(r.oracle.mbPerSec, 1),
  fmt(r.oracle.reqPerSec),
  `${fmt(r.ratio, 2)}x`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
console.log(line(header));
for (const row of table) console.log(line(row));

const out = join(dirname(fileURLToPath(import.meta.url)), "last.json");
writeFileSync(
  out,
  `${JSON.stringify({ node: process.version, readSize: READ_SIZE, runMs: RUN_MS, date: new Date().toISOString(), rows }, null, 2)}\n`,
);
if (sink === 0) console.log("(nothing decoded)");

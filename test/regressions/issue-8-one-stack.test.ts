// Issue 8, point 15: one connection stack. The source holds no node:net FastCGI or uwsgi
// server (src/protocol/fastcgi.ts and uwsgi.ts are gone, nothing under src/ creates a
// node:net server, and TSGI_NATIVE_IO is read nowhere); and a real `tsgi serve` started with
// TSGI_NATIVE_IO=0 serves FastCGI and uwsgi exactly as without it, through the native
// listeners: the same FCGI_GET_VALUES answer byte for byte, the same responses, and no
// node:net server open in the worker (apps/handles.mjs counts them) either way.

import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fcgi } from "../../src/native.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { uwsgiRequest } from "./support/raw-clients.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const SRC = join(ROOT, "src");

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.[cm]?[jt]s$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

describe("the source holds one stack", () => {
  test("src/protocol/ has no node:net FastCGI or uwsgi server (fastcgi.ts and uwsgi.ts are gone)", () => {
    const protocol = readdirSync(join(SRC, "protocol"));
    expect(protocol).not.toContain("fastcgi.ts");
    expect(protocol).not.toContain("uwsgi.ts");
    // What is left for FastCGI and uwsgi is the native listeners' glue.
    expect(protocol.filter((f) => /fastcgi|uwsgi/.test(f)).sort()).toEqual(["fastcgi-native.ts", "uwsgi-native.ts"]);
  });

  test("no file under src/ creates a node:net server for requests (the master's control socket aside); the only createServer is node:http's, in src/protocol/http.ts", () => {
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, "utf8");
      const name = relative(ROOT, file);
      // The master's control socket carries commands (status, reload, stop), never requests.
      if (name === join("src", "daemon", "control.ts")) continue;
      for (const m of text.matchAll(/^\s*import\s+(type\s+)?([^;]*?)\s+from\s+["'](node:)?net["']/gm)) {
        if (m[1]) continue; // a type-only import creates nothing
        const what = m[2]!;
        if (/\bcreateServer\b|\bServer\b/.test(what)) offenders.push(`${name}: imports ${what} from node:net`);
        const ns = /^(?:\*\s+as\s+)?(\w+)/.exec(what)?.[1];
        if (ns && !what.startsWith("{") && new RegExp(`\\b${ns}\\.(createServer|Server)\\b`).test(text)) offenders.push(`${name}: ${ns}.createServer / ${ns}.Server`);
      }
      if (/require\(\s*["'](node:)?net["']\s*\)/.test(text)) offenders.push(`${name}: require("node:net")`);
      for (const m of text.matchAll(/(\w+)\.createServer\s*\(/g)) {
        if (!(m[1] === "http" && name === join("src", "protocol", "http.ts"))) offenders.push(`${name}: ${m[0]}`);
      }
      if (/(^|[^.\w])createServer\s*\(/m.test(text)) offenders.push(`${name}: a bare createServer(`);
    }
    expect(offenders).toEqual([]);
  });

  test("TSGI_NATIVE_IO is read nowhere in src/ or bin/", () => {
    const mentions = [...sources(SRC), ...sources(join(ROOT, "bin"))].filter((f) => readFileSync(f, "utf8").includes("TSGI_NATIVE_IO"));
    expect(mentions.map((f) => relative(ROOT, f))).toEqual([]);
  });
});

// ---- a raw FastCGI exchange ---------------------------------------------------------------

const FCGI_END_REQUEST = 3;
const FCGI_PARAMS = 4;
const FCGI_STDIN = 5;
const FCGI_STDOUT = 6;
const FCGI_GET_VALUES = 9;
const RESPONDER = 1;

interface FcgiRecord {
  type: number;
  id: number;
  content: Buffer;
}

function records(b: Buffer): FcgiRecord[] {
  const out: FcgiRecord[] = [];
  for (let at = 0; at + 8 <= b.length; ) {
    const length = b.readUInt16BE(at + 4);
    const padding = b[at + 6]!;
    if (at + 8 + length + padding > b.length) break;
    out.push({ type: b[at + 1]!, id: b.readUInt16BE(at + 2), content: b.subarray(at + 8, at + 8 + length) });
    at += 8 + length + padding;
  }
  return out;
}

/** Sends `bytes` and collects what comes back until `done(received)` holds. */
function exchange(port: number, bytes: Buffer, done: (b: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`FastCGI exchange: no complete answer within 5 s (got ${Buffer.concat(chunks).length} bytes)`));
    }, 5000);
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks));
    };
    sock.on("error", reject);
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      if (done(Buffer.concat(chunks))) finish();
    });
    sock.on("close", () => (chunks.length ? finish() : undefined));
    sock.on("connect", () => sock.write(bytes));
  });
}

const getValues = () =>
  fcgi.stream(FCGI_GET_VALUES, 0, fcgi.pairs(["FCGI_MAX_CONNS", "", "FCGI_MAX_REQS", "", "FCGI_MPXS_CONNS", ""]));

function fcgiGet(path: string): Buffer {
  const params = ["REQUEST_METHOD", "GET", "REQUEST_URI", path, "DOCUMENT_URI", path, "QUERY_STRING", "", "SERVER_NAME", "localhost", "SERVER_PORT", "80", "SERVER_PROTOCOL", "HTTP/1.1", "REMOTE_ADDR", "127.0.0.1", "REMOTE_PORT", "40000"];
  return Buffer.concat([fcgi.beginRequest(1, RESPONDER, 0), fcgi.stream(FCGI_PARAMS, 1, fcgi.pairs(params)), fcgi.streamEnd(FCGI_PARAMS, 1), fcgi.streamEnd(FCGI_STDIN, 1)]);
}

describe("TSGI_NATIVE_IO=0 changes nothing: FastCGI and uwsgi go through the native listeners", () => {
  const runs: Record<"default" | "TSGI_NATIVE_IO=0", TsgiProcess | undefined> = { default: undefined, "TSGI_NATIVE_IO=0": undefined };
  const app = join(import.meta.dirname, "apps", "handles.mjs");

  beforeAll(async () => {
    const listen = [{ proto: "fastcgi" as const }, { proto: "uwsgi" as const }];
    const args = ["--processes", "1", "--run-as-root", "--max-connections", "37"];
    const [a, b] = await Promise.all([startTsgi({ app, listen, args }), startTsgi({ app, listen, args, env: { TSGI_NATIVE_IO: "0" } })]);
    runs.default = a;
    runs["TSGI_NATIVE_IO=0"] = b;
  });
  afterAll(async () => {
    await Promise.all(Object.values(runs).map((t) => t?.stop()));
  });

  test("FCGI_GET_VALUES gets the same answer, byte for byte, with and without TSGI_NATIVE_IO=0", async () => {
    const answers = await Promise.all(
      Object.values(runs).map((t) => exchange(t!.tcp("fastcgi").port, getValues(), (b) => records(b).length > 0)),
    );
    expect(answers[0]!.length).toBeGreaterThan(8);
    expect(records(answers[0]!)[0]!.content.toString("latin1")).toContain("37"); // FCGI_MAX_CONNS = --max-connections
    expect(answers[1]!.equals(answers[0]!)).toBe(true);
  });

  for (const mode of ["default", "TSGI_NATIVE_IO=0"] as const) {
    test(`${mode}: a FastCGI request and a uwsgi request are served, and the worker holds no node:net server`, async () => {
      const t = runs[mode]!;
      const raw = await exchange(t.tcp("fastcgi").port, fcgiGet("/fastcgi"), (b) => records(b).some((r) => r.type === FCGI_END_REQUEST));
      const stdout = Buffer.concat(records(raw).filter((r) => r.type === FCGI_STDOUT).map((r) => r.content)).toString();
      expect(stdout).toMatch(/^Status: 200 OK\r\n/);
      const fromFcgi = JSON.parse(stdout.slice(stdout.indexOf("\r\n\r\n") + 4)) as { pid: number; netServers: number; path: string };
      expect(fromFcgi).toMatchObject({ netServers: 0, path: "/fastcgi" });

      const u = await uwsgiRequest(t.tcp("uwsgi"), "GET", "/uwsgi");
      expect(u.status).toBe(200);
      const fromUwsgi = JSON.parse(u.body.toString()) as { pid: number; netServers: number; path: string };
      expect(fromUwsgi).toEqual({ pid: fromFcgi.pid, netServers: 0, path: "/uwsgi" });
    });
  }
});

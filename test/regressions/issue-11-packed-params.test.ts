// Issue 11: the native listeners hand a request's params to JavaScript packed — one string of
// the values (and of the names not in the binding's table of common names) and their layout
// in an array shared with JavaScript (native/param_pack.h) — instead of a string per name and
// value. The environ must be exactly the one the params list gives (buildEnviron of the list,
// the path every other listener takes): the same keys in the same order, every byte of every
// value, repeated names merged, tsgi.* names dropped, an empty CONTENT_LENGTH absent, and the
// body read by the CONTENT_LENGTH the listener found. Raw FastCGI and uwsgi requests on
// `tsgi serve`'s listeners (TCP and unix sockets), several requests in one write, and
// requests big enough that the shared layout array must grow while a read is handled.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { RequestAbort } from "../../src/gateway/abort.ts";
import { buildEnviron } from "../../src/gateway/environ.ts";
import { TsgiInput } from "../../src/gateway/input.ts";
import { fileWrapper } from "../../src/gateway/body.ts";
import { binding } from "../../src/native.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { FCGI, cgiParams, fcgi, fcgiRequest, hasEndRequest, openRaw, splitResponse, stdoutOf, uwsgi, type WireAddress } from "./support/wire.ts";

const APP = new URL("./apps/environ-dump-app.mjs", import.meta.url).pathname;

let tsgi: TsgiProcess;

beforeAll(async () => {
  tsgi = await startTsgi({
    app: APP,
    listen: [
      { proto: "fastcgi" },
      { proto: "fastcgi", unix: true, key: "fastcgi-unix" },
      { proto: "uwsgi" },
      { proto: "uwsgi", unix: true, key: "uwsgi-unix" },
    ],
    args: ["--processes", "1", "--run-as-root"],
  });
});

afterAll(async () => {
  await tsgi?.stop();
});

interface Dump {
  pairs: [string, string][];
  body: number;
}

/** The environ's string keys as buildEnviron makes them from the list: what the application must see. */
function expected(list: string[]): [string, string][] {
  const built = buildEnviron(list, {
    mount: "",
    input: TsgiInput.EMPTY,
    errors: { write() {}, flush() {} },
    multiprocess: false,
    abort: new RequestAbort(),
    fileWrapper,
  });
  if (!("environ" in built)) throw new Error(`the list builds no environ: ${built.error.code}`);
  return Object.entries(built.environ).filter((e): e is [string, string] => typeof e[1] === "string");
}

const dumpOf = (bytes: Buffer): Dump => {
  const { status, body } = splitResponse(bytes);
  expect(status).toBe(200);
  return JSON.parse(body.toString("utf8")) as Dump;
};

async function viaFastCgi(addr: WireAddress, requests: { params: string[]; body?: string }[]): Promise<Dump[]> {
  const conn = await openRaw(addr);
  const ids = requests.map((_, i) => i + 1);
  conn.sock.write(Buffer.concat(requests.map((r, i) => fcgiRequest(i + 1, r.params, r.body ?? "", FCGI.KEEP_CONN))));
  const bytes = await conn.until((b) => ids.every((id) => hasEndRequest(id)(b)), 20_000);
  conn.sock.destroy();
  return ids.map((id) => dumpOf(stdoutOf(bytes, id)));
}

async function viaUwsgi(addr: WireAddress, vars: string[], body = ""): Promise<Dump> {
  const conn = await openRaw(addr);
  conn.sock.write(Buffer.concat([uwsgi.request(vars), Buffer.from(body, "latin1")]));
  await conn.closedWithin(20_000);
  return dumpOf(conn.received());
}

const fastcgiAddresses = (): WireAddress[] => [tsgi.tcp("fastcgi"), { path: tsgi.unixPath("fastcgi-unix") }];
const uwsgiAddresses = (): WireAddress[] => [tsgi.tcp("uwsgi"), { path: tsgi.unixPath("uwsgi-unix") }];

/** Every name of the binding's table, each with a value of its own (some long, some empty). */
function everyKnownName(): string[] {
  const list: string[] = [];
  binding.paramNames.forEach((name, i) => {
    if (name === "CONTENT_LENGTH") list.push(name, "0");
    else if (name === "DOCUMENT_URI" || name === "SCRIPT_NAME" || name === "PATH_INFO") list.push(name, "");
    else list.push(name, i % 5 === 0 ? "" : `${name.toLowerCase()}-value-${"x".repeat(i)}`);
  });
  list.push("DOCUMENT_URI", "/every/name");
  return list;
}

/** Names that are near the table's but not in it, bytes of every value, and names the gateway drops. */
function oddNames(): string[] {
  const every = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");
  return [
    ...cgiParams("/odd?x=1"),
    "HTTP_HOS", "a", "HTTP_HOSTX", "b", "http_host", "c", "A", "1", "AB", "2", "ABC", "3", "", "empty name",
    "PATH_", "4", "HTTPS_", "5",
    "HTTP_X_BYTES", every,
    "HTTP_X_\xe9\xff\x00NAME", "latin1 name",
    `HTTP_X_${"L".repeat(300)}`, "a long name",
    "tsgi.input", "from the wire", "tsgi.version", "9", "tsgi.custom", "dropped",
    "CONTENT_TYPE", "",
  ];
}

/** Names that come twice: known ones, unknown ones, and past the listener's 16 compared unknown names. */
function repeatedNames(): string[] {
  const fillers: string[] = [];
  for (let i = 0; i < 20; i++) fillers.push(`HTTP_X_FILLER_${i}`, `f${i}`);
  return [
    ...cgiParams("/repeated"),
    "HTTP_COOKIE", "a=1", "HTTP_ACCEPT", "text/html", "HTTP_X_ONE", "1",
    ...fillers,
    "HTTP_COOKIE", "b=2", "HTTP_ACCEPT", "*/*", "HTTP_X_ONE", "2", "HTTP_X_FILLER_0", "again",
    "REMOTE_ADDR", "10.0.0.1",
  ];
}

/** Thousands of small params: the shared layout array (4096 ints at first) must grow. */
function manyParams(count: number, tag: string): string[] {
  const list = [...cgiParams(`/many/${tag}`)];
  for (let i = 0; i < count; i++) list.push(`N${i}`, `${tag}${i % 10}`);
  return list;
}

describe("the native listeners' packed params give the environ the params list gives", () => {
  const cases: [string, () => string[]][] = [
    ["every name of the binding's table", everyKnownName],
    ["names near the table's, every byte, names the gateway drops", oddNames],
    ["repeated names, known and unknown, past the 16 compared", repeatedNames],
    ["3,000 params", () => manyParams(3000, "m")],
  ];

  for (const [what, make] of cases) {
    test(`FastCGI: ${what}`, async () => {
      const list = make();
      for (const addr of fastcgiAddresses()) {
        const [dump] = await viaFastCgi(addr, [{ params: list }]);
        expect(dump!.pairs).toEqual(expected(list));
      }
    });

    test(`uwsgi: ${what}`, async () => {
      const list = make();
      for (const addr of uwsgiAddresses()) {
        const dump = await viaUwsgi(addr, list);
        expect(dump.pairs).toEqual(expected(list));
      }
    });
  }

  test("FastCGI: requests multiplexed in one write, the layout array growing between them", async () => {
    const lists = [repeatedNames(), manyParams(2500, "a"), oddNames(), manyParams(4000, "b"), everyKnownName()];
    for (const addr of fastcgiAddresses()) {
      const dumps = await viaFastCgi(addr, lists.map((params) => ({ params })));
      dumps.forEach((dump, i) => expect(dump.pairs).toEqual(expected(lists[i]!)));
    }
  });

  test("FastCGI: the body is read by the last CONTENT_LENGTH, and without a usable one to its end", async () => {
    const post = (extra: string[]) => cgiParams("/post", ["CONTENT_TYPE", "text/plain", ...extra], "POST");
    const cases: { params: string[]; body: string; read: number }[] = [
      { params: post(["CONTENT_LENGTH", "11"]), body: "hello world", read: 11 },
      { params: post(["CONTENT_LENGTH", "3", "CONTENT_LENGTH", "0011"]), body: "hello world", read: 11 },
      { params: post(["CONTENT_LENGTH", "eleven"]), body: "hello world", read: 11 },
      { params: post(["CONTENT_LENGTH", ""]), body: "hello world", read: 11 },
      { params: post([]), body: "hello", read: 5 },
    ];
    for (const addr of fastcgiAddresses()) {
      const dumps = await viaFastCgi(addr, cases);
      dumps.forEach((dump, i) => {
        expect(dump.body).toBe(cases[i]!.read);
        expect(dump.pairs).toEqual(expected(cases[i]!.params));
      });
    }
  });

  test("uwsgi: the body is read by CONTENT_LENGTH", async () => {
    for (const addr of uwsgiAddresses()) {
      const list = cgiParams("/post", ["CONTENT_LENGTH", "11"], "POST");
      const dump = await viaUwsgi(addr, list, "hello world");
      expect(dump.body).toBe(11);
      expect(dump.pairs).toEqual(expected(list));
    }
  });
});

// Issue 8, point 13: log injection. The access log escapes what a client controls (the URI,
// the user, and the other fields) as nginx's default `escape=default` does: `"`, `\`, bytes
// below 0x20 and above 0x7E written as \xHH. A request whose REQUEST_URI carries CR LF and a
// whole forged access-log line, plus an ESC colour sequence, and whose REMOTE_USER carries a
// newline, sent raw over uwsgi and FastCGI, gives exactly one access-log line with \x0D\x0A
// and \x1B in it and no forged line. Through real nginx (FastCGI and uwsgi), a UTF-8 path
// (percent-encoded and raw) and a Basic-auth user with UTF-8, `"` and `\` appear in tsgi's log
// exactly as nginx writes them in its own access log; tsgi's HTTP listener escapes too.

import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startNginx, type FrontServer } from "../support/front-servers.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { cgiParams, eventually, fcgiRequest, hasEndRequest, openRaw, splitResponse, stdoutOf, uwsgi, type WireAddress } from "./support/wire.ts";

const APP = new URL("./apps/access-log-app.mjs", import.meta.url).pathname;

let tsgi: TsgiProcess;
let nginx: FrontServer;

beforeAll(async () => {
  tsgi = await startTsgi({
    app: APP,
    listen: [{ proto: "fastcgi" }, { proto: "uwsgi" }, { proto: "http" }],
    args: ["--processes", "1", "--run-as-root"],
  });
  nginx = await startNginx({
    conf: `
      server {
        listen {{HOST}}:{{PORT}};
        location /f/ { fastcgi_pass {{F}}; include /etc/nginx/fastcgi_params; }
        # Debian's uwsgi_params sends no REMOTE_USER: added so that both protocols carry the user.
        location /u/ { uwsgi_pass {{U}}; include /etc/nginx/uwsgi_params; uwsgi_param REMOTE_USER $remote_user; }
      }`,
    vars: { F: tsgi.nginxAddress("fastcgi"), U: tsgi.nginxAddress("uwsgi") },
  });
});

afterAll(async () => {
  await nginx?.stop();
  await tsgi?.stop();
});

const accessLines = () => tsgi.stdout().split("\n").filter(Boolean);

/** tsgi's access-log lines that carry `marker`; waits for the first one. */
async function linesWith(marker: string): Promise<string[]> {
  await eventually(`an access line with ${marker}`, 5000, () => accessLines().some((l) => l.includes(marker)));
  return accessLines().filter((l) => l.includes(marker));
}

async function uwsgiExchange(addr: WireAddress, vars: string[]): Promise<number> {
  const conn = await openRaw(addr);
  conn.sock.write(uwsgi.request(vars));
  await conn.closedWithin(5000);
  return splitResponse(conn.received()).status;
}

async function fastcgiExchange(addr: WireAddress, params: string[]): Promise<number> {
  const conn = await openRaw(addr);
  conn.sock.write(fcgiRequest(1, params));
  const bytes = await conn.until(hasEndRequest(1), 5000);
  conn.sock.destroy();
  return splitResponse(stdoutOf(bytes)).status;
}

/** A raw HTTP/1.1 request (`target` as bytes: one char per byte) to host:port; the reply's bytes. */
async function rawHttp(addr: { host: string; port: number }, target: string, headers: string[] = []): Promise<Buffer> {
  const conn = await openRaw(addr);
  conn.sock.write(Buffer.from(`GET ${target} HTTP/1.1\r\nHost: ${addr.host}\r\n${headers.map((h) => `${h}\r\n`).join("")}Connection: close\r\n\r\n`, "latin1"));
  await conn.closedWithin(5000);
  return conn.received();
}

const FORGED = `"\r\n127.0.0.1 - - [forged] "GET /x HTTP/1.1" 200 1`;
const CLF_TIME = String.raw`\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\]`;

describe("hostile bytes in the URI and the user cannot forge or break an access-log line", () => {
  for (const proto of ["uwsgi", "fastcgi"] as const) {
    test.concurrent(`${proto}: a REQUEST_URI with CR LF, a forged line and ESC, a REMOTE_USER with a newline: one line, escaped as \\xHH`, async () => {
      const tag = `inject-${proto}`;
      const uri = `/x?t=${tag}&a=${FORGED}\x1b[31m\\`;
      const extra = [proto === "uwsgi" ? "PATH_INFO" : "DOCUMENT_URI", "/x", "REMOTE_USER", "alice\nbob"];
      const status = proto === "uwsgi" ? await uwsgiExchange(tsgi.tcp("uwsgi"), cgiParams(uri, extra)) : await fastcgiExchange(tsgi.tcp("fastcgi"), cgiParams(uri, extra));
      expect(status).toBe(200);

      const lines = await linesWith(`t=${tag}&`);
      expect(lines, "exactly one access line for the request").toHaveLength(1);
      const escapedUri = String.raw`/x?t=${tag}&a=\x22\x0D\x0A127.0.0.1 - - [forged] \x22GET /x HTTP/1.1\x22 200 1\x1B[31m\x5C`;
      expect(lines[0]).toContain(escapedUri);
      expect(lines[0]).toContain(String.raw`\x0D\x0A`);
      expect(lines[0]).toContain(String.raw`\x1B`);
      expect(lines[0], "the whole line, in common log format").toMatch(
        new RegExp(`^127\\.0\\.0\\.1 - alice\\\\x0Abob ${CLF_TIME} "GET ${escapeRe(escapedUri)} HTTP/1\\.1" 200 3 [0-9.]+ms$`),
      );
      // No byte of the request's reached the log raw: no forged line, no ESC, no CR.
      expect(accessLines().filter((l) => l.startsWith("127.0.0.1 - - [forged]")), "no forged line").toEqual([]);
      expect(accessLines().filter((l) => l.includes("[forged]") && !l.includes("t=inject-")), "every [forged] is inside a real line").toEqual([]);
      expect(tsgi.stdout(), "only printable ASCII in the access log").not.toMatch(/[^\x20-\x7e\n]/);
    });
  }

  test.concurrent("fastcgi: NUL, DEL, 0xFF and UTF-8 bytes in the URI, and hostile method, protocol and address fields, are escaped", async () => {
    const tag = "bytes-fastcgi";
    const uri = `/x?t=${tag}&b=\x00\x7f\xff\xc3\xa9 \t`;
    const params = [
      "REQUEST_METHOD", 'GET"\n',
      "REQUEST_URI", uri,
      "DOCUMENT_URI", "/x",
      "QUERY_STRING", "",
      "SERVER_PROTOCOL", "HTTP/1.1\r\nX",
      "REMOTE_ADDR", "10.0.0.1\x1b",
      "REMOTE_USER", 'a"b\\c',
    ];
    expect(await fastcgiExchange(tsgi.tcp("fastcgi"), params)).toBe(200);
    const lines = await linesWith(`t=${tag}&`);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^${escapeRe(String.raw`10.0.0.1\x1B - a\x22b\x5Cc `)}${CLF_TIME} ${escapeRe(String.raw`"GET\x22\x0A /x?t=${tag}&b=\x00\x7F\xFF\xC3\xA9 \x09 HTTP/1.1\x0D\x0AX" 200 3 `)}[0-9.]+ms$`,
      ),
    );
  });

  test.concurrent("tsgi's HTTP listener: a quote and a backslash in the URI are escaped", async () => {
    const reply = await rawHttp(tsgi.tcp("http"), '/x?t=http-quote&q="a\\b');
    expect(splitResponse(reply).status).toBe(200);
    const lines = await linesWith("t=http-quote&");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(String.raw`"GET /x?t=http-quote&q=\x22a\x5Cb HTTP/1.1" 200 3 `);
  });
});

describe("through nginx, tsgi logs a request's bytes as nginx itself logs them", () => {
  // nginx's default combined format: $remote_addr - $remote_user [$time_local] "$request" …
  const nginxLines = () => readFileSync(`${nginx.dir}/logs/access.log`, "latin1").split("\n").filter(Boolean);
  /** The user and the quoted request of a log line (nginx's or tsgi's: both begin alike). */
  function userAndRequest(line: string): { user: string; request: string } {
    const m = /^\S+ - (\S+) \[[^\]]+\] "((?:[^"\\]|\\.)*)" /.exec(line);
    if (!m) throw new Error(`not an access-log line: ${JSON.stringify(line)}`);
    return { user: m[1]!, request: m[2]! };
  }
  // A Basic-auth user with UTF-8 (é), a quote and a backslash: nginx passes $remote_user on.
  const userBytes = Buffer.concat([Buffer.from("jos"), Buffer.from([0xc3, 0xa9]), Buffer.from('"x\\y')]);
  const authorization = `Authorization: Basic ${Buffer.concat([userBytes, Buffer.from(":pw")]).toString("base64")}`;

  const cases = [
    { name: "a percent-encoded UTF-8 path (/caf%C3%A9)", path: "caf%C3%A9", expected: "caf%C3%A9" },
    { name: "a raw UTF-8 path with a quote and a backslash in the query", path: 'caf\xc3\xa9?q="a\\b', expected: String.raw`caf\xC3\xA9?q=\x22a\x5Cb` },
  ];
  for (const proto of ["f", "u"] as const) {
    for (const c of cases) {
      test.concurrent(`nginx ${proto === "f" ? "fastcgi_pass" : "uwsgi_pass"}: ${c.name} and a UTF-8 user`, async () => {
        const tag = `${proto}-${c.path.length}`;
        const target = `/${proto}/${tag}/${c.path}`;
        const reply = await rawHttp({ host: "127.0.0.1", port: nginx.port }, target, [authorization]);
        expect(splitResponse(reply).status).toBe(200);
        const mine = await linesWith(`/${proto}/${tag}/`);
        expect(mine).toHaveLength(1);
        const theirs = await eventually(`nginx's access line for ${target}`, 5000, () => nginxLines().find((l) => l.includes(`/${proto}/${tag}/`)));
        const expected = { user: String.raw`jos\xC3\xA9\x22x\x5Cy`, request: `GET /${proto}/${tag}/${c.expected} HTTP/1.1` };
        expect(userAndRequest(theirs), "nginx's own line (the reference)").toEqual(expected);
        expect(userAndRequest(mine[0]!), "tsgi's line").toEqual(expected);
      });
    }
  }
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

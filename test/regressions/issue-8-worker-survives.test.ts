// Issue 8, point 9: no application behaviour and no client crashes a worker. A real `tsgi
// serve --processes 1` (so the pid an answer names is the one worker's) serves
// apps/survivor.ts over uwsgi, FastCGI and HTTP. A raw client of each protocol that resets
// while the legacy write() pushes 16 MiB (one call, and 256 calls of 64 KiB) leaves the same
// worker serving, a slow request in flight beside it completes, nothing "unhandled" is
// logged, and the access log counts fewer bytes than were written. Then one test per
// application behaviour (a floating rejection, close() or an iterator's return() throwing, a
// number chunk, a write() after the end, start_response twice, a string or no body, a client
// resetting a streamed body or an upload) ends with the same pid. An exception thrown in a
// timer replaces the worker only after its request in flight completed, and a client
// looping meanwhile sees no failure.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { uwsgi } from "../../src/native.ts";
import { fcgiRequest, httpRequest, readThenReset, uwsgiReadThenReset, uwsgiRequest, uwsgiUploadThenReset, uwsgiVars, waitForAccessLine } from "./support/raw-clients.ts";

const APP = join(import.meta.dirname, "apps", "survivor.ts");
const SIXTEEN_MIB = 16 * 1024 * 1024;
/** What an error log must not say after a client left: the worker saw a crash, or nearly. */
const CRASHY = /unhandled|nothing handled|nothing caught|uncaught|is replaced|killed by|exited with/i;

const serve = () => startTsgi({ app: APP, listen: [{ proto: "uwsgi" }, { proto: "http" }, { proto: "fastcgi" }], args: ["--processes", "1", "--run-as-root"] });

let site: TsgiProcess;
let recycled: TsgiProcess;
let seq = 0;
const unique = () => `t${++seq}`;

function url(t: TsgiProcess, path: string): string {
  const { host, port } = t.tcp("http");
  return `http://${host}:${port}${path}`;
}

async function pidOf(t: TsgiProcess): Promise<number> {
  const r = await request(url(t, "/pid"));
  expect(r.status).toBe(200);
  return Number(/^pid (\d+)$/.exec(r.body.toString())?.[1]);
}

/** The error-log text written while `fn` ran (and shortly after, for lines still on their way). */
async function errorLogDuring(t: TsgiProcess, fn: () => Promise<void>): Promise<string> {
  const before = t.stderr().length;
  await fn();
  await new Promise((r) => setTimeout(r, 100));
  return t.stderr().slice(before);
}

beforeAll(async () => {
  [site, recycled] = await Promise.all([serve(), serve()]);
});

afterAll(async () => {
  await Promise.all([site?.stop(), recycled?.stop()]);
});

describe("a client that resets during the legacy write()", () => {
  const transports = [
    ["uwsgi", (uri: string) => uwsgi.request(uwsgiVars("GET", uri))],
    ["fastcgi", (uri: string) => fcgiRequest("GET", uri)],
    ["http", (uri: string) => httpRequest(uri)],
  ] as const;
  for (const [proto, requestBytes] of transports) {
    for (const mode of ["one", "many"] as const) {
      test(`${proto}: write() of 16 MiB in ${mode === "one" ? "one call" : "256 calls of 64 KiB"}, the client resets: the same worker serves the next request, a slow request beside it completes, the access log shows fewer bytes`, async () => {
        const workerPid = await pidOf(site);
        const uri = `/write?mode=${mode}&id=${unique()}`;
        const log = await errorLogDuring(site, async () => {
          const slow = request(url(site, "/slow?ms=500"));
          await new Promise((r) => setTimeout(r, 50));
          const got = await readThenReset(site.tcp(proto), requestBytes(uri), 64 * 1024);
          expect(got).toBeLessThan(SIXTEEN_MIB);
          const slowReply = await slow;
          expect(slowReply.status).toBe(200);
          expect(slowReply.complete).toBe(true);
          expect(slowReply.body.toString()).toBe(`slow done pid ${workerPid}`);
          expect(await pidOf(site)).toBe(workerPid);
        });
        expect(log).not.toMatch(CRASHY);
        const line = await waitForAccessLine(site.stdout, uri);
        expect(line.status).toBe(200);
        expect(line.bytes).toBeLessThan(SIXTEEN_MIB);
        // The native listeners know what the kernel took (CLOSE carries what stayed queued).
        if (proto !== "http") expect(line.bytes).toBeGreaterThan(0);
      });
    }
  }

  test("the same write() to a client that reads it all still delivers 16 MiB whole (the ordering loses nothing)", async () => {
    const uri = `/write?mode=many&id=${unique()}`;
    const reply = await uwsgiRequest(site.tcp("uwsgi"), "GET", uri);
    expect(reply.status).toBe(200);
    expect(reply.complete).toBe(true);
    expect(reply.body.length).toBe(SIXTEEN_MIB);
    for (let i = 0; i < 256; i++) expect(reply.body[i * 64 * 1024]).toBe(i & 0xff);
    expect((await waitForAccessLine(site.stdout, uri)).bytes).toBe(SIXTEEN_MIB);
  });
});

describe("what an application does does not end its worker", () => {
  test("a promise rejected with no handler: logged once, the request answered, the same worker goes on", async () => {
    const workerPid = await pidOf(site);
    const log = await errorLogDuring(site, async () => {
      const r = await request(url(site, "/floating-rejection"));
      expect([r.status, r.body.toString()]).toEqual([200, `pid ${workerPid}`]);
    });
    expect(log).toMatch(/\[error\] \[\S+\] worker 1: a promise rejected and nothing handled it \(the worker goes on\): Error: survivor: a floating rejection/);
    expect(log).not.toMatch(/nothing caught|is replaced|killed by|exited with/);
    expect(await pidOf(site)).toBe(workerPid);
  });

  test("close() that throws: the response is complete, the error logged, the same worker goes on", async () => {
    const workerPid = await pidOf(site);
    const log = await errorLogDuring(site, async () => {
      const r = await request(url(site, "/close-throws"));
      expect([r.status, r.complete, r.body.toString()]).toEqual([200, true, `pid ${workerPid}`]);
    });
    expect(log).toMatch(/the response body's close\(\) threw: Error: survivor: close\(\) throws/);
    expect(log).not.toMatch(CRASHY);
    expect(await pidOf(site)).toBe(workerPid);
  });

  test("a generator whose finally throws, left early by a HEAD: a 200 head, the error logged, the same worker goes on", async () => {
    const workerPid = await pidOf(site);
    const log = await errorLogDuring(site, async () => {
      const r = await request(url(site, "/return-throws"), { method: "HEAD" });
      expect([r.status, r.body.length]).toEqual([200, 0]);
    });
    expect(log).toMatch(/the response body's iterator threw while finishing: Error: survivor: the generator's finally throws/);
    expect(log).not.toMatch(CRASHY);
    expect(await pidOf(site)).toBe(workerPid);
  });

  // Each is the server's own refusal: a 500 with the short plain body, the code in the log.
  const refusals: [string, string][] = [
    ["/number-chunk", "TSGI_ERR_RESPONSE_CHUNK"],
    ["/start-twice", "TSGI_ERR_RESPONSE_STARTED_TWICE"],
    ["/string-body", "TSGI_ERR_APP_BODY_TYPE"],
    ["/nothing", "TSGI_ERR_APP_BODY_TYPE"],
  ];
  for (const [path, code] of refusals) {
    test(`${path}: a 500 "Internal Server Error", ${code} in the error log, the same worker goes on`, async () => {
      const workerPid = await pidOf(site);
      const log = await errorLogDuring(site, async () => {
        const r = await request(url(site, path));
        expect([r.status, r.body.toString()]).toEqual([500, "Internal Server Error\n"]);
      });
      expect(log).toMatch(new RegExp(`the application failed on GET ${path}: ${code}: `));
      expect(log).not.toMatch(CRASHY);
      expect(await pidOf(site)).toBe(workerPid);
    });
  }

  test("write() called from a timer after the response ended: the response is what was returned, the late bytes go nowhere, the same worker goes on", async () => {
    const workerPid = await pidOf(site);
    const log = await errorLogDuring(site, async () => {
      const r = await request(url(site, "/late-write"));
      expect([r.status, r.complete, r.body.toString()]).toEqual([200, true, `pid ${workerPid}`]);
      await new Promise((r) => setTimeout(r, 200)); // the timer's write() has run
    });
    expect(log).not.toMatch(CRASHY);
    expect(await pidOf(site)).toBe(workerPid);
  });

  test("a uwsgi client that resets during a streamed body: the same worker goes on, the access log shows fewer bytes", async () => {
    const workerPid = await pidOf(site);
    const uri = `/stream?mib=16&id=${unique()}`;
    const log = await errorLogDuring(site, async () => {
      await uwsgiReadThenReset(site.tcp("uwsgi"), uri, 64 * 1024);
      expect(await pidOf(site)).toBe(workerPid);
    });
    expect(log).not.toMatch(CRASHY);
    const line = await waitForAccessLine(site.stdout, uri);
    expect(line.status).toBe(200);
    expect(line.bytes).toBeLessThan(SIXTEEN_MIB);
  });

  test("a uwsgi client that resets during an upload the application reads: the read fails, the same worker goes on", async () => {
    const workerPid = await pidOf(site);
    const uri = `/upload?id=${unique()}`;
    const log = await errorLogDuring(site, async () => {
      const answered = await uwsgiUploadThenReset(site.tcp("uwsgi"), uri, 8 * 1024 * 1024, 1024 * 1024);
      expect(answered.length).toBe(0);
      expect(await pidOf(site)).toBe(workerPid);
    });
    expect(log).not.toMatch(CRASHY);
    // Nothing was answered: the access log says the client left (499), as nginx does.
    expect((await waitForAccessLine(site.stdout, uri)).status).toBe(499);
    // And an upload that completes is still read whole by the same worker.
    const r = await uwsgiRequest(site.tcp("uwsgi"), "POST", "/upload", Buffer.alloc(3 * 1024 * 1024, 1));
    expect([r.status, r.body.toString()]).toEqual([200, `read ${3 * 1024 * 1024}`]);
  });
});

describe("an exception nothing catches (thrown in a timer)", () => {
  test("the worker is replaced only after its request in flight completed, and a client looping meanwhile sees no failure", async () => {
    const oldPid = await pidOf(recycled);
    // A request in flight on the worker that will fail.
    const slow = request(url(recycled, "/slow?ms=2500"));
    await new Promise((r) => setTimeout(r, 100));

    // A client looping on fresh connections through the whole replacement.
    let looping = true;
    const seen: number[] = [];
    const failures: string[] = [];
    const loop = (async () => {
      while (looping) {
        try {
          const r = await request(url(recycled, "/pid"), { timeoutMs: 5000 });
          if (r.status !== 200 || !r.complete) failures.push(`status ${r.status}, complete ${r.complete}`);
          else seen.push(Number(r.body.toString().slice(4)));
        } catch (err) {
          failures.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const trigger = await request(url(recycled, "/timer-throw"));
    expect([trigger.status, trigger.body.toString()]).toEqual([200, `pid ${oldPid}`]);
    await recycled.waitForStderr(/worker 1: an exception nothing caught; the worker finishes its requests and is replaced: Error: survivor: thrown in a timer/);
    await recycled.waitForStderr(new RegExp(`worker 1 \\(pid ${oldPid}\\) is replaced: an uncaught exception`));

    const slowReply = await slow;
    const slowDone = Date.now();
    expect([slowReply.status, slowReply.complete, slowReply.body.toString()]).toEqual([200, true, `slow done pid ${oldPid}`]);

    // The old worker exits once its request is done (never before: its answer came from it).
    let exitedAt = 0;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      try {
        process.kill(oldPid, 0);
      } catch {
        exitedAt = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(exitedAt).toBeGreaterThanOrEqual(slowDone);
    await new Promise((r) => setTimeout(r, 200));
    looping = false;
    await loop;

    expect(failures).toEqual([]);
    const newPid = await pidOf(recycled);
    expect(newPid).not.toBe(oldPid);
    expect(seen).toContain(oldPid);
    expect(seen).toContain(newPid);
    expect(seen.at(-1)).toBe(newPid);
    // A replacement asked for, not a crash.
    expect(recycled.stderr()).not.toMatch(/killed by|exited with status/);
  });
});

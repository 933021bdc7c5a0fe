// The environ rules of DESIGN §1: where the path comes from for each front server, the
// mount split, UTF-8 and dot segments, absent CONTENT_*, url_scheme, repeated headers.
import { describe, expect, it } from "vitest";
import { buildEnviron, normalizeMount, type Environ } from "../../src/gateway/environ.ts";
import { fileWrapper } from "../../src/gateway/body.ts";
import { TsgiInput } from "../../src/gateway/input.ts";
import { RequestAbort } from "../../src/gateway/abort.ts";

const ctx = (mount = "") => ({
  mount: normalizeMount(mount),
  input: TsgiInput.of(),
  errors: { write() {}, flush() {} },
  multiprocess: true,
  abort: new RequestAbort(),
  fileWrapper,
});
const env = (params: string[], mount = ""): Environ => {
  const r = buildEnviron(params, ctx(mount));
  if (!("environ" in r)) throw r.error;
  return r.environ;
};
/** UTF-8 text as a byte string (one char per byte), as the decoders deliver params. */
const bytes = (s: string) => Buffer.from(s, "utf8").toString("latin1");

describe("environ: the path the front server decided on", () => {
  it("nginx fastcgi_params: DOCUMENT_URI, whole path as SCRIPT_NAME, no PATH_INFO", () => {
    const e = env(["REQUEST_METHOD", "GET", "SCRIPT_NAME", bytes("/café/x"), "DOCUMENT_URI", bytes("/café/x"), "REQUEST_URI", "/caf%C3%A9/x?q=1", "QUERY_STRING", "q=1"]);
    expect([e.SCRIPT_NAME, e.PATH_INFO, e.REQUEST_URI]).toEqual(["", "/café/x", "/caf%C3%A9/x?q=1"]);
  });

  it("nginx uwsgi_params: PATH_INFO and no SCRIPT_NAME", () => {
    const e = env(["REQUEST_METHOD", "GET", "PATH_INFO", "/a/b", "REQUEST_URI", "/a/b"]);
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(["", "/a/b"]);
  });

  it("Apache mod_proxy_uwsgi: SCRIPT_NAME + PATH_INFO is the whole path, re-split at the mount", () => {
    const e = env(["REQUEST_METHOD", "GET", "SCRIPT_NAME", "/app", "PATH_INFO", "/x y"], "/app");
    expect([e.SCRIPT_NAME, e.PATH_INFO]).toEqual(["/app", "/x y"]);
  });

  it("REQUEST_URI, percent-decoded, only where nothing else was sent", () => {
    const e = env(["REQUEST_METHOD", "GET", "REQUEST_URI", "/caf%C3%A9/%2e%2e/b?x=%20"]);
    expect(e.PATH_INFO).toBe("/b");
    expect(e.REQUEST_URI).toBe("/caf%C3%A9/%2e%2e/b?x=%20");
  });

  it("resolves dot segments, keeps repeated slashes, never climbs above the root", () => {
    expect(env(["DOCUMENT_URI", "/a/./b/../c//d/"]).PATH_INFO).toBe("/a/c//d/");
    expect(env(["DOCUMENT_URI", "/../../etc/passwd"]).PATH_INFO).toBe("/etc/passwd");
    expect(env(["DOCUMENT_URI", "/a/b/.."]).PATH_INFO).toBe("/a/");
  });

  it("splits at the mount; the mount itself is PATH_INFO \"\"", () => {
    expect(env(["DOCUMENT_URI", "/app/x"], "/app/").PATH_INFO).toBe("/x");
    const root = env(["DOCUMENT_URI", "/app"], "/app");
    expect([root.SCRIPT_NAME, root.PATH_INFO]).toEqual(["/app", ""]);
  });

  it("a path outside the mount is a 404; /application is not under /app", () => {
    for (const path of ["/other", "/application"]) {
      const r = buildEnviron(["DOCUMENT_URI", path], ctx("/app"));
      expect(r).toMatchObject({ httpStatus: 404, error: { code: "TSGI_ERR_ENVIRON_OUTSIDE_MOUNT" } });
    }
  });

  it("a path that is not UTF-8 is a 400", () => {
    expect(buildEnviron(["REQUEST_URI", "/%FF"], ctx())).toMatchObject({ httpStatus: 400, error: { code: "TSGI_ERR_ENVIRON_PATH_NOT_UTF8" } });
    expect(buildEnviron(["DOCUMENT_URI", "/\xff"], ctx())).toMatchObject({ httpStatus: 400 });
  });
});

describe("environ: the other keys", () => {
  it("drops empty CONTENT_TYPE and CONTENT_LENGTH (nginx sends them empty)", () => {
    const e = env(["CONTENT_TYPE", "", "CONTENT_LENGTH", "", "DOCUMENT_URI", "/"]);
    expect("CONTENT_TYPE" in e).toBe(false);
    expect("CONTENT_LENGTH" in e).toBe(false);
    expect(env(["CONTENT_LENGTH", "5", "DOCUMENT_URI", "/"]).CONTENT_LENGTH).toBe("5");
  });

  it("tsgi.url_scheme from HTTPS=on/1 or REQUEST_SCHEME=https", () => {
    expect(env(["HTTPS", "on"])["tsgi.url_scheme"]).toBe("https");
    expect(env(["HTTPS", "1"])["tsgi.url_scheme"]).toBe("https");
    expect(env(["REQUEST_SCHEME", "https"])["tsgi.url_scheme"]).toBe("https");
    expect(env(["REQUEST_SCHEME", "http", "HTTPS", ""])["tsgi.url_scheme"]).toBe("http");
  });

  it("merges a repeated header as HTTP does (nginx 1.22 sends each line as its own param)", () => {
    const e = env(["HTTP_X_FORWARDED_FOR", "a", "HTTP_X_FORWARDED_FOR", "b", "HTTP_COOKIE", "x=1", "HTTP_COOKIE", "y=2", "SERVER_NAME", "a", "SERVER_NAME", "b"]);
    expect(e.HTTP_X_FORWARDED_FOR).toBe("a, b");
    expect(e.HTTP_COOKIE).toBe("x=1; y=2");
    expect(e.SERVER_NAME).toBe("b");
  });

  it("keeps every other param as sent, with the tsgi keys", () => {
    const e = env(["REDIRECT_STATUS", "200", "UWSGI_FILE", "/etc/passwd", "DOCUMENT_URI", "/"]);
    expect(e.REDIRECT_STATUS).toBe("200");
    expect(e.UWSGI_FILE).toBe("/etc/passwd");
    expect(e["tsgi.version"]).toEqual([1, 0]);
    expect(e["tsgi.multithread"]).toBe(false);
    expect(e["tsgi.multiprocess"]).toBe(true);
    expect(e["tsgi.run_once"]).toBe(false);
    expect(e["tsgi.input_terminated"]).toBe(true);
    expect(e.QUERY_STRING).toBe("");
  });
});

describe("environ: tsgi.signal", () => {
  it("is an own enumerable key whose signal is made on first use and follows the request's abort", () => {
    const abort = new RequestAbort();
    const r = buildEnviron(["REQUEST_METHOD", "GET", "PATH_INFO", "/"], { ...ctx(), abort });
    if (!("environ" in r)) throw r.error;
    const e = r.environ;
    expect(Object.keys(e)).toContain("tsgi.signal");
    const signal = e["tsgi.signal"];
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(e["tsgi.signal"]).toBe(signal);
    expect(signal.aborted).toBe(false);
    abort.abort(new Error("client gone"));
    expect(signal.aborted).toBe(true);
    // A copy (a middleware's spread) carries the same signal.
    expect({ ...e }["tsgi.signal"]).toBe(signal);
  });

  it("every environ shares one getter: no accessor of its own per request (V8 put those in the old generation)", () => {
    const a = Object.getOwnPropertyDescriptor(env(["PATH_INFO", "/a"]), "tsgi.signal");
    const b = Object.getOwnPropertyDescriptor(env(["PATH_INFO", "/b"]), "tsgi.signal");
    expect(typeof a?.get).toBe("function");
    expect(a?.get).toBe(b?.get);
  });
});

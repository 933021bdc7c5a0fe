// Middleware and requestFinished (DESIGN §3): closing() forwards close() once, applyMiddleware
// builds the chain first-outermost from functions and Middleware subclasses, a plain class is
// a coded error, and the request runner fires requestFinished once per request after close()
// on every path — closing first, with a development warning, the inner bodies a middleware
// dropped. The last case runs the same through a separately bundled copy of "tsgi", as an
// application's import is: two module instances sharing one registry through globalThis.
// The sink is an in-memory recorder of what a protocol server would be asked to send.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { Body, Environ } from "../../src/gateway/environ.ts";
import { environ } from "../regressions/support/runner-harness.ts";
import { RequestAbort } from "../../src/gateway/abort.ts";
import { runRequest, type Application, type ResponseSink } from "../../src/gateway/request.ts";
import type { ResponseHead, StartResponse } from "../../src/gateway/start-response.ts";
import { applyMiddleware, closing, Middleware, type MiddlewareFactory } from "../../src/gateway/middleware.ts";
import { BODIES, registry, requestFinished } from "../../src/gateway/request-finished.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");

function recorder() {
  const sent = { status: null as string | null, body: "", ended: false, aborted: false };
  const sink: ResponseSink = {
    send(head: ResponseHead, chunk, last) {
      if (!head.sent) {
        head.sent = true;
        sent.status = head.status;
      }
      if (chunk) sent.body += Buffer.from(chunk).toString();
      if (last) sent.ended = true;
    },
    abort() {
      sent.aborted = true;
    },
  };
  return { sink, sent };
}


/** What happened, in order: closes, listener calls, log lines. */
let events: string[] = [];
const log = {
  error: (m: string, err?: unknown) => void events.push(`error: ${m}${err ? ` (${(err as Error).message})` : ""}`),
  warn: (m: string) => void events.push(`warn: ${m}`),
};
const disconnects: (() => void)[] = [];
afterEach(() => {
  events = [];
  while (disconnects.length) disconnects.pop()!();
});

function listen(label = "finished"): void {
  disconnects.push(requestFinished.connect((env) => void events.push(`${label} ${String(env.PATH_INFO)}`)));
}

async function run(app: Application, controller = new RequestAbort()) {
  const { sink, sent } = recorder();
  const env = environ("GET", controller);
  const outcome = await runRequest(app, env, sink, { abort: controller, log });
  return { sent, outcome, env };
}

/** A body whose close() is logged as `close NAME`. */
function body(name: string, chunks: string[] = [name]): Body {
  return {
    *[Symbol.iterator]() {
      yield* chunks;
    },
    close() {
      events.push(`close ${name}`);
    },
  };
}

const hello: Application = (_e, sr) => {
  sr("200 OK", [["Content-Type", "text/plain"]]);
  return body("app", ["hello"]);
};

/** Wraps the inner body in one of its own and forgets to forward close(). */
const dropper: MiddlewareFactory = (app) => async (e, sr) => {
  const inner = await app(e, sr);
  return body("dropper", [...(inner as Iterable<string>)].map((c) => c.toUpperCase()));
};

/** Wraps the inner body and forwards close() with closing(). */
const forwarder: MiddlewareFactory = (app) => async (e, sr) => closing(await app(e, sr), () => void events.push("forwarder fn"));

// First in the file: no chain is built yet in this process.
it("while no middleware chain exists, a request carries no body record", async () => {
  expect(registry.chains).toBe(0);
  const { env, sent } = await run(hello);
  expect(sent.body).toBe("hello");
  expect(Object.getOwnPropertySymbols(env)).not.toContain(BODIES);
  expect(events).toEqual(["close app"]);
});

describe("closing(body, fn)", () => {
  it("yields the inner chunks and calls the inner close() then fn, once", () => {
    const b = closing(body("inner", ["a", "b"]), () => void events.push("fn"));
    expect([...(b as Iterable<string>)]).toEqual(["a", "b"]);
    b.close!();
    b.close!();
    expect(events).toEqual(["close inner", "fn"]);
  });

  it("stays async for an async body, waits for an async close() before fn", async () => {
    const inner: Body = {
      async *[Symbol.asyncIterator]() {
        yield "x";
      },
      async close() {
        await new Promise((r) => setTimeout(r, 10));
        events.push("close inner");
      },
    };
    const b = closing(inner, () => void events.push("fn"));
    expect(Symbol.asyncIterator in b && !(Symbol.iterator in b)).toBe(true);
    const got: unknown[] = [];
    for await (const c of b as AsyncIterable<string>) got.push(c);
    expect(got).toEqual(["x"]);
    await b.close!();
    expect(events).toEqual(["close inner", "fn"]);
  });

  it("runs fn when the inner close() throws, then rethrows; a body without close() just runs fn", () => {
    const b = closing({ *[Symbol.iterator]() {}, close: () => { throw new Error("inner broke"); } }, () => void events.push("fn"));
    expect(() => b.close!()).toThrow("inner broke");
    expect(events).toEqual(["fn"]);
    closing(["x"], () => void events.push("fn2")).close!();
    expect(events).toEqual(["fn", "fn2"]);
  });

  it("refuses what is not a body, with a code", () => {
    expect(() => closing("text" as unknown as Body, () => {})).toThrow(expect.objectContaining({ code: "TSGI_ERR_APP_BODY_TYPE" }));
  });
});

describe("applyMiddleware and Middleware", () => {
  const tag = (name: string): MiddlewareFactory => (app) => (e, sr) => app(e, (s, h, x) => sr(s, [...h, ["X-Order", name]], x));

  it("the first is the outermost; functions and Middleware classes mix", async () => {
    class Stamp extends Middleware {
      readonly label = "class";
      handle(e: Environ, sr: StartResponse) {
        return this.app(e, (s, h, x) => sr(s, [...h, ["X-Order", this.label]], x));
      }
    }
    let headers: [string, string][] = [];
    const app = applyMiddleware(
      (e, sr) => {
        sr("200 OK", []);
        return [String(e.PATH_INFO)];
      },
      [tag("outer"), Stamp, tag("inner")],
    );
    const b = await app(environ("GET", new RequestAbort()), (_s, h) => {
      headers = h;
      return () => {};
    });
    expect([...(b as Iterable<string>)]).toEqual(["/x"]);
    // The innermost adds its header first.
    expect(headers).toEqual([["X-Order", "inner"], ["X-Order", "class"], ["X-Order", "outer"]]);
  });

  it("new HelloWorldApplication(application) is an application that keeps this", async () => {
    class HelloWorldApplication extends Middleware {
      greeting = "Hello World";
      handle(e: Environ, sr: StartResponse): Body {
        sr("200 OK", [["Content-Type", "text/plain"]]);
        return [`${this.greeting} from ${String(e.PATH_INFO)}`];
      }
    }
    let application: Application = hello;
    application = new HelloWorldApplication(application);
    expect(typeof application).toBe("function");
    expect(application).toBeInstanceOf(HelloWorldApplication);
    expect(application).toBeInstanceOf(Middleware);
    expect(application.name).toBe("HelloWorldApplication");
    const { sent } = await run(application);
    expect(sent).toMatchObject({ status: "200 OK", body: "Hello World from /x", ended: true });
    // Function.prototype's methods, as any application has them.
    expect([...(application.call(null, environ("GET", new RequestAbort()), () => () => {}) as Iterable<string>)]).toEqual(["Hello World from /x"]);
  });

  it("coded errors: a plain class, a subclass without handle(), a middleware returning no application", () => {
    class Plain {
      constructor(readonly app: Application) {}
    }
    expect(() => applyMiddleware(hello, [Plain as unknown as MiddlewareFactory])).toThrow(
      expect.objectContaining({ code: "TSGI_ERR_APP_MIDDLEWARE_CLASS", message: expect.stringMatching(/^middleware Plain is a class whose instances are not applications: .*extend Middleware/) }),
    );
    class NoHandle extends (Middleware as unknown as new (app: Application) => object) {}
    expect(() => new NoHandle(hello)).toThrow(expect.objectContaining({ code: "TSGI_ERR_APP_MIDDLEWARE_CLASS", message: expect.stringContaining("NoHandle") }));
    const broken = (() => 42) as unknown as MiddlewareFactory;
    Object.defineProperty(broken, "name", { value: "broken" });
    expect(() => applyMiddleware(hello, [broken])).toThrow(expect.objectContaining({ code: "TSGI_ERR_APP_MIDDLEWARE", message: "middleware broken: it returned number, not an application" }));
    expect(() => applyMiddleware(hello, ["nope" as unknown as MiddlewareFactory])).toThrow(expect.objectContaining({ code: "TSGI_ERR_APP_MIDDLEWARE" }));
  });
});

describe("requestFinished", () => {
  it("fires once per request, after the response ended and close() ran; disconnect stops it", async () => {
    listen();
    const { sent } = await run(hello);
    expect(sent).toMatchObject({ body: "hello", ended: true });
    expect(events).toEqual(["close app", "finished /x"]);
    expect(requestFinished.listenerCount).toBe(1);
    disconnects.pop()!();
    expect(requestFinished.listenerCount).toBe(0);
    await run(hello);
    expect(events).toEqual(["close app", "finished /x", "close app"]);
  });

  it("fires on a 500, on an iteration that throws after the head (a cut), and on an abort", async () => {
    listen();
    const failing: Application = () => {
      throw new Error("app broke");
    };
    expect((await run(failing)).sent.status).toBe("500 Internal Server Error");
    expect(events.filter((e) => !e.startsWith("error"))).toEqual(["finished /x"]);

    events = [];
    const cut: Application = (_e, sr) => {
      sr("200 OK", []);
      return {
        *[Symbol.iterator]() {
          yield "part";
          throw new Error("late");
        },
        close: () => void events.push("close cut"),
      };
    };
    expect((await run(cut)).sent.aborted).toBe(true);
    expect(events.filter((e) => !e.startsWith("error"))).toEqual(["close cut", "finished /x"]);

    // Aborted while the application's promise is pending: finished once its late body is closed.
    events = [];
    const controller = new RequestAbort();
    let answer!: (b: Body) => void;
    const slow: Application = () => new Promise<Body>((r) => (answer = r));
    const running = run(slow, controller);
    await new Promise((r) => setTimeout(r, 5));
    controller.abort(new Error("client gone"));
    const { outcome } = await running;
    expect(outcome.end).toBe("aborted");
    expect(events).toEqual([]);
    answer(body("late"));
    await outcome.unfinished;
    await new Promise((r) => setImmediate(r));
    expect(events).toEqual(["close late", "finished /x"]);
  });

  it("a listener that throws is logged; the response and the other listeners are unaffected", async () => {
    disconnects.push(
      requestFinished.connect(() => {
        throw new Error("listener broke");
      }),
    );
    disconnects.push(requestFinished.connect(() => Promise.reject(new Error("async listener broke"))));
    listen("third");
    const { sent, outcome } = await run(hello);
    expect(outcome.end).toBe("complete");
    expect(sent).toMatchObject({ body: "hello", ended: true });
    await new Promise((r) => setImmediate(r));
    expect(events).toEqual([
      "close app",
      "error: TSGI_ERR_APP_REQUEST_FINISHED: requestFinished: a listener threw; the other listeners still ran (listener broke)",
      "third /x",
      "error: TSGI_ERR_APP_REQUEST_FINISHED: requestFinished: a listener threw; the other listeners still ran (async listener broke)",
    ]);
    expect(() => requestFinished.connect("x" as never)).toThrow(expect.objectContaining({ code: "TSGI_ERR_APP_REQUEST_FINISHED" }));
  });

  it("closes an inner body a middleware dropped, before the listeners, and warns with debug naming it", async () => {
    listen();
    const { sent } = await run(applyMiddleware(hello, [dropper], { debug: true }));
    expect(sent.body).toBe("HELLO");
    expect(events).toEqual([
      "close dropper",
      "warn: TSGI_ERR_APP_CLOSE_DROPPED: middleware dropper did not call close() of the body its application returned; tsgi closed it after the response",
      "close app",
      "finished /x",
    ]);
    // Without debug (and without TSGI_DEBUG=1): closed all the same, silently.
    events = [];
    await run(applyMiddleware(hello, [dropper]));
    expect(events).toEqual(["close dropper", "close app", "finished /x"]);
  });

  it("names only the middleware that dropped: outer dropper, inner forwarder; each close() runs once", async () => {
    listen();
    await run(applyMiddleware(hello, [dropper, forwarder], { debug: true }));
    expect(events).toEqual([
      "close dropper",
      "warn: TSGI_ERR_APP_CLOSE_DROPPED: middleware dropper did not call close() of the body its application returned; tsgi closed it after the response",
      "close app",
      "forwarder fn",
      "finished /x",
    ]);
    // Forwarding all the way: no warning, the app's body closed once, by the chain.
    events = [];
    await run(applyMiddleware(hello, [forwarder, forwarder], { debug: true }));
    expect(events).toEqual(["close app", "forwarder fn", "forwarder fn", "finished /x"]);
  });

  it("a middleware that hands its inner application a copy of the environ still has its dropped body closed", async () => {
    listen();
    const copying: MiddlewareFactory = (app) => async (e, sr) => {
      const inner = await app({ ...e, "mysite.copied": true }, sr);
      return [...(inner as Iterable<string>)];
    };
    Object.defineProperty(copying, "name", { value: "copying" });
    const { sent } = await run(applyMiddleware(hello, [copying], { debug: true }));
    expect(sent.body).toBe("hello");
    expect(events).toEqual([
      "warn: TSGI_ERR_APP_CLOSE_DROPPED: middleware copying did not call close() of the body its application returned; tsgi closed it after the response",
      "close app",
      "finished /x",
    ]);
  });

  it("a middleware that passes the body through drops nothing, and the body's close() is its own again after", async () => {
    listen();
    const shared = body("shared");
    const own = shared.close;
    const passThrough: MiddlewareFactory = (app) => (e, sr) => app(e, sr);
    const app: Application = (_e, sr) => {
      sr("200 OK", []);
      return shared;
    };
    await run(applyMiddleware(app, [passThrough, passThrough], { debug: true }));
    expect(events).toEqual(["close shared", "finished /x"]);
    expect(shared.close).toBe(own);
  });

  it("new M(app) without applyMiddleware records its inner body too (warned with TSGI_DEBUG=1)", async () => {
    class Upper extends Middleware {
      async handle(e: Environ, sr: StartResponse) {
        const inner = await this.app(e, sr);
        return body("upper", [...(inner as Iterable<string>)].map((c) => c.toUpperCase()));
      }
    }
    listen();
    process.env.TSGI_DEBUG = "1";
    try {
      const { sent } = await run(new Upper(hello));
      expect(sent.body).toBe("HELLO");
    } finally {
      delete process.env.TSGI_DEBUG;
    }
    expect(events).toEqual([
      "close upper",
      "warn: TSGI_ERR_APP_CLOSE_DROPPED: middleware Upper did not call close() of the body its application returned; tsgi closed it after the response",
      "close app",
      "finished /x",
    ]);
  });

  it("a separately bundled copy of tsgi (the application's import) shares the listeners and the chains", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsgi-bundle-"));
    try {
      const { build } = await import("esbuild");
      const out = join(dir, "index.mjs");
      await build({ entryPoints: [join(ROOT, "src", "index.ts")], outfile: out, bundle: true, platform: "node", format: "esm", packages: "external", logLevel: "warning" });
      const copy = (await import(pathToFileURL(out).href)) as typeof import("../../src/index.ts");
      expect(copy.requestFinished).not.toBe(requestFinished);
      const chainsBefore = registry.chains;
      disconnects.push(copy.requestFinished.connect((env) => void events.push(`copy finished ${String(env.PATH_INFO)}`)));
      expect(requestFinished.listenerCount).toBe(1);
      const app = copy.applyMiddleware(hello, [dropper], { debug: true });
      expect(registry.chains).toBeGreaterThan(chainsBefore);
      await run(app);
      expect(events).toEqual([
        "close dropper",
        "warn: TSGI_ERR_APP_CLOSE_DROPPED: middleware dropper did not call close() of the body its application returned; tsgi closed it after the response",
        "close app",
        "copy finished /x",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Middleware (DESIGN §3): an application that wraps another. `applyMiddleware` builds a
// chain (the first outermost), as the MIDDLEWARE setting does; `Middleware` is the base class
// that makes `application = new HelloWorldApplication(application)` work (a JavaScript class
// instance is not callable: its constructor returns a function that calls the instance's
// handle()); `closing(body, fn)` forwards close() for middleware that wrap the body (as
// Werkzeug's ClosingIterator). Each layer records the bodies its inner application returns
// (request-finished.ts), so that the gateway closes the ones a middleware forgot to.

import { tsgiError } from "../errors.ts";
import type { Body, Chunk, Environ } from "./environ.ts";
import type { Application } from "./request.ts";
import type { StartResponse } from "./start-response.ts";
import { recordInnerBody, registry, type Layer } from "./request-finished.ts";

/** A middleware: a function `(app) => application`, or a class whose instances are applications (`new M(app)`). */
export type MiddlewareFactory = ((app: Application) => Application) | (new (app: Application) => Application);

export interface ApplyMiddlewareOptions {
  /** Warn in the error log when a middleware drops its inner body's close() (the settings' DEBUG; TSGI_DEBUG=1 does it for every chain). */
  debug?: boolean;
}

/** Marks the inner applications this file hands a middleware (a Middleware subclass then does not record twice). */
const RECORDER = Symbol.for("tsgi.middleware-inner");

function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as PromiseLike<unknown>).then === "function";
}

/** `app` as the middleware `layer` receives it: the same application, whose returned bodies are recorded for the gateway. */
function recording(app: Application, layer: Layer): Application {
  registry.chains++;
  const inner = (environ: Environ, startResponse: StartResponse): Body | Promise<Body> => {
    const result = app(environ, startResponse);
    if (isThenable(result)) {
      return Promise.resolve(result).then((body) => {
        recordInnerBody(environ, body, layer);
        return body;
      });
    }
    recordInnerBody(environ, result, layer);
    return result;
  };
  Object.defineProperty(inner, RECORDER, { value: layer });
  return inner;
}

/**
 * The base class of a class middleware: `new M(app)` is an application, which calls the
 * instance's `handle(environ, startResponse)` with `this` the instance; `this.app` is the
 * wrapped application. Instances are functions (`typeof` "function", Function.prototype's
 * call/apply/bind) and `instanceof M`.
 */
export interface Middleware {
  (environ: Environ, startResponse: StartResponse): Body | Promise<Body>;
}
export abstract class Middleware {
  /** The application this middleware wraps. */
  declare readonly app: Application;

  constructor(app: Application) {
    const name = new.target.name || "(an anonymous Middleware subclass)";
    if (typeof app !== "function") throw tsgiError("TSGI_ERR_APP_MIDDLEWARE", { name, reason: `new ${name}(app) was given ${describe(app)}, not an application to wrap` });
    // The instance is this function: what the server calls, and what `this` is in handle().
    const self = ((environ: Environ, startResponse: StartResponse) => self.handle(environ, startResponse)) as Middleware;
    Object.setPrototypeOf(self, new.target.prototype);
    if (typeof self.handle !== "function") {
      throw tsgiError("TSGI_ERR_APP_MIDDLEWARE_CLASS", { name, reason: "it extends Middleware but has no handle(environ, startResponse) method" });
    }
    Object.defineProperty(self, "name", { value: name });
    const recorded = (app as { [RECORDER]?: Layer })[RECORDER] ? app : recording(app, { name, debug: false });
    Object.defineProperty(self, "app", { value: recorded, enumerable: true });
    return self;
  }

  /** Answers one request, as an application does; call `this.app(environ, startResponse)` to pass it on. */
  abstract handle(environ: Environ, startResponse: StartResponse): Body | Promise<Body>;
}
// Instances are functions: Function.prototype's methods as any application has them.
Object.setPrototypeOf(Middleware.prototype, Function.prototype);

function isClass(fn: unknown): boolean {
  return typeof fn === "function" && /^class\b/.test(Function.prototype.toString.call(fn));
}

/** One entry of a chain: the middleware and how errors and warnings name it. */
export interface ChainEntry {
  middleware: unknown;
  name: string;
  /** Named by the MIDDLEWARE setting: a bad result is TSGI_ERR_SETTINGS_MIDDLEWARE with this spec. */
  spec?: string;
}

/** The chain of `entries` around `app`, the first outermost (applyMiddleware and the MIDDLEWARE setting). */
export function buildChain(app: Application, entries: readonly ChainEntry[], debug: boolean): Application {
  if (typeof app !== "function") throw tsgiError("TSGI_ERR_APP_MIDDLEWARE", { name: entries[entries.length - 1]?.name ?? "(none)", reason: `the application to wrap is ${describe(app)}` });
  let wrapped: Application = app;
  for (let i = entries.length - 1; i >= 0; i--) {
    const { middleware, name, spec } = entries[i]!;
    if (typeof middleware !== "function") {
      throw tsgiError("TSGI_ERR_APP_MIDDLEWARE", { name, reason: `it is ${describe(middleware)}, not a function (app) => application or a class` });
    }
    const inner = recording(wrapped, { name, debug });
    let result: unknown;
    if (isClass(middleware)) {
      result = new (middleware as new (app: Application) => unknown)(inner);
      if (typeof result !== "function") {
        throw tsgiError("TSGI_ERR_APP_MIDDLEWARE_CLASS", { name, reason: "its instances are not callable: extend Middleware from \"tsgi\" and answer in handle(environ, startResponse)" });
      }
    } else {
      result = (middleware as (app: Application) => unknown)(inner);
    }
    if (typeof result !== "function") {
      if (spec !== undefined) throw tsgiError("TSGI_ERR_SETTINGS_MIDDLEWARE", { spec, got: describe(result) });
      throw tsgiError("TSGI_ERR_APP_MIDDLEWARE", { name, reason: `it returned ${describe(result)}, not an application` });
    }
    wrapped = result as Application;
  }
  return wrapped;
}

/**
 * `app` wrapped in `middleware`, the first outermost: applyMiddleware(app, [a, b]) is a(b(app)).
 * Each is a function `(app) => application` or a class (`new M(app)`, which must extend
 * Middleware unless its instances are functions already). Errors and warnings name each by
 * its `name` (the function's or the class's).
 */
export function applyMiddleware(app: Application, middleware: readonly MiddlewareFactory[], options: ApplyMiddlewareOptions = {}): Application {
  if (!Array.isArray(middleware)) throw tsgiError("TSGI_ERR_APP_MIDDLEWARE", { name: "(the list)", reason: `applyMiddleware(app, list) takes an array, not ${describe(middleware)}` });
  const entries = middleware.map((m, i) => ({ middleware: m, name: (typeof m === "function" && m.name) || `middleware #${i + 1}` }));
  return buildChain(app, entries, options.debug ?? false);
}

/**
 * A body that yields `body`'s chunks, and whose close() calls `body`'s close() and then `fn`,
 * once (fn runs even when that close() throws, which is then rethrown); async when either is.
 * For a middleware that does work at the end of a response: `return closing(await
 * this.app(environ, startResponse), () => log(environ))` forwards close() to the inner body.
 * A middleware that yields chunks of its own must forward close() itself:
 * `{ *[Symbol.iterator]() { … }, close: () => inner.close?.() }`.
 */
export function closing(body: Body, fn: () => void | Promise<void>): Body {
  if (body === null || typeof body !== "object" || !(Symbol.iterator in body || Symbol.asyncIterator in body)) {
    throw tsgiError("TSGI_ERR_APP_BODY_TYPE", { type: describe(body), hint: "closing(body, fn) takes the body (an iterable of chunks) the application returned; await a promised one first" });
  }
  if (typeof fn !== "function") throw tsgiError("TSGI_ERR_APP_MIDDLEWARE", { name: "closing()", reason: `closing(body, fn) takes a function, not ${describe(fn)}` });
  let closed = false;
  const close = (): void | Promise<void> => {
    if (closed) return undefined;
    closed = true;
    let r: void | Promise<void>;
    try {
      r = body.close?.();
    } catch (err) {
      const after = fn();
      if (isThenable(after)) return Promise.resolve(after).then(() => Promise.reject(err));
      throw err;
    }
    if (isThenable(r)) {
      return Promise.resolve(r).then(
        () => fn(),
        async (err: unknown) => {
          await fn();
          throw err;
        },
      );
    }
    return fn();
  };
  if (Symbol.asyncIterator in body) {
    const inner = body as AsyncIterable<Chunk>;
    return { [Symbol.asyncIterator]: () => inner[Symbol.asyncIterator](), close };
  }
  const inner = body as Iterable<Chunk>;
  return { [Symbol.iterator]: () => inner[Symbol.iterator](), close };
}

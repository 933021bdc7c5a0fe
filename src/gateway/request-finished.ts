// requestFinished (DESIGN §3, Django's `request_finished`): listeners the project connects,
// called once per request after the response ended and its body's close() ran; and the
// per-request record of the bodies a middleware chain's inner applications returned, so that
// the gateway closes the ones a middleware dropped before the listeners run.
//
// Cross-instance contract (both ends: this file, bundled into tsgi's worker and again into
// the "tsgi" package an application imports): the application's copy connects listeners and
// records bodies, the worker's copy calls them. The two are separate module instances, so
// everything they share lives under Symbol.for keys: the registry on globalThis, the
// per-request record on the environ itself (an own enumerable symbol property, so that a
// middleware that hands its inner application a copy, `{ ...environ, X: 1 }`, hands the
// record on too; a WeakMap keyed by the environ would lose it there).

import { tsgiError } from "../errors.ts";
import type { Body, Environ } from "./environ.ts";

export type RequestFinishedListener = (environ: Environ) => void | Promise<void>;

export interface RequestFinished {
  /**
   * Calls `listener(environ)` after each request's response ended and its body's close()
   * ran, on every path (a 500, a cut connection, a timeout). Returns the function that
   * disconnects it. A listener that throws (or rejects) is logged; the others still run.
   */
  connect(listener: RequestFinishedListener): () => void;
  /** How many listeners are connected. */
  readonly listenerCount: number;
}

/** A middleware of a chain, as its dropped-close warning names it. */
export interface Layer {
  name: string;
  /** Warn when it drops a close() (the settings' DEBUG, or applyMiddleware's `debug`). */
  debug: boolean;
}

/** One body an inner application returned to a middleware, with a close() (the only kind a middleware can drop). */
interface InnerBody {
  layer: Layer;
  body: Body;
  closed: boolean;
  /** What `close` was before it was marked, to put back after the request. */
  original: PropertyDescriptor | undefined;
  marked: () => void | Promise<void>;
}

interface Registry {
  /** Copied on write: a request that is calling them keeps the array it started with. */
  listeners: readonly RequestFinishedListener[];
  /** Middleware chains built in this process: while 0, requests carry no body record. */
  chains: number;
}

const REGISTRY = Symbol.for("tsgi.request-finished");
/** The environ's key of the per-request InnerBody[] (present only while a chain exists). */
export const BODIES = Symbol.for("tsgi.request-bodies");

const shared = globalThis as { [REGISTRY]?: Registry };
/** Shared by every copy of this module in the process; created by the first, never replaced. */
export const registry: Registry = (shared[REGISTRY] ??= { listeners: [], chains: 0 });

function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

export const requestFinished: RequestFinished = {
  connect(listener) {
    if (typeof listener !== "function") throw tsgiError("TSGI_ERR_APP_REQUEST_FINISHED", { reason: `connect() takes a function (environ) => void, not ${describe(listener)}` });
    registry.listeners = [...registry.listeners, listener];
    let connected = true;
    return () => {
      if (!connected) return;
      connected = false;
      const i = registry.listeners.indexOf(listener);
      if (i >= 0) registry.listeners = [...registry.listeners.slice(0, i), ...registry.listeners.slice(i + 1)];
    };
  },
  get listenerCount() {
    return registry.listeners.length;
  },
};

/**
 * Records `body`, which an inner application returned to the middleware `layer`, in the
 * request's record: its close() is replaced by one that notes the call (and runs once), and
 * put back after the request. A body without close() has nothing to drop and is not
 * recorded; nor is one whose `close` cannot be replaced (a frozen object).
 */
export function recordInnerBody(environ: Environ, body: unknown, layer: Layer): void {
  const record = (environ as { [BODIES]?: InnerBody[] })[BODIES];
  if (record === undefined || body === null || typeof body !== "object" || typeof (body as Body).close !== "function") return;
  const b = body as Body;
  const close = b.close!;
  const entry: InnerBody = { layer, body: b, closed: false, original: Object.getOwnPropertyDescriptor(b, "close"), marked: close };
  entry.marked = () => {
    if (entry.closed) return undefined;
    entry.closed = true;
    return close.call(b);
  };
  try {
    Object.defineProperty(b, "close", { value: entry.marked, configurable: true, writable: true, enumerable: entry.original?.enumerable ?? false });
  } catch {
    return;
  }
  record.push(entry);
}

/** A new record for one request, when a chain exists (the gateway's one allocation for it). */
export function startRecord(environ: Environ): InnerBody[] | undefined {
  if (registry.chains === 0) return undefined;
  const record: InnerBody[] = [];
  (environ as { [BODIES]?: InnerBody[] })[BODIES] = record;
  return record;
}

export interface FinishLog {
  error(message: string, err?: unknown): void;
  warn?(message: string): void;
}

/**
 * After the response's own body was closed: closes every recorded body still open,
 * outermost first (closing it runs the close() of the middleware inside it, which may close
 * the next), warns in development about each middleware that dropped one, and puts every
 * body's close back.
 */
export async function closeDropped(record: readonly InnerBody[], log: FinishLog): Promise<void> {
  for (let i = record.length - 1; i >= 0; i--) {
    const entry = record[i]!;
    if (entry.closed) continue;
    if (entry.layer.debug || process.env.TSGI_DEBUG === "1") {
      const err = tsgiError("TSGI_ERR_APP_CLOSE_DROPPED", { name: entry.layer.name });
      const line = `${err.code}: ${err.message}`;
      if (log.warn) log.warn(line);
      else log.error(line);
    }
    try {
      await entry.marked();
    } catch (err) {
      log.error(`the close() of the body middleware ${entry.layer.name} dropped threw`, err);
    }
  }
  // Put back, so that a body object an application returns again (a constant) does not
  // gather one wrapper a request. Last marked first: a body passed through two layers was
  // marked twice, the second over the first.
  for (let i = record.length - 1; i >= 0; i--) {
    const { body, marked, original } = record[i]!;
    if (body.close !== marked) continue;
    if (original) Object.defineProperty(body, "close", original);
    else delete (body as { close?: unknown }).close;
  }
}

/** Calls the listeners connected now; one that throws or rejects is logged, and the rest still run. */
export function fireRequestFinished(environ: Environ, log: FinishLog): void {
  const failed = (err: unknown) => {
    const coded = tsgiError("TSGI_ERR_APP_REQUEST_FINISHED", { reason: "a listener threw; the other listeners still ran" }, err);
    log.error(`${coded.code}: ${coded.message}`, err);
  };
  for (const listener of registry.listeners) {
    try {
      const r = listener(environ);
      if (r !== undefined && r !== null && typeof (r as Promise<void>).then === "function") (r as Promise<void>).then(undefined, failed);
    } catch (err) {
      failed(err);
    }
  }
}

// One request's life once its environ is built (DESIGN §1): calls the application, iterates
// its body into the protocol's sink, turns an exception into a 500 (before the head went
// out) or a cut connection (after), answers 504 when a timeout aborts a request that sent
// nothing, keeps HEAD/204/304 bodies off the wire, and calls the body's close() exactly once
// on every path. The protocol servers own the sockets; this file owns the order of things.

import { tsgiError, type TsgiError } from "../errors.ts";
import type { Body, Chunk, Environ } from "./environ.ts";
import type { RequestAbort } from "./abort.ts";
import { ResponseHead, toBytes, type StartResponse } from "./start-response.ts";

export type Application = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;

/** What a protocol server implements to carry one response. */
export interface ResponseSink {
  /**
   * Sends the head first if `head.sent` is false (and sets it), then `chunk` if any, and
   * ends the response cleanly when `last`. A promise means "wait before the next send"
   * (socket backpressure); it rejects when the peer is gone.
   */
  send(head: ResponseHead, chunk: Uint8Array | null, last: boolean): void | Promise<void>;
  /** Ends the response without a clean end (no FCGI_END_REQUEST, no final chunk). */
  abort(): void;
}

export interface RequestLog {
  error(message: string, err?: unknown): void;
}

export interface RequestOptions {
  /** Aborted when the client or front server gives up, or the request times out (reason: a TsgiError). */
  abort: RequestAbort;
  log: RequestLog;
  /** Show the exception to the client in the 500 body (the site's `debug`). */
  debug?: boolean;
}

export interface RequestOutcome {
  status: number;
  bytes: number;
  /** How the response ended: completely, with an error response, or cut. */
  end: "complete" | "error" | "aborted";
}

const ABORTED = Symbol("aborted");

function noBodyAllowed(method: string, code: number): boolean {
  return method === "HEAD" || code < 200 || code === 204 || code === 304;
}

function checkBody(body: unknown): asserts body is Body {
  if (typeof body === "string" || body instanceof Uint8Array) {
    // Iterating a string or a Buffer yields chars or numbers: always a mistake (wsgiref agrees).
    throw tsgiError("TSGI_ERR_APP_BODY_TYPE", { type: typeof body === "string" ? "a string" : "a Uint8Array", hint: "return [body]" });
  }
  if (body === null || typeof body !== "object" || !(Symbol.iterator in body || Symbol.asyncIterator in body)) {
    throw tsgiError("TSGI_ERR_APP_BODY_TYPE", { type: body === null ? "null" : typeof body, hint: "return an iterable of chunks" });
  }
}

export async function runRequest(app: Application, environ: Environ, sink: ResponseSink, opts: RequestOptions): Promise<RequestOutcome> {
  const { abort: signal, log } = opts;
  const method = environ.REQUEST_METHOD;
  let bytes = 0;
  let sinkFailed = false;
  const send = (chunk: Uint8Array | null, last: boolean) => {
    if (chunk) bytes += chunk.length;
    const r = sink.send(head, chunk, last);
    if (r) return r.catch((err: unknown) => {
      sinkFailed = true;
      throw err;
    });
    return undefined;
  };
  const head = new ResponseHead((chunk) => {
    // The legacy write() is synchronous: its backpressure is the sink's to absorb.
    if (chunk.length === 0) return;
    if (noBodyAllowed(method, head.code)) {
      if (!head.sent) void send(null, false);
      return;
    }
    void send(chunk, false);
  });

  let body: Body | undefined;
  let closed = false;
  // close() of the body, once; a promise only when there is one to wait for.
  const close = (): Promise<void> | undefined => {
    if (closed || !body || typeof body.close !== "function") return undefined;
    closed = true;
    try {
      const r = body.close();
      return r instanceof Promise ? r.catch((err: unknown) => log.error("the response body's close() threw", err)) : undefined;
    } catch (err) {
      log.error("the response body's close() threw", err);
      return undefined;
    }
  };

  // A wait that an abort cuts short. Only what is really pending pays for it: a synchronous
  // application and writes that need no draining never make a promise here.
  const race = <T>(p: T | Promise<T>): T | typeof ABORTED | Promise<T | typeof ABORTED> => {
    if (!(p instanceof Promise)) return p;
    return new Promise<T | typeof ABORTED>((resolve, reject) => {
      p.then(
        (v) => {
          signal.onAbort(null);
          resolve(v);
        },
        (err: unknown) => {
          signal.onAbort(null);
          reject(err);
        },
      );
      signal.onAbort(() => resolve(ABORTED));
    });
  };

  try {
    let called: Body | Promise<Body>;
    try {
      called = app(environ, head.startResponse);
    } catch (err) {
      return await failed(err);
    }
    let result: Body | typeof ABORTED;
    if (called instanceof Promise) {
      try {
        result = await race(called);
      } catch (err) {
        return await failed(err);
      }
    } else {
      result = called;
    }
    if (result === ABORTED) {
      // The application may still return a body later: it gets closed then.
      void Promise.resolve(called).then(
        (late) => {
          body = late;
          return close();
        },
        () => undefined,
      );
      return aborted();
    }
    body = result;
    checkBody(body);

    let done = false;
    // Sends a chunk; true when the response is over early (HEAD/204/304, or aborted). A
    // promise only when the write has to wait for the socket to drain.
    const emit = (chunk: Chunk, last: boolean): boolean | Promise<boolean> => {
      const bytesOf = toBytes(chunk);
      if (bytesOf.length === 0 && !last) return false;
      if (head.status === null) throw tsgiError("TSGI_ERR_APP_NO_START_RESPONSE", {});
      if (noBodyAllowed(method, head.code)) {
        // HEAD/1xx/204/304: the head and nothing else; no need to generate the rest.
        const r = send(null, true);
        return r ? Promise.resolve(race(r)).then(() => true) : true;
      }
      const r = send(bytesOf.length > 0 ? bytesOf : null, last);
      return r ? Promise.resolve(race(r)).then((x) => x === ABORTED) : false;
    };

    if (Symbol.asyncIterator in body) {
      const it = (body as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
      for (;;) {
        if (signal.aborted) break;
        const r = await race(it.next());
        if (r === ABORTED) break;
        if (r.done) break;
        const over = emit(r.value, false);
        if (over === true || (over !== false && (await over))) {
          done = true;
          break;
        }
      }
    } else {
      // A sync iterable: looking one chunk ahead lets the last chunk and the end of the
      // response share one write (one FastCGI frame for a typical small response).
      const it = (body as Iterable<Chunk>)[Symbol.iterator]();
      let cur = it.next();
      while (!cur.done && !signal.aborted) {
        const next = it.next();
        const over = emit(cur.value, next.done === true);
        if (over === true || (over !== false && (await over))) {
          done = true;
          break;
        }
        if (next.done) done = true;
        cur = next;
      }
    }
    if (signal.aborted) return aborted();
    if (!done) {
      if (head.status === null) throw tsgiError("TSGI_ERR_APP_NO_START_RESPONSE", {});
      const r = send(null, true);
      if (r) await race(r);
      if (signal.aborted) return aborted();
    }
    return { status: head.code, bytes, end: "complete" };
  } catch (err) {
    return await failed(err);
  } finally {
    const closing = close();
    if (closing) await closing;
  }

  function aborted(): Promise<RequestOutcome> | RequestOutcome {
    const reason = signal.reason as TsgiError | undefined;
    if (reason?.code === "TSGI_ERR_APP_TIMEOUT" && !head.sent && !sinkFailed) {
      return errorResponse(504, "Gateway Timeout", "the application did not answer in time\n").then(() => ({
        status: 504,
        bytes,
        end: "error" as const,
      }));
    }
    sink.abort();
    return { status: head.status === null ? 499 : head.code, bytes, end: "aborted" };
  }

  async function errorResponse(code: number, reason: string, text: string): Promise<void> {
    const payload = head.plainText(code, reason, text);
    bytes = 0;
    await send(method === "HEAD" ? null : payload, true);
  }

  async function failed(err: unknown): Promise<RequestOutcome> {
    if (signal.aborted || sinkFailed) {
      if (!sinkFailed) log.error("the application failed after the request was aborted", err);
      return aborted();
    }
    if ((err as TsgiError | null)?.code === "TSGI_ERR_APP_BODY_TOO_LARGE" && !head.sent) {
      try {
        await errorResponse(413, "Content Too Large", "Content Too Large\n");
        return { status: 413, bytes, end: "error" };
      } catch {
        sink.abort();
        return { status: 413, bytes, end: "aborted" };
      }
    }
    log.error(`the application failed on ${method} ${String(environ.REQUEST_URI ?? environ.PATH_INFO)}`, err);
    if (head.sent) {
      sink.abort();
      return { status: head.code, bytes, end: "aborted" };
    }
    const detail = opts.debug ? `\n\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n` : "\n";
    try {
      await errorResponse(500, "Internal Server Error", `Internal Server Error${detail}`);
    } catch {
      sink.abort();
      return { status: 500, bytes, end: "aborted" };
    }
    return { status: 500, bytes, end: "error" };
  }
}

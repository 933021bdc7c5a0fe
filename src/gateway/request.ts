// One request's life once its environ is built (DESIGN §1): calls the application, sends its
// body to the protocol's sink chunk by chunk as the body yields it (never one ahead: a slow
// generator's first chunk goes out at once, and an exception after it is a cut, not a 500),
// turns an exception into a 500 (before the head went out) or a cut connection (after),
// answers 504 when a timeout aborts a request that sent nothing, keeps HEAD/204/304 bodies off
// the wire, finishes the body's iterator (`return()`, so a generator's `finally` runs) and
// calls the body's close() exactly once on every path, then closes what a middleware dropped
// and fires requestFinished (request-finished.ts), once. The protocol servers own the sockets;
// this file owns the order of things.

import { tsgiError, type ErrorCode, type TsgiError } from "../errors.ts";
import type { Body, Chunk, Environ } from "./environ.ts";
import type { RequestAbort } from "./abort.ts";
import { ResponseHead, toBytes, type StartResponse } from "./start-response.ts";
import { closeDropped, fireRequestFinished, registry as finishHooks, startRecord } from "./request-finished.ts";

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
  /** Bytes handed to `send` that never reached the peer (the connection went first). */
  unsent?(): number;
}

export interface RequestLog {
  error(message: string, err?: unknown): void;
  /** Development warnings (a middleware that dropped a close()); error() when absent. */
  warn?(message: string): void;
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
  /**
   * Aborted while the application was still at work (its promise, or its body's next(), had
   * not settled): settles when that work does, which may be never.
   */
  unfinished?: Promise<void>;
}

const ABORTED = Symbol("aborted");
/** How long an aborted request waits for a body's pending next() before close() (then return() runs whenever it settles). */
const STUCK_STEP_MS = 1000;
type Aborted = typeof ABORTED;

/**
 * Errors of the request's input that the client caused: answered with their status when
 * nothing was sent yet, like the checks made before the application runs.
 */
const CLIENT_ERRORS: Partial<Record<ErrorCode, [number, string]>> = {
  TSGI_ERR_APP_BODY_TOO_LARGE: [413, "Content Too Large"],
  TSGI_ERR_APP_BODY_INCOMPLETE: [400, "Bad Request"],
};

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

function isThenable<T>(value: unknown): value is PromiseLike<T> {
  return value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as PromiseLike<T>).then === "function";
}

/** Told a request's outcome, once (startRequest). */
export interface RequestDone {
  requestDone(outcome: RequestOutcome): void;
}

/** Runs a request; the promise settles with its outcome, once the body is closed (it never rejects). */
export function runRequest(app: Application, environ: Environ, sink: ResponseSink, opts: RequestOptions): Promise<RequestOutcome> {
  return new Promise((resolve) => startRequest(app, environ, sink, opts.abort, opts, { requestDone: resolve }));
}

/**
 * Runs a request and tells `done` its outcome: when the body is closed, or at once when an
 * abort (a timeout, the client gone) leaves the application's promise pending. The servers'
 * way: no promise of the outcome's own, where runRequest makes one. `opts.abort` is not
 * read (`abort` is), so one options object may serve every request of a site.
 */
export function startRequest(app: Application, environ: Environ, sink: ResponseSink, abort: RequestAbort, opts: Omit<RequestOptions, "abort">, done: RequestDone): void {
  void new Exchange(environ, sink, abort, opts, done).run(app);
}

/** One request and its response, from the application's call to the body's close(). */
class Exchange {
  readonly head: ResponseHead;
  readonly #environ: Environ;
  readonly #sink: ResponseSink;
  readonly #abort: RequestAbort;
  readonly #log: RequestLog;
  readonly #debug: boolean;
  readonly #method: string;
  readonly #done: RequestDone;
  #bytes = 0;
  /** The sink refused a send: the connection is gone (the protocol aborted the request). */
  #sinkFailed = false;
  /** Set once the run is over: a late legacy write() sends nothing. */
  #over = false;
  #body: Body | undefined = undefined;
  #closed = false;
  /** The body's iterator while it may hold resources: not exhausted, not thrown. */
  #iterator: Iterator<Chunk> | AsyncIterator<Chunk> | null = null;
  /** An abort cut short a wait on the iterator's next(), which may never settle. */
  #stepping = false;
  /** The last send still waiting for the socket; a later send goes after it. */
  #pending: Promise<void> | null = null;
  /** The application's work an abort left pending (see RequestOutcome.unfinished). */
  #unfinished: Promise<void> | null = null;
  /** The bodies a middleware chain's inner applications returned (only while a chain exists). */
  #record: ReturnType<typeof startRecord> = undefined;
  /** The application's promise while the run waits for it (an abort then abandons the wait). */
  #calling: PromiseLike<Body> | null = null;
  /** An abort came while the application's promise was pending: the outcome is told, the run only finishes. */
  #abandoned = false;
  #told = false;

  constructor(environ: Environ, sink: ResponseSink, abort: RequestAbort, opts: Omit<RequestOptions, "abort">, done: RequestDone) {
    this.#environ = environ;
    this.#sink = sink;
    this.#abort = abort;
    this.#log = opts.log;
    this.#debug = opts.debug ?? false;
    this.#method = environ.REQUEST_METHOD;
    this.#done = done;
    this.head = new ResponseHead(this);
  }

  /**
   * The request, from the application's call to the end: close() of the body, the bodies a
   * middleware dropped, requestFinished. The outcome is told after that end, or at once when
   * an abort leaves the application's promise pending (its body, when it comes, is closed
   * then, and the request finishes then, whichever way the promise settles). Never rejects:
   * a failure of the server's own (a sink that threw) is logged and cuts the response.
   */
  async run(app: Application): Promise<void> {
    // A cheap check while no chain exists: no record, no allocation.
    if (finishHooks.chains !== 0) this.#record = startRecord(this.#environ);
    let outcome: RequestOutcome | undefined;
    try {
      try {
        const called = app(this.#environ, this.head.startResponse);
        let result: Body | undefined = called as Body;
        if (isThenable<Body>(called)) {
          // The wait an abort cuts short: then the outcome is told at once (#abandon), and
          // the body the promise brings later is only closed (the finally below).
          this.#calling = called;
          this.#abort.onAbort(() => this.#abandon());
          try {
            result = await called;
          } catch (err) {
            if (!this.#abandoned) throw err;
            result = undefined; // rejected after the abort: no body to close
          } finally {
            this.#calling = null;
          }
        }
        if (this.#abandoned) {
          this.#body = result;
        } else {
          const sent = this.#sendBody(result as Body);
          outcome = isThenable<RequestOutcome>(sent) ? await sent : sent;
        }
      } catch (err) {
        outcome = await this.#failed(err);
      } finally {
        this.#over = true;
        const finishing = this.#finishIteration();
        if (finishing) await finishing;
        const finished = this.#finish();
        if (finished) await finished;
      }
    } catch (err) {
      outcome = this.#serverFailed("the server failed while finishing a request", err);
    }
    if (outcome !== undefined) this.#tell(outcome);
  }

  #tell(outcome: RequestOutcome): void {
    if (this.#told) return;
    this.#told = true;
    try {
      this.#done.requestDone(outcome);
    } catch (err) {
      // The server's own code after the request (its access line, its bookkeeping).
      this.#log.error("the server failed after a request", err);
    }
  }

  /** An abort while the application's promise is pending: the outcome now, the application's work left to settle. */
  #abandon(): void {
    const called = this.#calling;
    if (called === null) return; // the wait is over (the callback stays in the abort's slot)
    this.#abandoned = true;
    this.#over = true; // a late legacy write() sends nothing
    this.#leftPending(called);
    const failed = (err: unknown) => this.#serverFailed("the server failed while answering an aborted request", err);
    let outcome: RequestOutcome | Promise<RequestOutcome>;
    try {
      outcome = this.#aborted();
    } catch (err) {
      outcome = failed(err);
    }
    if (outcome instanceof Promise) outcome.then((o) => this.#tell(o), (err: unknown) => this.#tell(failed(err)));
    else this.#tell(outcome);
  }

  /** A failure of the server's own code (a sink that threw): logged, the response cut. */
  #serverFailed(message: string, err: unknown): RequestOutcome {
    this.#log.error(message, err);
    this.#sink.abort();
    return { status: this.head.status === null ? 499 : this.head.code, bytes: 0, end: "aborted", unfinished: this.#unfinished ?? undefined };
  }

  /** The body's chunks and the end of the response. */
  #sendBody(result: Body): RequestOutcome | Promise<RequestOutcome> {
    this.#body = result;
    checkBody(result);
    const iterated = this.#iterate(result);
    if (typeof iterated !== "boolean") return iterated.then((ended) => this.#ended(ended));
    return this.#ended(iterated);
  }

  /** After the body: the end of the response when its last send did not carry it. */
  #ended(ended: boolean): RequestOutcome | Promise<RequestOutcome> {
    if (this.#sinkFailed || this.#abort.aborted) return this.#aborted();
    if (!ended) {
      if (this.head.status === null) throw tsgiError("TSGI_ERR_APP_NO_START_RESPONSE", {});
      const r = this.#send(null, true);
      if (r) {
        return Promise.resolve(this.#race(r)).then(() =>
          this.#sinkFailed || this.#abort.aborted ? this.#aborted() : this.#complete(),
        );
      }
      if (this.#sinkFailed || this.#abort.aborted) return this.#aborted();
    }
    return this.#complete();
  }

  #complete(): RequestOutcome {
    return { status: this.head.code, bytes: this.#bytes, end: "complete" };
  }

  /**
   * The end of the request, once: the body's close(), then the bodies a middleware dropped
   * (closed here, outermost first), then the requestFinished listeners. A promise only when
   * a close() returned one or a middleware chain recorded bodies.
   */
  #finish(): void | Promise<void> {
    const closing = this.#close();
    if (closing) return closing.then(() => this.#afterClose());
    return this.#afterClose();
  }

  #afterClose(): void | Promise<void> {
    const record = this.#record;
    if (record !== undefined && record.length !== 0) return closeDropped(record, this.#log).then(() => this.#fire());
    this.#fire();
    return undefined;
  }

  #fire(): void {
    if (finishHooks.listeners.length !== 0) fireRequestFinished(this.#environ, this.#log);
  }

  /**
   * The legacy write() of start_response: sent at once, or after the sends still waiting; a
   * promise while the socket drains. It never rejects (#send records a failed send), so an
   * application that drops it leaves nothing unhandled.
   */
  write(chunk: Uint8Array): void | Promise<void> {
    if (this.#over || chunk.length === 0) return undefined;
    if (noBodyAllowed(this.#method, this.head.code)) {
      return this.head.sent ? undefined : this.#send(null, false);
    }
    return this.#send(chunk, false);
  }

  /**
   * Sends the body's chunks; true when the response already ended (its last send went out).
   * An array or a synchronous iterable is sent without a promise while no send has to wait
   * for the socket: a hello response makes none here.
   */
  #iterate(body: Body): boolean | Promise<boolean> {
    if (Array.isArray(body)) return this.#iterateArray(body as Chunk[], 0);
    if (Symbol.asyncIterator in body) return this.#iterateAsync(body as AsyncIterable<Chunk>);
    const it = (body as Iterable<Chunk>)[Symbol.iterator]();
    this.#iterator = it;
    return this.#iterateSync(it);
  }

  /** The chunks of an array from `from`: its last chunk and the end of the response share one send. */
  #iterateArray(body: Chunk[], from: number): boolean | Promise<boolean> {
    // An array is known whole: its last chunk and the end of the response share one write
    // (one FastCGI frame for a typical small response), at no cost of delay.
    const n = body.length;
    for (let i = from; i < n; i++) {
      if (this.#abort.aborted) return false;
      const over = this.#emit(body[i] as Chunk, i === n - 1);
      if (over === true) return true;
      if (over !== false) return over.then((early) => early || this.#iterateArray(body, i + 1));
    }
    return n > 0;
  }

  #iterateSync(it: Iterator<Chunk>): boolean | Promise<boolean> {
    for (;;) {
      if (this.#abort.aborted) return false;
      let step: IteratorResult<Chunk>;
      try {
        step = it.next();
      } catch (err) {
        this.#iterator = null;
        throw err;
      }
      if (step.done) {
        this.#iterator = null;
        return false;
      }
      const over = this.#emit(step.value, false);
      if (over === true) return true;
      if (over !== false) return over.then((early) => early || this.#iterateSync(it));
    }
  }

  async #iterateAsync(body: AsyncIterable<Chunk>): Promise<boolean> {
    const abort = this.#abort;
    const it = body[Symbol.asyncIterator]();
    this.#iterator = it;
    for (;;) {
      if (abort.aborted) return false;
      let step: IteratorResult<Chunk> | Aborted;
      const next = it.next();
      try {
        step = await this.#race(next);
      } catch (err) {
        this.#iterator = null; // a generator that threw is finished
        throw err;
      }
      if (step === ABORTED) {
        this.#leftPending(next);
        this.#stepping = true;
        const settled = () => (this.#stepping = false);
        Promise.resolve(next).then(settled, settled);
        return false;
      }
      if (step.done) {
        this.#iterator = null;
        return false;
      }
      const over = this.#emit(step.value, false);
      if (over === true || (over !== false && (await over))) return true;
    }
  }

  /**
   * Sends a body chunk; true when the response is over early (HEAD/204/304, the peer gone, or
   * aborted). A promise only when the write has to wait for the socket to drain.
   */
  #emit(chunk: Chunk, last: boolean): boolean | Promise<boolean> {
    const bytes = toBytes(chunk);
    if (bytes.length === 0 && !last) return false;
    if (this.head.status === null) throw tsgiError("TSGI_ERR_APP_NO_START_RESPONSE", {});
    // HEAD/1xx/204/304: the head and nothing else; no need to generate the rest.
    const headOnly = noBodyAllowed(this.#method, this.head.code);
    const r = headOnly ? this.#send(null, true) : this.#send(bytes.length > 0 ? bytes : null, last);
    if (!r) return headOnly || this.#sinkFailed;
    return Promise.resolve(this.#race(r)).then((x) => headOnly || x === ABORTED || this.#sinkFailed);
  }

  /**
   * Hands the head (first) and `chunk` to the sink, in order after any send still waiting for
   * the socket. A promise while the socket drains; it never rejects: a refused send marks the
   * exchange (#sinkFailed), and the protocol has aborted the request already.
   */
  #send(chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    if (this.#pending !== null) return this.#wait(this.#pending.then(() => this.#sendNow(chunk, last)));
    return this.#sendNow(chunk, last);
  }

  #sendNow(chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    if (this.#sinkFailed) return undefined;
    if (chunk) this.#bytes += chunk.length;
    const r = this.#sink.send(this.head, chunk, last);
    return r ? this.#wait(r) : undefined;
  }

  #wait(p: Promise<void>): Promise<void> {
    const waiting: Promise<void> = p.then(
      () => {
        if (this.#pending === waiting) this.#pending = null;
      },
      () => {
        this.#sinkFailed = true;
        if (this.#pending === waiting) this.#pending = null;
      },
    );
    this.#pending = waiting;
    return waiting;
  }

  /**
   * A wait that an abort cuts short. Only what is really pending pays for it: a synchronous
   * application and writes that need no draining never make a promise here.
   */
  #race<T>(p: T | PromiseLike<T>): T | Aborted | Promise<T | Aborted> {
    if (!isThenable<T>(p)) return p;
    const signal = this.#abort;
    return new Promise<T | Aborted>((resolve, reject) => {
      p.then(resolve, reject);
      // Left in the slot once the race is settled (clearing it cost two closures a wait): an
      // abort then resolves a settled promise, which does nothing, and the next wait replaces it.
      signal.onAbort(() => resolve(ABORTED));
    });
  }

  /**
   * The body's iterator, left before its end, is told so: return() runs a generator's
   * finally, and is waited for before close(). When an abort left a next() of it pending,
   * return() queues behind that step, which may never settle: it is waited for at most
   * STUCK_STEP_MS.
   */
  #finishIteration(): void | Promise<unknown> {
    const it = this.#iterator;
    this.#iterator = null;
    if (!it || typeof it.return !== "function") return undefined;
    const failed = (err: unknown) => this.#log.error("the response body's iterator threw while finishing", err);
    try {
      const r = it.return();
      if (isThenable(r)) {
        const done = Promise.resolve(r).then(undefined, failed);
        if (!this.#stepping) return done;
        // return() runs once the pending step settles: waited for a moment (a generator
        // sleeping between chunks), never for as long as a stuck one would take.
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, STUCK_STEP_MS)));
        return Promise.race([done, bound]).finally(() => clearTimeout(timer));
      }
    } catch (err) {
      failed(err);
    }
    return undefined;
  }

  /** close() of the body, once; a promise only when there is one to wait for. */
  #close(): Promise<void> | undefined {
    const body = this.#body;
    if (this.#closed || !body || typeof body.close !== "function") return undefined;
    this.#closed = true;
    try {
      const r = body.close();
      return isThenable(r) ? Promise.resolve(r).catch((err: unknown) => this.#log.error("the response body's close() threw", err)) : undefined;
    } catch (err) {
      this.#log.error("the response body's close() threw", err);
      return undefined;
    }
  }

  /** The application's promise or body step that an abort stopped waiting for. */
  #leftPending(p: PromiseLike<unknown>): void {
    const noop = () => undefined;
    this.#unfinished = Promise.resolve(p).then(noop, noop);
  }

  #aborted(): Promise<RequestOutcome> | RequestOutcome {
    const reason = this.#abort.reason as TsgiError | undefined;
    const unfinished = this.#unfinished ?? undefined;
    if (reason?.code === "TSGI_ERR_APP_TIMEOUT" && !this.head.sent && !this.#sinkFailed) {
      return this.#errorResponse(504, "Gateway Timeout", "the application did not answer in time\n").then(() => ({
        status: 504,
        bytes: this.#bytes,
        end: "error" as const,
        unfinished,
      }));
    }
    this.#sink.abort();
    const bytes = Math.max(0, this.#bytes - (this.#sink.unsent?.() ?? 0));
    return { status: this.head.status === null ? 499 : this.head.code, bytes, end: "aborted", unfinished };
  }

  async #errorResponse(code: number, reason: string, text: string): Promise<void> {
    const payload = this.head.plainText(code, reason, text);
    this.#bytes = 0;
    const r = this.#send(this.#method === "HEAD" ? null : payload, true);
    if (r) await r;
  }

  /** An answer of the server's own (500, 413, 400); a cut when even that cannot be sent. */
  async #answer(code: number, reason: string, text: string): Promise<RequestOutcome> {
    await this.#errorResponse(code, reason, text);
    if (this.#sinkFailed) {
      this.#sink.abort();
      return { status: code, bytes: 0, end: "aborted" };
    }
    return { status: code, bytes: this.#bytes, end: "error" };
  }

  async #failed(err: unknown): Promise<RequestOutcome> {
    if (this.#abort.aborted || this.#sinkFailed) {
      if (!this.#sinkFailed) this.#log.error("the application failed after the request was aborted", err);
      return this.#aborted();
    }
    const code = (err as TsgiError | null)?.code;
    const clientError = code === undefined ? undefined : CLIENT_ERRORS[code];
    if (clientError && !this.head.sent) return this.#answer(clientError[0], clientError[1], `${clientError[1]}\n`);
    this.#log.error(`the application failed on ${this.#method} ${String(this.#environ.REQUEST_URI ?? this.#environ.PATH_INFO)}`, err);
    if (this.head.sent) {
      this.#sink.abort();
      return { status: this.head.code, bytes: Math.max(0, this.#bytes - (this.#sink.unsent?.() ?? 0)), end: "aborted" };
    }
    const detail = this.#debug ? `\n\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n` : "\n";
    return this.#answer(500, "Internal Server Error", `Internal Server Error${detail}`);
  }
}

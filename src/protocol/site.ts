// A site as the protocol servers see it: its application and settings, and the one path
// every protocol takes once a request's params are complete — `concurrency` (a request over
// it waits, and the listeners stop accepting), environ, the client errors decided before the
// application (400, 404, 413), the request timeout, the application run, and the access log
// line. FastCGI, uwsgi and HTTP differ only in how they carry bytes.

import { tsgiError, type TsgiError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { fileWrapper } from "../gateway/body.ts";
import { buildEnviron, normalizeMount, type Environ, type EnvironContext, type EnvironResult, type ErrorStream, type Params } from "../gateway/environ.ts";
import { RequestAbort } from "../gateway/abort.ts";
import { TsgiInput } from "../gateway/input.ts";
import { startRequest, type Application, type RequestDone, type RequestOutcome, type ResponseSink } from "../gateway/request.ts";
import { ResponseHead } from "../gateway/start-response.ts";
import { Deadline } from "./connection.ts";

export interface SiteOptions {
  name: string;
  app: Application;
  /** SCRIPT_NAME of the site ("" by default). */
  mount?: string;
  debug?: boolean;
  /** Params/vars block, bytes (`max-params`). */
  maxParams?: number;
  /** FastCGI requests active at once on one connection. */
  maxRequests?: number;
  /** Request body limit in bytes, 0 = none (`max-body`). */
  maxBody?: number;
  /** Milliseconds from the request reaching the application, 0 = none (`request-timeout`). */
  requestTimeout?: number;
  /**
   * Milliseconds a timed-out request's application work may go on before the worker is
   * replaced (`graceful-timeout`; DESIGN §4); null (the default) = never.
   */
  stuckTimeout?: number | null;
  /** Milliseconds a connection may take to deliver a complete request head (`header-timeout`). */
  headerTimeout?: number;
  /** Connections open at once per listener, 0 = no limit (`max-connections`). */
  maxConnections?: number;
  /** Requests in the application at once (`concurrency`); more wait, and accepting pauses. */
  concurrency?: number;
  multiprocess?: boolean;
  log: Logger;
  /** The TCP peers that may connect (`allow`); null or absent: every peer. */
  allow?: PeerAllow | null;
  /** Answers tsgi gives itself instead of the application (the status page), or null to let the request through. */
  builtin?: BuiltinPages | null;
}

/** The `allow` list as the listeners use it (src/daemon/allow.ts builds it). */
export interface PeerAllow {
  /** Every peer is allowed: nothing to check. */
  readonly everyone: boolean;
  has(address: string | undefined): boolean;
  /** For the native listeners: the networks packed (native/binding/allow_list.h), null for every peer. */
  packed(): Uint8Array | null;
}

/** A response tsgi makes itself, whole. */
export interface BuiltinAnswer {
  code: number;
  reason: string;
  contentType: string;
  body: string;
}

export interface BuiltinPages {
  /** The answer to this request (its environ is built and checked), or null: the application answers. */
  answer(environ: Environ): BuiltinAnswer | null;
}

export interface RequestMeta {
  /** Who sent the request on the wire, for log lines: "127.0.0.1:51234" or "unix socket". */
  readonly peer: string;
  readonly protocol: "fastcgi" | "uwsgi" | "http";
}

interface HeldRequest {
  params: Params | string[];
  input: TsgiInput;
  sink: ResponseSink;
  controller: RequestAbort;
  meta: RequestMeta;
}

export class Site {
  readonly name: string;
  readonly app: Application;
  readonly mount: string;
  readonly debug: boolean;
  readonly maxParams: number;
  readonly maxRequests: number;
  readonly maxBody: number;
  readonly requestTimeout: number;
  readonly stuckTimeout: number | null;
  readonly headerTimeout: number;
  readonly maxConnections: number;
  readonly concurrency: number;
  readonly multiprocess: boolean;
  readonly log: Logger;
  readonly errors: ErrorStream;
  readonly allow: PeerAllow | null;
  readonly builtin: BuiltinPages | null;
  /** Requests in the application: from params complete to response end (status, graceful stop). */
  inFlight = 0;
  served = 0;
  /** Called with true when `concurrency` is reached (stop accepting), false when there is room again. */
  onSaturated: ((saturated: boolean) => void) | null = null;
  /** Called after each request (the worker counts towards max-requests and inactivity). */
  afterRequest: (() => void) | null = null;
  /** Called when a timed-out request's application has not finished `stuckTimeout` later (the worker asks to be replaced). */
  onStuck: ((reason: string) => void) | null = null;
  /** Requests waiting for room under `concurrency`, oldest first. */
  readonly #held: HeldRequest[] = [];
  /** What every request's run is given besides its abort (one object for all). */
  readonly #runOptions: { log: Logger; debug: boolean };
  readonly #environContext: EnvironContext;
  #saturated = false;

  constructor(o: SiteOptions) {
    this.name = o.name;
    this.app = o.app;
    this.mount = normalizeMount(o.mount ?? "");
    this.debug = o.debug ?? false;
    this.maxParams = o.maxParams ?? 64 * 1024;
    this.maxRequests = o.maxRequests ?? 100;
    this.maxBody = o.maxBody ?? 0;
    this.requestTimeout = o.requestTimeout ?? 60_000;
    this.stuckTimeout = o.stuckTimeout ?? null;
    this.headerTimeout = o.headerTimeout ?? 10_000;
    this.maxConnections = o.maxConnections ?? 0;
    this.concurrency = o.concurrency ?? 100;
    this.multiprocess = o.multiprocess ?? false;
    this.log = o.log;
    this.allow = o.allow && !o.allow.everyone ? o.allow : null;
    this.builtin = o.builtin ?? null;
    this.#runOptions = { log: this.log, debug: this.debug };
    let pending = "";
    const log = this.log;
    this.errors = {
      write(text: string) {
        pending += text;
        const nl = pending.lastIndexOf("\n");
        if (nl < 0) return;
        for (const line of pending.slice(0, nl).split("\n")) log.error(line);
        pending = pending.slice(nl + 1);
      },
      flush() {
        if (pending) log.error(pending);
        pending = "";
      },
    };
    this.#environContext = { mount: this.mount, input: TsgiInput.EMPTY, errors: this.errors, multiprocess: this.multiprocess, abort: NO_ABORT, fileWrapper };
  }

  /**
   * Serves one request whose params are complete. `controller` aborts it (client gone,
   * FCGI_ABORT_REQUEST); the body keeps flowing into `input` from the protocol. A failure of
   * the server itself (not the application's, which the run answers) is logged and cuts
   * the response.
   */
  serve(params: Params | string[], input: TsgiInput, sink: ResponseSink, controller: RequestAbort, meta: RequestMeta): void {
    if (this.inFlight >= this.concurrency) {
      this.#held.push({ params, input, sink, controller, meta });
      this.#saturate(true);
      return;
    }
    this.#start(params, input, sink, controller, meta);
  }

  /** Requests waiting for room under `concurrency`. */
  get held(): number {
    return this.#held.length;
  }

  #start(params: Params | string[], input: TsgiInput, sink: ResponseSink, controller: RequestAbort, meta: RequestMeta): void {
    this.#serve(params, input, sink, controller, meta);
    // Full now (#serve counted the request): stop accepting before the next connection
    // comes, so that the group's other workers take it.
    if (this.inFlight >= this.concurrency) this.#saturate(true);
  }

  #finished(): void {
    // The oldest waiting request takes the room; one whose client left while it waited is
    // dropped (its connection is gone: nothing to answer).
    while (this.#held.length > 0 && this.inFlight < this.concurrency) {
      const next = this.#held.shift()!;
      if (next.controller.aborted) {
        next.input.discard();
        continue;
      }
      this.#start(next.params, next.input, next.sink, next.controller, next.meta);
    }
    if (this.#held.length === 0 && this.inFlight < this.concurrency) this.#saturate(false);
    this.afterRequest?.();
  }

  #saturate(saturated: boolean): void {
    if (this.#saturated === saturated) return;
    this.#saturated = saturated;
    this.onSaturated?.(saturated);
  }

  #serve(params: Params | string[], input: TsgiInput, sink: ResponseSink, controller: RequestAbort, meta: RequestMeta): void {
    const served = new ServedRequest(this, params, input, sink, controller, meta);
    this.inFlight++;
    try {
      // One context for every request of the site, its input and abort set for this one:
      // buildEnviron reads it now and keeps nothing of it.
      const ctx = this.#environContext;
      ctx.input = input;
      ctx.abort = controller;
      let built: EnvironResult;
      try {
        built = buildEnviron(params, ctx);
      } finally {
        ctx.input = TsgiInput.EMPTY;
        ctx.abort = NO_ABORT;
      }
      let page: BuiltinAnswer | null;
      const environ = "environ" in built ? built.environ : null;
      served.environ = environ;
      served.method = environ?.REQUEST_METHOD ?? valueOf(params, "REQUEST_METHOD") ?? "GET";
      if (!environ) {
        const { error, httpStatus } = built as { error: TsgiError; httpStatus: number };
        this.log.info(`${meta.peer}: ${error.code}: ${error.message}`);
        served.when(this.#refuse(sink, httpStatus, served.method));
      } else if (this.builtin !== null && (page = this.builtin.answer(environ)) !== null) {
        served.when(this.#answer(sink, page, served.method));
      } else if (this.maxBody > 0 && declaredLength(environ.CONTENT_LENGTH) > this.maxBody) {
        this.log.info(`${meta.peer}: request body of ${String(environ.CONTENT_LENGTH)} bytes is over max-body (${this.maxBody})`);
        served.when(this.#refuse(sink, 413, served.method));
      } else {
        served.arm(served.started);
        startRequest(this.app, environ, sink, controller, this.#runOptions, served);
      }
    } catch (err) {
      served.failed(err);
    }
  }

  /**
   * The end of a request #serve started (ServedRequest calls it once): the access log line,
   * the stuck-request watch of a timed-out one, room for the next.
   */
  ended(served: ServedRequest, outcome: RequestOutcome): void {
    try {
      served.disarm();
      if (outcome.unfinished && (served.controller.reason as TsgiError | undefined)?.code === "TSGI_ERR_APP_TIMEOUT") {
        this.#watchStuck(outcome.unfinished, served.meta);
      }
      served.input.discard();
      const environ = served.environ;
      const params = served.params;
      this.log.access({
        remoteAddr: environ ? String(environ.REMOTE_ADDR ?? "") : (valueOf(params, "REMOTE_ADDR") ?? ""),
        method: served.method,
        uri: String(environ?.REQUEST_URI ?? valueOf(params, "REQUEST_URI") ?? "-"),
        protocol: String(environ?.SERVER_PROTOCOL ?? valueOf(params, "SERVER_PROTOCOL") ?? "-"),
        status: outcome.status,
        bytes: outcome.bytes,
        durationMs: performance.now() - served.started,
        user: environ?.REMOTE_USER as string | undefined,
      });
    } catch (err) {
      this.log.error(`${served.meta.peer}: request failed in the server`, err);
    } finally {
      this.inFlight--;
      this.served++;
      this.#finished();
    }
  }

  /** A builtin page, whole (HEAD: its head only). */
  #answer(sink: ResponseSink, page: BuiltinAnswer, method: string): Promise<RequestOutcome> {
    const head = new ResponseHead();
    const body = Buffer.from(page.body, "utf8");
    head.status = `${page.code} ${page.reason}`;
    head.code = page.code;
    head.fields = ["Content-Type", page.contentType, "Content-Length", String(body.length), "Cache-Control", "no-store"];
    return this.#sendWhole(sink, head, body, method, "complete");
  }

  /** A response tsgi makes itself goes out in one send (HEAD: its head only). */
  async #sendWhole(sink: ResponseSink, head: ResponseHead, body: Buffer, method: string, end: RequestOutcome["end"]): Promise<RequestOutcome> {
    const code = head.code;
    try {
      await sink.send(head, method === "HEAD" ? null : body, true);
      return { status: code, bytes: method === "HEAD" ? 0 : body.length, end };
    } catch {
      return { status: code, bytes: 0, end: "aborted" };
    }
  }

  /**
   * A request answered (504) or cut by request-timeout while its application goes on: if it
   * has not finished `stuckTimeout` later, it may never, and holds what it holds for good.
   */
  #watchStuck(unfinished: Promise<void>, meta: RequestMeta): void {
    const ms = this.stuckTimeout;
    if (ms === null) return;
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      this.log.warn(`${meta.peer}: a request that ran over request-timeout has not finished ${ms / 1000}s later (graceful-timeout): replacing the worker`);
      this.onStuck?.("request-timeout: a request did not finish within graceful-timeout");
    }, ms);
    timer.unref();
    void unfinished.then(() => {
      done = true;
      clearTimeout(timer);
    });
  }

  /** A client error decided before the application: a short plain-text answer. */
  #refuse(sink: ResponseSink, code: number, method: string): Promise<RequestOutcome> {
    const reasons: Record<number, string> = { 400: "Bad Request", 404: "Not Found", 413: "Content Too Large" };
    const head = new ResponseHead();
    return this.#sendWhole(sink, head, head.plainText(code, reasons[code]!, `${reasons[code]}\n`), method, "error");
  }
}

/** The abort buildEnviron's context holds between requests (never aborted, never read). */
const NO_ABORT = new RequestAbort();

/**
 * A request Site.serve started, until its end: its request-timeout (the deadline it is) and
 * what its access line needs. One object a request, where a closure for the timeout and the
 * async function's promise and its catch were three more.
 */
class ServedRequest extends Deadline implements RequestDone {
  readonly started = performance.now();
  environ: Environ | null = null;
  method = "GET";
  #ended = false;

  constructor(
    readonly site: Site,
    readonly params: Params | string[],
    readonly input: TsgiInput,
    readonly sink: ResponseSink,
    readonly controller: RequestAbort,
    readonly meta: RequestMeta,
  ) {
    super(site.requestTimeout);
  }

  protected override expire(): void {
    this.controller.abort(tsgiError("TSGI_ERR_APP_TIMEOUT", { timeout: `${this.ms / 1000}s` }));
  }

  requestDone(outcome: RequestOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.site.ended(this, outcome);
  }

  /** The outcome of an answer the server gives itself. */
  when(answer: Promise<RequestOutcome>): void {
    answer.then(
      (outcome) => this.requestDone(outcome),
      (err: unknown) => this.failed(err),
    );
  }

  /** A failure of the server itself (not the application's, which the run answers): logged, the response cut. */
  failed(err: unknown): void {
    this.site.log.error(`${this.meta.peer}: request failed in the server`, err);
    this.sink.abort();
    this.requestDone({ status: 500, bytes: 0, end: "aborted" });
  }
}

/** CONTENT_LENGTH as the protocols read it (connection.ts: digits only); 0 when absent or not a length. */
function declaredLength(value: unknown): number {
  return typeof value === "string" && /^[0-9]{1,16}$/.test(value) ? Number(value) : 0;
}

/** A param of a request whose environ could not be built (for its log line and answer). */
function valueOf(params: Params | string[], name: string): string | undefined {
  if (!Array.isArray(params)) return params[name];
  for (let i = 0; i + 1 < params.length; i += 2) if (params[i] === name) return params[i + 1];
  return undefined;
}

// Combining tsgi with other frameworks (DESIGN §3): `fromNodeHandler` runs a node:http-style
// `(req, res)` handler (Express, Connect, Fastify's, a plain one) as a TSGI application,
// streaming what it writes as the response body; `toNodeHandler` runs a TSGI application
// inside a node:http server or an Express app; `mount` dispatches on a path prefix, moving it
// from PATH_INFO to SCRIPT_NAME. Past 400 lines because the node:http request and response
// built from an environ are one concern that only reads well whole.
//
// Why real http.IncomingMessage and http.ServerResponse objects, not look-alikes: Express
// replaces the prototype of both (`Object.setPrototypeOf(res, app.response)`, whose chain ends
// at ServerResponse.prototype), so a look-alike class would lose its own methods the moment
// Express took it; and only node's own classes give the handler every behaviour it may rely
// on (setHeader/writeHead merging, Content-Length on end(data), HEAD without a body, pipe,
// 'finish'/'close'). What is ours are instance properties, which survive the prototype swap:
// the request's `_read` (the documented way to feed a Readable), pulling `tsgi.input`, and the
// response's `_storeHeader`, the step where node's writeHead (explicit or implicit) would
// serialise the head for a socket: it takes the status and header fields as they are instead
// (node has merged setHeader and writeHead's fields by then), and turns off node's chunked
// framing (the FastCGI/uwsgi front server frames the response itself). The response writes
// into an in-memory socket (EnvironSocket), whose writes become the TSGI body as they come:
// the libraries that turn a handler into a function (light-my-request, serverless-http)
// collect the whole response first, which is what this must not do.

import http from "node:http";
import { Duplex } from "node:stream";
import { httpParams, nodeExchange } from "../protocol/http.ts";
import { fileWrapper } from "./body.ts";
import { buildEnviron, normalizeMount, type Body, type Chunk, type Environ, type ErrorStream } from "./environ.ts";
import { TsgiInput } from "./input.ts";
import { runRequest, type Application, type RequestLog } from "./request.ts";
import { HOP_BY_HOP, type Headers, type StartResponse } from "./start-response.ts";

/** A node:http request listener, as node:http's createServer takes it (Express and Connect apps are ones). */
export type NodeHandler = (req: http.IncomingMessage, res: http.ServerResponse) => unknown;

/**
 * Response bytes held for the gateway before the handler's writes wait: past it, a write's
 * callback (and so 'drain') comes only once the gateway took the chunks, so a handler that
 * honours backpressure never runs far ahead of the client. (`res.write()` itself returns
 * false past the socket's own 16 KiB mark, as on a real connection.)
 */
const HIGH_WATER = 64 * 1024;

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// fromNodeHandler

/** A TSGI application that runs `handler` with a node:http request and response made from the environ. */
export function fromNodeHandler(handler: NodeHandler): Application {
  if (typeof handler !== "function") throw new TypeError("fromNodeHandler(handler): handler must be a (req, res) function");
  return (environ, startResponse) => new NodeCall(environ).run(handler, startResponse);
}

/**
 * The socket the request and response are attached to: the client's address from the environ
 * (Express's `req.ip`, Fastify's `request.ip`), `encrypted` under https (both frameworks'
 * `protocol`), and a writable side that hands the response's bytes to its NodeCall.
 */
class EnvironSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly remoteFamily: string | undefined;
  /** As a TLS socket has it: node and the frameworks test `socket.encrypted` for https. */
  readonly encrypted: true | undefined;
  readonly #call: NodeCall;

  constructor(environ: Environ, call: NodeCall) {
    // Strings stay strings: the head is found in the first write by its length in characters.
    super({ decodeStrings: false, allowHalfOpen: true });
    this.#call = call;
    this.remoteAddress = stringOr(environ.REMOTE_ADDR);
    this.remotePort = numberOr(environ.REMOTE_PORT);
    this.localAddress = stringOr(environ.SERVER_ADDR);
    this.localPort = numberOr(environ.SERVER_PORT);
    this.remoteFamily = this.remoteAddress === undefined ? undefined : this.remoteAddress.includes(":") ? "IPv6" : "IPv4";
    if (environ["tsgi.url_scheme"] === "https") this.encrypted = true;
    this.on("drain", forwardDrain);
  }

  override _read(): void {}

  override _write(chunk: string | Buffer, encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#call.written([{ chunk, encoding }], done);
  }

  override _writev(chunks: { chunk: string | Buffer; encoding: BufferEncoding }[], done: (err?: Error | null) => void): void {
    this.#call.written(chunks, done);
  }

  // A destroyed socket ends the exchange: the handler's res.destroy(), or a request body that
  // failed (IncomingMessage destroys its socket with the error, as on a real connection). The
  // error goes to the gateway, not out as an 'error' event: nobody listens to this socket, and
  // an unheard 'error' would take the worker down.
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#call.socketDestroyed(err);
    cb(null);
  }

  // net.Socket's knobs, which handlers and frameworks call: nothing to tune in memory.
  setTimeout(_ms?: number, cb?: () => void): this {
    if (cb) this.once("timeout", cb);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  resetAndDestroy(): this {
    return this.destroy();
  }
  address(): { address: string; port: number; family: string } | Record<string, never> {
    return this.localAddress === undefined ? {} : { address: this.localAddress, port: this.localPort ?? 0, family: this.remoteFamily ?? "IPv4" };
  }
}

function stringOr(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function numberOr(v: unknown): number | undefined {
  return typeof v === "string" && /^\d+$/.test(v) ? Number(v) : undefined;
}

const enum Phase {
  /** The handler has not committed a head yet. */
  Waiting,
  /** The head is known; the body flows through the queue. */
  Streaming,
  /** The response ended ('finish'): what is queued is the rest of the body. */
  Finished,
  /** The handler failed, the client went away or the gateway closed the body. */
  Over,
}

interface Held {
  chunk: Buffer;
  /** The socket's write callback, called once the gateway took the chunk (null: already called). */
  done: ((err?: Error | null) => void) | null;
}

/** One request through a node handler: its req and res, and the response's way back as a TSGI body. */
class NodeCall implements AsyncIterator<Chunk> {
  readonly #environ: Environ;
  readonly #socket: EnvironSocket;
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  #phase = Phase.Waiting;
  #status = "";
  #headers: Headers = [];
  /** Characters of the serialised head still to skip at the start of the socket's output (-1: no head yet). */
  #skip = -1;
  #queue: Held[] = [];
  #queued = 0;
  /** The chunk the gateway is sending: its write callback waits for the next next(). */
  #taken: Held | null = null;
  #error: unknown = null;
  /** The application's wait for the head, or the body's wait for a chunk. */
  #wake: (() => void) | null = null;
  #readyScheduled = false;
  #input: AsyncIterator<Uint8Array> | null = null;
  #pulling = false;
  #onAbort: (() => void) | null = null;
  /** The body went back whole from run(): the exchange is released at 'finish'. */
  #handedWhole = false;
  #released = false;

  constructor(environ: Environ) {
    this.#environ = environ;
    const socket = new EnvironSocket(environ, this);
    this.#socket = socket;
    this.req = this.#request(socket);
    this.res = this.#response(this.req, socket);
  }

  // ---- the request ----

  #request(socket: EnvironSocket): http.IncomingMessage {
    const env = this.#environ;
    const req = new http.IncomingMessage(socket as never);
    req.method = env.REQUEST_METHOD;
    // The decoded path the front server decided on (DESIGN §1), encoded again as a request
    // target: a decoded "%", "?" or "#" must not read as an escape, a query or a fragment.
    const path = encodeURI(env.SCRIPT_NAME + env.PATH_INFO).replace(/[?#]/g, encodeURIComponent);
    req.url = env.QUERY_STRING === "" ? path : `${path}?${env.QUERY_STRING}`;
    if (env.SERVER_PROTOCOL === "HTTP/1.1") {
      req.httpVersionMajor = 1;
      req.httpVersionMinor = 1;
      req.httpVersion = "1.1";
    } else {
      const version = /^HTTP\/(\d)\.(\d)$/.exec(String(env.SERVER_PROTOCOL ?? ""));
      req.httpVersionMajor = version ? Number(version[1]) : 1;
      req.httpVersionMinor = version ? Number(version[2]) : 1;
      req.httpVersion = `${req.httpVersionMajor}.${req.httpVersionMinor}`;
    }
    const headers: http.IncomingHttpHeaders = {};
    const raw: string[] = [];
    for (const key in env) {
      let name: string;
      if (key.startsWith("HTTP_")) {
        // The CGI names win over a client's HTTP_CONTENT_* (nginx and Apache never send those).
        if (key === "HTTP_CONTENT_TYPE" || key === "HTTP_CONTENT_LENGTH") continue;
        name = key.slice(5);
      } else if (key === "CONTENT_TYPE" || key === "CONTENT_LENGTH") {
        name = key;
      } else continue;
      const value = String(env[key]);
      const spelled = headerNames(name);
      // Repeated request headers were joined already (environ.ts): one line each.
      headers[spelled.lower] = value;
      raw.push(spelled.raw, value);
    }
    req.headers = headers;
    req.rawHeaders = raw;
    const input = env["tsgi.input"];
    // No body: none sent (CONTENT_LENGTH 0, or none and no chunked request body, as for every
    // GET). The request is complete at once, so that its release destroys nothing: a destroyed
    // request takes its socket down, and each stream on the way builds an error with a stack.
    const length = env.CONTENT_LENGTH;
    const noBody = input === TsgiInput.EMPTY || length === "0" || ((length === undefined || length === "") && env.HTTP_TRANSFER_ENCODING === undefined);
    if (noBody) {
      req.complete = true;
      req.push(null);
    } else {
      this.#input = input[Symbol.asyncIterator]();
      req._read = () => void this.#pull();
    }
    return req;
  }

  /** Moves `tsgi.input` into the request as it is read: one chunk a `_read`, more while push() wants them. */
  async #pull(): Promise<void> {
    if (this.#pulling || !this.#input) return;
    this.#pulling = true;
    const req = this.req;
    try {
      for (;;) {
        const step = await this.#input.next();
        if (req.destroyed) return;
        if (step.done) {
          req.complete = true;
          req.push(null);
          return;
        }
        const c = step.value;
        const buf = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        if (!req.push(buf)) return;
      }
    } catch (err) {
      // A body too large or cut short: the handler's body parser answers as it would on node:http.
      req.destroy(err as Error);
    } finally {
      this.#pulling = false;
    }
  }

  // ---- the response ----

  #response(req: http.IncomingMessage, socket: EnvironSocket): http.ServerResponse {
    const res = new http.ServerResponse(req);
    // The front server sends its own Date (and owns the connection headers).
    res.sendDate = false;
    res.assignSocket(socket as never);
    res.once("finish", () => this.#finished());
    // An instance property, so that it survives Express's prototype swap and wrappers such as
    // on-headers wrap it in turn. Every head goes through here: _implicitHeader() calls it.
    (res as CallResponse)[CALL] = this;
    (res as unknown as StoreHeader)._storeHeader = storeHeaderTaken;
    return res;
  }

  /**
   * The socket was destroyed (see EnvironSocket._destroy): a coded client error (a body too
   * large or cut short) is answered 413/400 by the gateway, any other failure is a 500 before
   * the head and a cut after it; after our own release it changes nothing.
   */
  socketDestroyed(err: Error | null): void {
    this.#fail(err ?? new Error("the response's socket was destroyed before the response ended"));
  }

  /**
   * node's writeHead reached the head (statusCode and statusMessage set and checked, the
   * fields merged): `fields` is the response's own table (setHeader's, names lower-cased to
   * [name, value]) or writeHead's argument alone (an object, [name, value] pairs or a flat
   * list). What node would add for a socket of its own is left out but Content-Length for a
   * response ended with its body in one call, as node sends it; the front server owns the
   * connection's fields.
   */
  headTaken(fields: unknown, own: boolean): void {
    const res = this.res;
    if (this.#skip !== -1) return;
    const headers: Headers = [];
    let length = false;
    if (own) {
      const table = fields as Record<string, [string, unknown]> | null;
      for (const key in table) {
        const [name, value] = table[key]!;
        if (HOP_BY_HOP.has(key)) continue;
        if (key === "content-length") length = true;
        pushField(headers, name, value);
      }
    } else if (fields) {
      const add = (name: unknown, value: unknown) => {
        const n = String(name);
        http.validateHeaderName(n);
        const lower = n.toLowerCase();
        if (HOP_BY_HOP.has(lower)) return;
        if (lower === "content-length") length = true;
        for (const v of Array.isArray(value) ? value : [value]) http.validateHeaderValue(n, v);
        pushField(headers, n, value);
      };
      if (Array.isArray(fields)) {
        if (fields.length > 0 && Array.isArray(fields[0])) for (const pair of fields as [unknown, unknown][]) add(pair[0], pair[1]);
        else for (let i = 0; i + 1 < fields.length; i += 2) add(fields[i], fields[i + 1]);
      } else {
        for (const name of Object.keys(fields)) add(name, (fields as Record<string, unknown>)[name]);
      }
    }
    const out = res as unknown as { _contentLength: unknown; _hasBody: boolean; _removedContLen: boolean };
    if (!length && out._hasBody && !out._removedContLen && typeof out._contentLength === "number") headers.push(["Content-Length", String(out._contentLength)]);
    const code = res.statusCode;
    this.#status = `${code} ${res.statusMessage || http.STATUS_CODES[code] || "Unknown"}`;
    this.#headers = headers;
    // node writes `_header` before the first body bytes (or alone): the placeholder is skipped.
    this.#skip = HEAD_PLACEHOLDER.length;
  }

  /** The socket's writes: the head's characters skipped, the rest queued as body chunks. */
  written(chunks: { chunk: string | Buffer; encoding: BufferEncoding }[], done: (err?: Error | null) => void): void {
    if (this.#phase === Phase.Over) return done();
    let bytes = 0;
    for (const item of chunks) {
      let chunk = item.chunk;
      const encoding = item.encoding;
      // Bytes before any head are 1xx interim responses (writeContinue, writeEarlyHints):
      // the front server speaks for the connection, so they are dropped.
      if (this.#skip === -1) continue;
      if (this.#skip > 0) {
        if (typeof chunk !== "string") continue;
        const n = Math.min(this.#skip, chunk.length);
        this.#skip -= n;
        chunk = chunk.slice(n);
      }
      const buf = typeof chunk === "string" ? (chunk === "" ? EMPTY : Buffer.from(chunk, encoding === ("buffer" as BufferEncoding) ? "utf8" : encoding)) : chunk;
      if (buf.length === 0) continue;
      this.#queue.push({ chunk: buf, done: null });
      bytes += buf.length;
    }
    this.#queued += bytes;
    if (bytes > 0 && this.#queued > HIGH_WATER) this.#queue[this.#queue.length - 1]!.done = done;
    else done();
    if (this.#phase === Phase.Waiting && this.#skip !== -1) this.#scheduleReady();
    else this.#notify();
  }

  /**
   * The head is there: the application's wait ends a tick later, after node's write callbacks
   * and 'finish' ran, so that a response the handler already ended goes back whole, as an
   * array (the gateway then sends its last chunk and the end together).
   */
  #scheduleReady(): void {
    if (this.#readyScheduled) return;
    this.#readyScheduled = true;
    process.nextTick(() => {
      if (this.#phase === Phase.Waiting) this.#phase = Phase.Streaming;
      this.#notify();
    });
  }

  #finished(): void {
    if (this.#handedWhole) return this.#release();

    if (this.#phase === Phase.Over) return;
    this.#phase = Phase.Finished;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => (this.#wake = resolve));
  }

  // ---- the application ----

  run(handler: NodeHandler, startResponse: StartResponse): Body | Promise<Body> {
    let r: unknown;
    try {
      r = handler(this.req, this.res);
    } catch (err) {
      this.#release();
      throw err;
    }
    if (r !== null && typeof r === "object" && typeof (r as PromiseLike<unknown>).then === "function") {
      (r as PromiseLike<unknown>).then(undefined, (err: unknown) => this.#fail(err));
    }
    // The common case of a framework answering at once (Express's res.json, Fastify's reply
    // of an object): end() ran, and it handed the socket every byte synchronously (it uncorks
    // it fully). The body goes back whole, with no promise, tick or AbortSignal to pay for;
    // req and res are released at their 'finish', which node emits a tick later.
    if (this.#phase === Phase.Waiting && this.#skip !== -1 && this.res.writableEnded && this.#socket.writableLength === 0) {
      this.#handedWhole = true;
      startResponse(this.#status, this.#headers);
      return this.#takeAll();
    }
    return this.#awaitHead(startResponse);
  }

  #takeAll(): Buffer[] {
    const chunks = this.#queue.map((h) => h.chunk);
    this.#queue = [];
    this.#queued = 0;
    return chunks;
  }

  async #awaitHead(startResponse: StartResponse): Promise<Body> {
    // Only a handler still at work needs to hear of the client going away here: once the body
    // is the gateway's, its close() ends the exchange on every path.
    const signal = this.#environ["tsgi.signal"];
    const onAbort = () => this.#fail(signal.reason ?? new Error("the client went away"));
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener("abort", onAbort, { once: true });
      this.#onAbort = () => signal.removeEventListener("abort", onAbort);
    }
    try {
      while (this.#phase === Phase.Waiting) await this.#wait();
      if (this.#phase === Phase.Over && this.#status === "") throw this.#error;
      startResponse(this.#status, this.#headers);
    } catch (err) {
      this.#release();
      throw err;
    }
    if (this.#phase === Phase.Finished) {
      const chunks = this.#takeAll();
      this.#release();
      return chunks;
    }
    return this;
  }

  /** The handler failed or the client went away: req and res are destroyed ('close'), waits end. */
  #fail(err: unknown): void {
    // After 'finish' the response is whole: the gateway sends it, or sees the abort itself.
    if (this.#phase === Phase.Over || this.#phase === Phase.Finished) return;
    this.#error = err;
    this.#phase = Phase.Over;
    this.#release();
    this.#notify();
  }

  /**
   * Ends the exchange, once. After a whole response ('finish' seen) as node's server does
   * after one (`resOnFinish` in lib/_http_server.js): the socket is detached, not destroyed —
   * destroying it inside its own write callback would make node build an ERR_STREAM_DESTROYED,
   * stack trace and all, on every request — and res emits 'close' a tick later (node's
   * `emitCloseNT`, which sets `destroyed` and `_closed` the same way). Otherwise (a failure,
   * the client gone, the gateway closing early) the socket and the request are destroyed:
   * both emit 'close', the request 'aborted' too when its body was not all read.
   */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#onAbort?.();
    this.#onAbort = null;
    const req = this.req;
    const res = this.res;
    if (this.#phase === Phase.Finished || this.#handedWhole) {
      res.detachSocket(this.#socket as never);
      process.nextTick(emitClose, res);
      // A body read whole (or none) ends as usual, when someone listens for its end; one left
      // unread is the gateway's to discard.
      if (!req.readableEnded) {
        if (!req.complete) req.destroy();
        else if (req.listenerCount("end") + req.listenerCount("close") > 0) req.resume();
      }
      return;
    }
    this.#phase = Phase.Over;
    for (const h of this.#queue) h.done?.();
    this.#taken?.done?.();
    this.#taken = null;
    if (!this.#socket.destroyed) this.#socket.destroy();
    if (!req.destroyed) req.destroy();
  }

  // ---- the TSGI body ----

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    return this;
  }

  async next(): Promise<IteratorResult<Chunk>> {
    // The chunk handed out last has been sent: its write may go on.
    const taken = this.#taken;
    this.#taken = null;
    taken?.done?.();
    for (;;) {
      const held = this.#queue.shift();
      if (held) {
        this.#queued -= held.chunk.length;
        this.#taken = held;
        return { done: false, value: held.chunk };
      }
      if (this.#phase === Phase.Finished) return { done: true, value: undefined };
      if (this.#phase === Phase.Over) {
        if (this.#error !== null) throw this.#error;
        return { done: true, value: undefined };
      }
      await this.#wait();
    }
  }

  async return(): Promise<IteratorResult<Chunk>> {
    this.close();
    return { done: true, value: undefined };
  }

  /** The gateway is done with the body (its end, a failure, the client gone): the gateway calls it once. */
  close(): void {
    this.#release();
  }
}

/** node:http's server forwards a socket's 'drain' to the response it carries (`ondrain`); one listener for every socket. */
function forwardDrain(this: EnvironSocket): void {
  const res = (this as unknown as { _httpMessage: http.ServerResponse | null })._httpMessage;
  if (res?.writableNeedDrain) res.emit("drain");
}

const CALL = Symbol("tsgi.NodeCall");
type CallResponse = http.ServerResponse & { [CALL]: NodeCall };
type StoreHeader = { _storeHeader(firstLine: string, fields: unknown): void };

/** What node's `_header` holds once our head is taken: non-empty, as node tests `_header` for "the head was made". */
const HEAD_PLACEHOLDER = "\r\n";

/** node's OutgoingMessage field for setHeader's table (a symbol of node's own, found on a response). */
const OUT_HEADERS = Object.getOwnPropertySymbols(new http.ServerResponse(new http.IncomingMessage(null as never))).find((sym) => sym.description === "kOutHeaders");

/** A response's `_storeHeader`, in place of node's (see headTaken). One function for every response. */
function storeHeaderTaken(this: http.ServerResponse, _firstLine: string, fields: unknown): void {
  const own = OUT_HEADERS !== undefined && fields === (this as unknown as Record<symbol, unknown>)[OUT_HEADERS];
  (this as CallResponse)[CALL].headTaken(fields, own);
  const out = this as unknown as { _header: string | null; _headerSent: boolean; chunkedEncoding: boolean };
  out.chunkedEncoding = false;
  out._header = HEAD_PLACEHOLDER;
  out._headerSent = false;
}

/** A field's value(s) as header lines: one per array element, as node writes them. */
function pushField(headers: Headers, name: string, value: unknown): void {
  if (Array.isArray(value)) for (const v of value) headers.push([name, String(v)]);
  else headers.push([name, String(value)]);
}

/** node's emitCloseNT (lib/_http_server.js), for a response whose socket was detached. */
function emitClose(res: http.ServerResponse): void {
  const r = res as http.ServerResponse & { _closed?: boolean };
  if (r._closed) return;
  r.destroyed = true;
  r._closed = true;
  res.emit("close");
}

/** Spellings of the header names seen so far; bounded, since clients choose the names. */
const HEADER_NAMES = new Map<string, HeaderNames>();
const HEADER_NAMES_MAX = 512;

interface HeaderNames {
  /** req.headers' key: x-forwarded-for. */
  lower: string;
  /** rawHeaders' usual spelling: X-Forwarded-For. */
  raw: string;
}

/** The two spellings of a header from its CGI name without HTTP_ (X_FORWARDED_FOR). */
function headerNames(cgi: string): HeaderNames {
  let names = HEADER_NAMES.get(cgi);
  if (names === undefined) {
    names = { lower: cgi.toLowerCase().replace(/_/g, "-"), raw: spell(cgi) };
    if (HEADER_NAMES.size < HEADER_NAMES_MAX) HEADER_NAMES.set(cgi, names);
  }
  return names;
}

function spell(cgi: string): string {
  return cgi
    .toLowerCase()
    .split("_")
    .map((w) => (w === "" ? w : w[0]!.toUpperCase() + w.slice(1)))
    .join("-");
}

// ---------------------------------------------------------------------------------------------
// toNodeHandler

const stderrErrors: ErrorStream = {
  write: (text) => void process.stderr.write(text),
  flush: () => undefined,
};

const stderrLog: RequestLog = {
  error(message, err) {
    const detail = err instanceof Error ? (err.stack ?? err.message) : err === undefined ? "" : String(err);
    process.stderr.write(`tsgi: ${message}${detail ? `: ${detail}` : ""}\n`);
  },
};

/** Decodes a mount prefix from a URL (Express's `baseUrl` is as the client wrote it); unchanged if it does not decode. */
function decodedPrefix(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * `app` as a node:http request listener: the environ is built from the request as tsgi's own
 * HTTP listener builds it (the same params, the same sink), with SCRIPT_NAME the prefix an
 * Express `app.use(prefix, …)` matched (`req.baseUrl`) and PATH_INFO the rest. Errors of the
 * application become a 500 (or a cut response) and go to stderr.
 */
export function toNodeHandler(app: Application): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  if (typeof app !== "function") throw new TypeError("toNodeHandler(app): app must be a TSGI application");
  return (req, res) => {
    const inExpress = req as http.IncomingMessage & { baseUrl?: string; originalUrl?: string };
    const params = httpParams(req);
    // Inside Express req.url lost the matched prefix: the request line had the whole target.
    // A param given twice keeps its last value (environ.ts), so these override httpParams'.
    params.push("REQUEST_URI", inExpress.originalUrl ?? req.url ?? "/");
    if ((req.socket as { encrypted?: boolean }).encrypted) params.push("REQUEST_SCHEME", "https", "HTTPS", "on");
    const { input, sink, abort } = nodeExchange(req, res, 0);
    // A body parser before us read the body already: it will never come (README).
    if (req.readableEnded) input.finish();
    const built = buildEnviron(params, {
      mount: normalizeMount(decodedPrefix(inExpress.baseUrl ?? "")),
      input,
      errors: stderrErrors,
      multiprocess: false,
      abort,
      fileWrapper,
    });
    if (!("environ" in built)) {
      const text = built.httpStatus === 404 ? "Not Found\n" : "Bad Request\n";
      res.writeHead(built.httpStatus, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": String(text.length) });
      res.end(text);
      return;
    }
    void runRequest(app, built.environ, sink, { abort, log: stderrLog });
  };
}

// ---------------------------------------------------------------------------------------------
// mount

const NOT_FOUND = Buffer.from("Not Found\n");

/**
 * Dispatches on the longest matching path prefix, at a segment boundary ("/api" takes "/api"
 * and "/api/x", never "/apix"); "/" (or "") takes everything else. The prefix moves from
 * PATH_INFO to SCRIPT_NAME in the environ itself, as werkzeug's DispatcherMiddleware and
 * PEP 3333's shift_path_info do: a copy would read the lazy `tsgi.signal` and cost a request
 * its every key. A path no prefix takes is a 404.
 */
export function mount(apps: Record<string, Application>): Application {
  const routes: [string, Application][] = [];
  for (const [prefix, app] of Object.entries(apps)) {
    if (typeof app !== "function") throw new TypeError(`mount(): the application for ${JSON.stringify(prefix)} is not a function`);
    const p = normalizeMount(prefix);
    if (routes.some(([q]) => q === p)) throw new TypeError(`mount(): ${JSON.stringify(prefix)} names the prefix ${JSON.stringify(p || "/")} twice`);
    routes.push([p, app]);
  }
  routes.sort((a, b) => b[0].length - a[0].length);
  return (environ, startResponse) => {
    const path = environ.PATH_INFO;
    for (const [prefix, app] of routes) {
      if (prefix === "") return app(environ, startResponse);
      if (path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 0x2f)) {
        environ.SCRIPT_NAME += prefix;
        environ.PATH_INFO = path.slice(prefix.length);
        return app(environ, startResponse);
      }
    }
    startResponse("404 Not Found", [
      ["Content-Type", "text/plain; charset=utf-8"],
      ["Content-Length", String(NOT_FOUND.length)],
    ]);
    return [NOT_FOUND];
  };
}

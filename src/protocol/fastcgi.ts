// The FastCGI responder (and authorizer) over the native codec (DESIGN §2): one decoder per
// connection, several requests multiplexed on it, FCGI_KEEP_CONN honoured, GET_VALUES and
// unknown types answered, FCGI_ABORT_REQUEST answered at once with FCGI_END_REQUEST. Only
// STDOUT and END_REQUEST records with the request's own id ever go to a request's peer:
// nginx aborts the upstream on anything else (FRONT-SERVERS.md, FastCGI edge case 7).

import net from "node:net";
import { FCGI_OVERLOADED, FCGI_REQUEST_COMPLETE, FCGI_UNKNOWN_ROLE } from "../errors.ts";
import { RequestAbort } from "../gateway/abort.ts";
import { TsgiInput } from "../gateway/input.ts";
import type { ResponseSink } from "../gateway/request.ts";
import { EVENT, codecError, createFastCgiDecoder, fcgi, type FastCgiDecoder, type RawEvents } from "../native.ts";
import { clientGone, codecErrorLine, coded, cutConnection, describePeer, drained, Deadline, headerTimeoutLine, lingerThenClose, parseContentLength } from "./connection.ts";
import type { Site } from "./site.ts";

const FCGI_RESPONDER = 1;
const FCGI_AUTHORIZER = 2;
const FCGI_KEEP_CONN = 1;
const FCGI_GET_VALUES_RESULT = 10;

interface Request {
  id: number;
  role: number;
  keepConn: boolean;
  input: TsgiInput | null;
  controller: RequestAbort;
  /** FCGI_END_REQUEST was written (or the connection is gone): nothing more for this id. */
  ended: boolean;
}

class FastCgiConnection {
  readonly #site: Site;
  readonly #socket: net.Socket;
  readonly #peer: string;
  readonly #decoder: FastCgiDecoder;
  readonly #requests = new Map<number, Request>();
  readonly #timer: Deadline;
  #closed = false;
  /** Bytes received since the last request ended on this keep-conn connection (-1: none ended yet). */
  #sinceIdle = -1;

  constructor(site: Site, socket: net.Socket) {
    this.#site = site;
    this.#socket = socket;
    this.#peer = describePeer(socket);
    this.#decoder = createFastCgiDecoder({ maxParams: site.maxParams, maxRequests: site.maxRequests });
    this.#timer = new Deadline(site.headerTimeout, () => {
      // A keep-conn connection idle since its last request is closed without a word.
      if (this.#sinceIdle === 0 && this.#requests.size === 0) {
        socket.destroy();
        return;
      }
      site.log.info(headerTimeoutLine(this.#peer, "TSGI_ERR_FCGI_HEADER_TIMEOUT", site.headerTimeout));
      socket.destroy();
    });
    this.#timer.arm();
    site.connections.add(this);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", () => undefined); // 'close' follows; EPIPE/ECONNRESET are the client leaving
    socket.on("close", () => this.#onClose());
  }

  #onData(chunk: Buffer): void {
    if (this.#sinceIdle >= 0) this.#sinceIdle += chunk.length;
    this.#dispatch(this.#decoder.push(chunk), chunk);
  }

  #onEnd(): void {
    this.#dispatch(this.#decoder.end(), null);
  }

  #dispatch(ev: RawEvents, chunk: Buffer | null): void {
    for (let i = 0; i < ev.length; i += 4) {
      const id = ev[i + 1] as number;
      switch (ev[i]) {
        case EVENT.BEGIN:
          this.#begin(id, ev[i + 2] as number, ev[i + 3] as number);
          break;
        case EVENT.PARAMS:
          this.#params(id, ev[i + 2] as string[]);
          break;
        case EVENT.STDIN: {
          const off = ev[i + 2] as number;
          this.#requests.get(id)?.input?.feed(chunk!.subarray(off, off + (ev[i + 3] as number)));
          break;
        }
        case EVENT.STDIN_END:
          this.#requests.get(id)?.input?.finish();
          break;
        case EVENT.ABORT:
          this.#abortRequest(id);
          break;
        case EVENT.OVERLOADED:
          this.#site.log.warn(`${this.#peer}: ${coded("TSGI_ERR_FCGI_OVERLOADED", {})}; request ${id} refused`);
          this.#write(fcgi.endRequest(id, 0, FCGI_OVERLOADED));
          break;
        case EVENT.GET_VALUES:
          this.#getValues(ev[i + 2] as string[]);
          break;
        case EVENT.UNKNOWN_TYPE:
          this.#write(fcgi.unknownType(ev[i + 2] as number));
          break;
        case EVENT.ERROR: {
          this.#site.log.error(codecErrorLine(this.#peer, codecError(ev, i)));
          this.#socket.destroy();
          return;
        }
        default:
          // DATA and DATA_END belong to FILTER requests, which are refused at BEGIN.
          break;
      }
    }
  }

  #begin(id: number, role: number, flags: number): void {
    if (role !== FCGI_RESPONDER && role !== FCGI_AUTHORIZER) {
      this.#site.log.info(`${this.#peer}: ${coded("TSGI_ERR_FCGI_UNKNOWN_ROLE", { role })}`);
      this.#write(fcgi.endRequest(id, 0, FCGI_UNKNOWN_ROLE));
      this.#decoder.release(id);
      return;
    }
    this.#requests.set(id, {
      id,
      role,
      keepConn: (flags & FCGI_KEEP_CONN) !== 0,
      input: null,
      controller: new RequestAbort(),
      ended: false,
    });
  }

  #params(id: number, params: string[]): void {
    const req = this.#requests.get(id);
    if (!req) return;
    this.#timer.disarm();
    // mod_authnz_fcgi sends no FCGI_STDIN at all: an authorizer's input is empty.
    const contentLength = parseContentLength(params);
    req.input =
      req.role === FCGI_AUTHORIZER || contentLength === 0
        ? TsgiInput.EMPTY
        : new TsgiInput(
            contentLength,
            { pause: (paused) => (paused ? this.#socket.pause() : this.#socket.resume()) },
            this.#site.maxBody,
          );
    this.#site.serve(params, req.input, this.#sink(req), req.controller, { peer: this.#peer, protocol: "fastcgi" });
  }

  #sink(req: Request): ResponseSink {
    return {
      send: (head, chunk, last) => {
        if (req.ended) return undefined;
        // The first write carries the CGI head (RFC 3875 §6.3: the status in a Status header),
        // framed with the chunk in the same records.
        let text: string | undefined;
        if (!head.sent) {
          head.sent = true;
          text = head.serialize(`Status: ${head.status}`);
        }
        // appStatus of FCGI_END_REQUEST: the application's HTTP status (0 when it has none).
        const ok = this.#write(fcgi.frameResponse(req.id, chunk, last, last ? head.code || 0 : 0, text));
        if (last) this.#finish(req);
        return ok || last ? undefined : drained(this.#socket);
      },
      abort: () => {
        if (req.ended) return;
        // No FCGI_END_REQUEST, and a reset: nginx takes a FIN on a connection of its own
        // for the end of the response.
        req.ended = true;
        cutConnection(this.#socket);
      },
    };
  }

  /** FCGI_ABORT_REQUEST: the application is told, and FCGI_END_REQUEST goes out at once. */
  #abortRequest(id: number): void {
    const req = this.#requests.get(id);
    if (!req || req.ended) return;
    clientGone(req.controller, req.input, "FCGI_ABORT_REQUEST");
    this.#write(fcgi.endRequest(id, 0, FCGI_REQUEST_COMPLETE));
    this.#finish(req);
  }

  #finish(req: Request): void {
    req.ended = true;
    this.#requests.delete(req.id);
    this.#decoder.release(req.id);
    if ((!req.keepConn || this.#site.stopping) && this.#requests.size === 0) {
      // FCGI_KEEP_CONN unset: the application closes the connection (spec §3.5); the rest of
      // an unread body is drained, not reset, so the front server reads the whole response.
      lingerThenClose(this.#socket, this.#site.headerTimeout);
    } else if (this.#requests.size === 0) {
      this.#sinceIdle = 0;
      this.#timer.arm();
    }
  }

  /** Closes the connection if no request is on it (the worker is stopping). */
  closeIfIdle(): void {
    if (this.#requests.size === 0) lingerThenClose(this.#socket, this.#site.headerTimeout);
  }

  #getValues(pairs: string[]): void {
    const known: Record<string, string> = {
      FCGI_MAX_CONNS: String(this.#site.maxConnections),
      FCGI_MAX_REQS: String(this.#site.maxRequests),
      FCGI_MPXS_CONNS: "1",
    };
    const answer: string[] = [];
    for (let i = 0; i < pairs.length; i += 2) {
      const name = pairs[i]!;
      if (name in known) answer.push(name, known[name]!);
    }
    this.#write(fcgi.stream(FCGI_GET_VALUES_RESULT, 0, fcgi.pairs(answer)));
    if (answer.length === 0) this.#write(fcgi.streamEnd(FCGI_GET_VALUES_RESULT, 0));
  }

  #write(buf: Buffer): boolean {
    if (this.#closed || this.#socket.destroyed) return true;
    return this.#socket.write(buf);
  }

  #onClose(): void {
    this.#closed = true;
    this.#timer.disarm();
    this.#site.connections.delete(this);
    for (const req of this.#requests.values()) {
      if (req.ended) continue;
      req.ended = true;
      clientGone(req.controller, req.input, "connection closed");
    }
    this.#requests.clear();
  }
}

/** A net.Server speaking FastCGI for `site`; the caller listens (TCP, unix socket or an inherited handle). */
export function createFastCgiServer(site: Site): net.Server {
  const server = net.createServer((socket) => new FastCgiConnection(site, socket));
  if (site.maxConnections > 0) server.maxConnections = site.maxConnections;
  return server;
}

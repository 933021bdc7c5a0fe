// The uwsgi server over the native codec (DESIGN §2): one request per connection, the body
// by CONTENT_LENGTH, and the response as raw HTTP/1.1 with a status line (Apache's
// mod_proxy_uwsgi answers 502 without one), delimited by Content-Length or by closing the
// connection, never chunked.

import net from "node:net";
import { RequestAbort } from "../gateway/abort.ts";
import { TsgiInput } from "../gateway/input.ts";
import type { ResponseSink } from "../gateway/request.ts";
import { EVENT, codecError, createUwsgiDecoder, type RawEvents, type UwsgiDecoder } from "../native.ts";
import { clientGone, codecErrorLine, cutConnection, describePeer, drained, Deadline, headerTimeoutLine, lingerThenClose } from "./connection.ts";
import type { Site } from "./site.ts";

class UwsgiConnection {
  readonly #site: Site;
  readonly #socket: net.Socket;
  readonly #peer: string;
  readonly #decoder: UwsgiDecoder;
  readonly #timer: Deadline;
  readonly #controller = new RequestAbort();
  #input: TsgiInput | null = null;
  #ended = false;
  #closed = false;

  constructor(site: Site, socket: net.Socket) {
    this.#site = site;
    this.#socket = socket;
    this.#peer = describePeer(socket);
    this.#decoder = createUwsgiDecoder({ maxParams: site.maxParams });
    this.#timer = new Deadline(site.headerTimeout, () => {
      site.log.info(headerTimeoutLine(this.#peer, "TSGI_ERR_UWSGI_HEADER_TIMEOUT", site.headerTimeout));
      socket.destroy();
    });
    this.#timer.arm();
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#dispatch(this.#decoder.push(chunk), chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", () => undefined);
    socket.on("close", () => this.#onClose());
  }

  #onEnd(): void {
    if (this.#ended) return;
    const ev = this.#decoder.end();
    // A connection closed before it sent a byte (a health check, a port probe) is not an
    // error: the TRUNCATED offset is the stream's length.
    if (ev[0] === EVENT.ERROR && ev[2] === 0) return;
    this.#dispatch(ev, null);
  }

  #dispatch(ev: RawEvents, chunk: Buffer | null): void {
    for (let i = 0; i < ev.length; i += 4) {
      switch (ev[i]) {
        case EVENT.REQUEST:
          this.#request(ev[i + 2] as string[], ev[i + 3] as number);
          break;
        case EVENT.BODY: {
          const off = ev[i + 2] as number;
          this.#input?.feed(chunk!.subarray(off, off + (ev[i + 3] as number)));
          break;
        }
        case EVENT.BODY_END:
          this.#input?.finish();
          break;
        case EVENT.ERROR: {
          if (this.#ended) return; // the response is out; what follows it is drained
          this.#site.log.error(codecErrorLine(this.#peer, codecError(ev, i)));
          this.#socket.destroy();
          return;
        }
      }
    }
  }

  #request(vars: string[], contentLength: number): void {
    this.#timer.disarm();
    const input =
      contentLength === 0
        ? TsgiInput.EMPTY
        : new TsgiInput(contentLength, { pause: (paused) => (paused ? this.#socket.pause() : this.#socket.resume()) }, this.#site.maxBody);
    this.#input = input;
    this.#site.serve(vars, input, this.#sink(), this.#controller, { peer: this.#peer, protocol: "uwsgi" });
  }

  #sink(): ResponseSink {
    return {
      send: (head, chunk, last) => {
        if (this.#ended || this.#closed) return undefined;
        let ok = true;
        if (!head.sent) {
          head.sent = true;
          const text = Buffer.from(head.serialize(`HTTP/1.1 ${head.status}`), "latin1");
          ok = this.#socket.write(chunk ? Buffer.concat([text, chunk]) : text);
        } else if (chunk) {
          ok = this.#socket.write(chunk);
        }
        if (last) {
          this.#ended = true;
          lingerThenClose(this.#socket, this.#site.headerTimeout);
          return undefined;
        }
        return ok ? undefined : drained(this.#socket);
      },
      abort: () => {
        if (this.#ended) return;
        this.#ended = true;
        cutConnection(this.#socket);
      },
    };
  }

  #onClose(): void {
    this.#closed = true;
    this.#timer.disarm();
    if (this.#ended || !this.#input) return;
    this.#ended = true;
    clientGone(this.#controller, this.#input, "connection closed");
  }
}

/** A net.Server speaking uwsgi for `site`; the caller listens. */
export function createUwsgiServer(site: Site): net.Server {
  const server = net.createServer((socket) => new UwsgiConnection(site, socket));
  if (site.maxConnections > 0) server.maxConnections = site.maxConnections;
  return server;
}

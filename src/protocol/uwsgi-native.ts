// The uwsgi server with its sockets owned by the native bridge (native/binding/
// uwsgi_server.cc): libuv accepts, reads and writes; this file receives each read's events in
// one call and answers each write in one call, with the same request logic as the net.Socket
// server in uwsgi.ts (which stays for platforms or handles the native side cannot take).
// Cross-language contract: the event kinds and `respond`'s arguments, with uwsgi_server.cc.

import { tsgiError } from "../errors.ts";
import { RequestAbort } from "../gateway/abort.ts";
import { TsgiInput } from "../gateway/input.ts";
import type { ResponseSink } from "../gateway/request.ts";
import { EVENT, binding, codecError, nativeServers, type RawEvents } from "../native.ts";
import { coded } from "./connection.ts";
import type { Site } from "./site.ts";

interface Request {
  input: TsgiInput;
  controller: RequestAbort;
  ended: boolean;
  drain: { resolve: () => void; reject: (err: Error) => void } | null;
}

export interface NativeListener {
  /** Stop accepting; accepted connections are served. */
  close(): void;
  readonly connections: number;
}

/**
 * Serves the listening socket `fd` (a unix socket when `isPipe`) with the native bridge; null
 * when the bridge has no server (the caller then uses the net.Socket server).
 */
export function serveUwsgiNatively(site: Site, fd: number, isPipe: boolean): NativeListener | null {
  if (!nativeServers.available) return null;
  const requests = new Map<number, Request>();
  const SERVER_EVENT = binding.serverEvents;

  const gone = (id: number, reason: string) => {
    const req = requests.get(id);
    if (!req) return;
    requests.delete(id);
    if (req.ended) return;
    req.ended = true;
    const err = tsgiError("TSGI_ERR_APP_CLIENT_GONE", { reason });
    req.controller.abort(err);
    req.input.fail(err);
    req.drain?.reject(err);
  };

  const onEvents = (id: number, ev: RawEvents, peer?: string) => {
    for (let i = 0; i < ev.length; i += 4) {
      switch (ev[i]) {
        case EVENT.REQUEST:
          request(id, ev[i + 2] as string[], ev[i + 3] as number);
          break;
        case EVENT.BODY:
          requests.get(id)?.input.feed(ev[i + 2] as unknown as Buffer);
          break;
        case EVENT.BODY_END:
          requests.get(id)?.input.finish();
          break;
        case EVENT.ERROR: {
          const err = codecError(ev, i);
          site.log.error(`${peer}: ${err.code}: ${err.reason} (byte ${err.offset}); closing the connection`);
          gone(id, "malformed packet");
          break;
        }
        case SERVER_EVENT.TIMEOUT:
          site.log.info(`${peer}: ${coded("TSGI_ERR_UWSGI_HEADER_TIMEOUT", { timeout: site.headerTimeout / 1000 })}; closing the connection`);
          break;
        case SERVER_EVENT.CLOSE:
          gone(id, "connection closed");
          break;
        case SERVER_EVENT.DRAIN: {
          const req = requests.get(id);
          const drain = req?.drain;
          if (req) req.drain = null;
          drain?.resolve();
          break;
        }
      }
    }
  };

  const native = new binding.UwsgiServer(fd, isPipe, site.maxParams, site.headerTimeout, site.maxConnections, onEvents);

  function request(id: number, vars: string[], contentLength: number): void {
    const input = contentLength === 0 ? TsgiInput.EMPTY : new TsgiInput(contentLength, { pause: (paused) => native.pause(id, paused) }, site.maxBody);
    const req: Request = { input, controller: new RequestAbort(), ended: false, drain: null };
    requests.set(id, req);
    const sink: ResponseSink = {
      send(head, chunk, last) {
        if (req.ended) return undefined;
        let text: string | null = null;
        if (!head.sent) {
          head.sent = true;
          text = head.serialize(`HTTP/1.1 ${head.status}`);
        }
        const ok = native.respond(id, text, chunk, last);
        if (last) {
          req.ended = true;
          requests.delete(id);
          return undefined;
        }
        if (ok) return undefined;
        return new Promise<void>((resolve, reject) => (req.drain = { resolve, reject }));
      },
      abort() {
        if (req.ended) return;
        req.ended = true;
        requests.delete(id);
        native.cut(id);
      },
    };
    const meta = {
      get peer() {
        return native.peer(id) || "uwsgi peer";
      },
      protocol: "uwsgi" as const,
    };
    void site.serve(vars, input, sink, req.controller, meta).catch((err: unknown) => {
      site.log.error(`${meta.peer}: request failed in the server`, err);
      sink.abort();
    });
  }

  return {
    close: () => native.close(),
    get connections() {
      return native.connections;
    },
  };
}

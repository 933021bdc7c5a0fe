// The uwsgi server (DESIGN §2), with its sockets owned by the native bridge (native/binding/
// uwsgi_server.cc): libuv accepts, reads and writes; this file receives each read's events in
// one call and answers each write in one call.
// Cross-language contract: the event kinds and `respond`'s arguments, with uwsgi_server.cc.

import { TsgiInput } from "../gateway/input.ts";
import { HeadCache } from "../gateway/start-response.ts";
import { EVENT, binding, checkListener, type NativeUwsgiServer, type ServerEventHandler } from "../native.ts";
import { NativeSink, type SinkWire, OpenRequests, connectionEvent, slice, unpackParams, type NativeListener } from "./native-listener.ts";
import type { Site } from "./site.ts";

/** uwsgi as its sinks write it: the raw HTTP head the front server passes on. */
const WIRE: SinkWire = { protocol: "uwsgi", headPrefix: "HTTP/1.1 ", heads: new HeadCache() };

/** A uwsgi response: an HTTP response as the front server passes it on, head first. */
class UwsgiSink extends NativeSink<NativeUwsgiServer> {
  protected get wire(): SinkWire {
    return WIRE;
  }
  protected respond(head: string | null, chunk: Uint8Array | null, last: boolean): boolean {
    return this.native.respond(this.conn, head, chunk, last);
  }
}

/** Serves the listening socket `fd` (a unix socket when `isPipe`) with the native bridge. */
export function serveUwsgi(site: Site, fd: number, isPipe: boolean): NativeListener {
  const requests = new OpenRequests();
  const peerOf = (conn: number) => native.peer(conn) || "uwsgi peer";
  const SERVER_EVENT = binding.serverEvents;

  const onEvents: ServerEventHandler = (conn, ev, count, objects, peer, layouts) => {
    // The read's bytes: body events are slices of it (no copy).
    let chunk: Buffer | null = null;
    for (let i = 0; i < count; i += 4) {
      switch (ev[i]) {
        case EVENT.REQUEST:
          request(conn, ev[i + 1]!, objects![ev[i + 2]!] as string, layouts, ev[i + 3]!);
          break;
        case SERVER_EVENT.CHUNK:
          chunk = objects![ev[i + 2]!] as Buffer;
          break;
        case EVENT.BODY:
          requests.get(conn, 0)?.input.feed(slice(chunk!, ev[i + 2]!, ev[i + 3]!));
          break;
        case EVENT.BODY_END:
          requests.get(conn, 0)?.input.finish();
          break;
        default:
          connectionEvent(site, requests, conn, ev, i, objects, peer, "uwsgi");
      }
    }
  };

  const allow = isPipe ? null : (site.allow?.packed() ?? null);
  checkListener(fd, site.headerTimeout, site.maxConnections, site.maxParams, allow);
  const native = new binding.UwsgiServer(fd, isPipe, site.headerTimeout, site.maxConnections, onEvents, allow, site.maxParams);

  function request(conn: number, contentLength: number, packed: string, layouts: Int32Array, at: number): void {
    const input = contentLength === 0 ? TsgiInput.EMPTY : new TsgiInput(contentLength, { pause: (paused) => native.pause(conn, paused) }, site.maxBody);
    const req = new UwsgiSink(requests, native, conn, 0, input, peerOf, false);
    site.serve(unpackParams(packed, layouts, at, req.controller), input, req, req.controller, req);
  }

  return native;
}

// The FastCGI responder and authorizer (DESIGN §2), with their sockets owned by the native
// bridge (native/binding/fastcgi_server.cc): libuv accepts, reads and writes, and the bridge
// answers what needs no application itself (GET_VALUES, unknown types and roles,
// FCGI_OVERLOADED, the FCGI_END_REQUEST of an abort). This file receives each read's
// requests, body chunks and aborts in one call and writes each response chunk in one call.
// Cross-language contract: the event kinds and `respond`'s arguments, with fastcgi_server.cc.

import { closeSync } from "node:fs";
import { TsgiInput } from "../gateway/input.ts";
import { HeadCache } from "../gateway/start-response.ts";
import { EVENT, binding, checkListener, type NativeFastCgiServer, type ServerEventHandler } from "../native.ts";
import { coded } from "./connection.ts";
import { NativeSink, type SinkWire, OpenRequests, connectionEvent, packedContentLength, packedKeepConn, packedRole, slice, unpackParams, type NativeListener } from "./native-listener.ts";
import type { Site } from "./site.ts";

const FCGI_AUTHORIZER = 2;

/** FastCGI as its sinks write it: the CGI head carries the status in a Status header. */
const WIRE: SinkWire = { protocol: "fastcgi", headPrefix: "Status: ", heads: new HeadCache() };

/**
 * A FastCGI response: the CGI head (RFC 3875 §6.3: the status in a Status header) goes in the
 * first write; FCGI_END_REQUEST's appStatus is the HTTP status.
 */
class FastCgiSink extends NativeSink<NativeFastCgiServer> {
  protected get wire(): SinkWire {
    return WIRE;
  }
  protected respond(head: string | null, chunk: Uint8Array | null, last: boolean, status: number): boolean {
    return this.native.respond(this.conn, this.id, head, chunk, last, status);
  }
}

/**
 * Serves the listening socket `fd` (a unix socket when `isPipe`) with the native bridge.
 * `onHandoff` receives the socket of each persistent connection that leaves this worker while
 * it drains (`close(true, true)`): its to pass to another worker, or to close.
 */
export function serveFastCgi(site: Site, fd: number, isPipe: boolean, onHandoff?: (fd: number) => void): NativeListener {
  const requests = new OpenRequests();
  const SERVER_EVENT = binding.serverEvents;
  const peerOf = (conn: number) => native.peer(conn) || "fastcgi peer";

  const onEvents: ServerEventHandler = (conn, ev, count, objects, peer, layouts) => {
    // The read's bytes: body events are slices of it (no copy).
    let chunk: Buffer | null = null;
    for (let i = 0; i < count; i += 4) {
      const id = ev[i + 1]!;
      switch (ev[i]) {
        case EVENT.PARAMS:
          request(conn, id, objects![ev[i + 2]!] as string, layouts, ev[i + 3]!);
          break;
        case SERVER_EVENT.CHUNK:
          chunk = objects![ev[i + 2]!] as Buffer;
          break;
        case EVENT.STDIN:
          requests.get(conn, id)?.input.feed(slice(chunk!, ev[i + 2]!, ev[i + 3]!));
          break;
        case EVENT.STDIN_END:
          requests.get(conn, id)?.input.finish();
          break;
        case EVENT.ABORT: {
          const req = requests.get(conn, id);
          if (req) requests.abort(req, "FCGI_ABORT_REQUEST");
          break;
        }
        case EVENT.OVERLOADED:
          site.log.warn(`${peerOf(conn)}: ${coded("TSGI_ERR_FCGI_OVERLOADED", {})}; request ${id} refused`);
          break;
        case SERVER_EVENT.HANDOFF: {
          const socket = ev[i + 1]!;
          if (onHandoff) onHandoff(socket);
          else closeSync(socket);
          break;
        }
        case SERVER_EVENT.UNKNOWN_ROLE:
          site.log.info(`${peerOf(conn)}: ${coded("TSGI_ERR_FCGI_UNKNOWN_ROLE", { role: ev[i + 2]! })}`);
          break;
        default:
          connectionEvent(site, requests, conn, ev, i, objects, peer, "fastcgi");
      }
    }
  };

  const allow = isPipe ? null : (site.allow?.packed() ?? null);
  checkListener(fd, site.headerTimeout, site.maxConnections, site.maxParams, allow);
  const native = new binding.FastCgiServer(fd, isPipe, site.headerTimeout, site.maxConnections, onEvents, allow, site.maxParams, site.maxRequests);

  function request(conn: number, id: number, packed: string, layouts: Int32Array, at: number): void {
    const role = packedRole(layouts, at);
    // mod_authnz_fcgi sends no FCGI_STDIN at all: an authorizer's input is empty.
    const contentLength = packedContentLength(layouts, at);
    const input =
      role === FCGI_AUTHORIZER || contentLength === 0
        ? TsgiInput.EMPTY
        : new TsgiInput(contentLength, { pause: (paused) => native.pause(conn, paused) }, site.maxBody);
    const req = new FastCgiSink(requests, native, conn, id, input, peerOf, packedKeepConn(layouts, at));
    site.serve(unpackParams(packed, layouts, at, req.controller), input, req, req.controller, req);
  }

  return native;
}

// HTTP/1.1 through node:http (DESIGN §2), for development (`tsgi runserver`) and for running
// without a front server: the request becomes the same params a front server would send,
// so the environ and the application behave exactly as behind nginx.

import http from "node:http";
import type net from "node:net";
import { RequestAbort } from "../gateway/abort.ts";
import { TsgiInput } from "../gateway/input.ts";
import type { ResponseSink } from "../gateway/request.ts";
import { clientGone, cutConnection, describeAddress, describePeer, drained, refusedLine } from "./connection.ts";
import type { Site } from "./site.ts";

/** The CGI params of an HTTP request, as nginx's fastcgi_params would send them. */
export function httpParams(req: http.IncomingMessage): string[] {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const socket = req.socket;
  const host = req.headers.host ?? "";
  const hostMatch = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host);
  const params = [
    "REQUEST_METHOD", req.method ?? "GET",
    "REQUEST_URI", url,
    "QUERY_STRING", q < 0 ? "" : url.slice(q + 1),
    "SERVER_PROTOCOL", `HTTP/${req.httpVersion}`,
    "REMOTE_ADDR", socket.remoteAddress ?? "",
    "REMOTE_PORT", String(socket.remotePort ?? ""),
    "SERVER_ADDR", socket.localAddress ?? "",
    "SERVER_NAME", hostMatch?.[1] || socket.localAddress || "localhost",
    "SERVER_PORT", hostMatch?.[2] ?? String(socket.localPort ?? ""),
    "GATEWAY_INTERFACE", "CGI/1.1",
    "SERVER_SOFTWARE", "tsgi",
    "REQUEST_SCHEME", "http",
  ];
  const type = req.headers["content-type"];
  if (type !== undefined) params.push("CONTENT_TYPE", type);
  const length = req.headers["content-length"];
  if (length !== undefined) params.push("CONTENT_LENGTH", length);
  // Every header as HTTP_*, repeated ones as separate params: the environ combines them.
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    // As Apache does: a name with characters other than letters, digits and "-" (an
    // underscore, say) is dropped, so X-User_Id can never pose as X-User-Id.
    if (!/^[A-Za-z0-9-]+$/.test(name)) continue;
    params.push(`HTTP_${name.toUpperCase().replace(/-/g, "_")}`, raw[i + 1]!);
  }
  return params;
}

/**
 * The tsgi side of one node:http exchange: the request body as `tsgi.input` (the socket paused
 * while the application has too much unread), the response as a ResponseSink, and the abort
 * raised when the connection closes first. Shared by the HTTP listener and `toNodeHandler`
 * (gateway/adapters.ts), so both carry a response the same way.
 */
export function nodeExchange(req: http.IncomingMessage, res: http.ServerResponse, maxBody: number): { input: TsgiInput; sink: ResponseSink; abort: RequestAbort } {
  const length = req.headers["content-length"];
  const input = new TsgiInput(
    length !== undefined && /^\d+$/.test(length) ? Number(length) : null,
    { pause: (paused) => (paused ? req.pause() : req.resume()) },
    maxBody,
  );
  req.on("data", (chunk: Buffer) => input.feed(chunk));
  req.on("end", () => input.finish());
  const controller = new RequestAbort();
  let ended = false;
  // What was still queued when the connection failed never reached the client (the access
  // log counts what left); by 'close' the socket has dropped its queue, so it is read first.
  let unsent = 0;
  const socket = req.socket;
  const onSocketError = () => (unsent = socket.writableLength);
  socket.prependListener("error", onSocketError);
  res.on("close", () => {
    socket.off("error", onSocketError);
    if (ended) return;
    ended = true;
    clientGone(controller, input, "connection closed");
  });
  const sink: ResponseSink = {
    send(head, chunk, last) {
      if (ended) return undefined;
      if (!head.sent) {
        head.sent = true;
        const code = head.code;
        const reason = head.status!.slice(4);
        res.writeHead(code, reason, head.fields);
      }
      let ok = true;
      if (chunk) ok = res.write(chunk);
      // node:http corks a response's first write until the next tick: a synchronous body
      // would hold it back while its next() runs (the chunk goes out as it is yielded).
      if (!last && res.socket?.writableCorked) res.socket.uncork();
      if (last) {
        ended = true;
        res.end();
        return undefined;
      }
      return ok ? undefined : drained(res);
    },
    abort() {
      if (ended) return;
      ended = true;
      if (res.headersSent && !res.socket?.destroyed) cutConnection(res.socket!);
      else res.destroy();
    },
    unsent: () => unsent,
  };
  return { input, sink, abort: controller };
}

/** At most one refusal line a second per listener (as the native listeners: stream_server.h's kRefusedReportMs). */
const REFUSED_REPORT_MS = 1000;

/** Servers that drain (drainHttpServer): what still comes on their connections is answered with `Connection: close`. */
const draining = new WeakSet<http.Server>();

/** An HTTP server for `site`; on TCP (not `isPipe`) a peer not in the site's `allow` is closed as it connects. */
export function createHttpServer(site: Site, isPipe = false): http.Server {
  const server = http.createServer({ requestTimeout: 0, headersTimeout: site.headerTimeout || 10_000 }, (req, res) => {
    if (draining.has(server)) res.shouldKeepAlive = false;
    const peer = describePeer(req.socket);
    const { input, sink, abort } = nodeExchange(req, res, site.maxBody);
    site.serve(httpParams(req), input, sink, abort, { peer, protocol: "http" });
  });
  if (site.maxConnections > 0) server.maxConnections = site.maxConnections;
  const allow = site.allow;
  if (allow !== null && !isPipe) {
    let refused = 0;
    let reportedAt = -Infinity;
    // 'connection' comes before node:http reads a byte: a refused peer never reaches a parser.
    server.prependListener("connection", (socket: net.Socket) => {
      if (allow.has(socket.remoteAddress)) return;
      refused++;
      const now = performance.now();
      if (now - reportedAt >= REFUSED_REPORT_MS) {
        reportedAt = now;
        site.log.warn(refusedLine(describePeer(socket), `http ${describeAddress(socket.localAddress, socket.localPort)}`, refused - 1));
        refused = 0;
      }
      socket.destroy();
    });
  }
  return server;
}

/**
 * A worker's drain of an HTTP listener (reload, stop): it stops listening, and no keep-alive
 * connection is closed under its client, which may be sending a request on it that instant
 * (neither nginx's upstream keepalive nor node's agent retries a POST on a reset one).
 * What still comes on a connection is served and answered with `Connection: close`; an idle
 * one goes at the keep-alive timeout the server announced (`Keep-Alive: timeout=5`), which
 * clients expect. `onClosed` once every connection is gone. (http.Server#close would close
 * the idle ones at once; the close of its parent class, net's, does not.)
 */
export function drainHttpServer(server: http.Server, onClosed: () => void): void {
  draining.add(server);
  // http.Server's parent's close (net's): stops listening, calls back once no connection is left.
  const listenerClose = (Object.getPrototypeOf(http.Server.prototype) as { close(this: http.Server, cb: () => void): void }).close;
  listenerClose.call(server, () => onClosed());
}


// The master's control socket (DESIGN §4): a unix socket, mode 0600, beside tsgi.toml unless
// the file's `control` says otherwise, behind `tsgi status`, `tsgi reload [SITE]` and `tsgi
// stop`. One JSON line in, one JSON line out, then the connection closes. It carries
// commands, never requests: the request path is the native listeners'.

import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tsgiError } from "../errors.ts";
import { describeError } from "../log.ts";
import type { MasterStatus } from "./master.ts";
import type { SiteStatus } from "./process-group.ts";
import { answers } from "./sockets.ts";

export type ControlRequest = { command: "status" } | { command: "reload"; site?: string } | { command: "stop" };
export type ControlReply = { ok: true; sites?: SiteStatus[]; master?: MasterStatus; message?: string } | { ok: false; error: string };

const MAX_LINE = 65536;

/** Listens on `path` (a stale socket file replaced; a live one is another master: refused). */
export async function listenControl(path: string, onRequest: (request: ControlRequest, reply: (r: ControlReply) => void) => void): Promise<Server> {
  await removeStale(path);
  const server = createServer((conn) => {
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("error", () => undefined);
    conn.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0) {
        if (buf.length > MAX_LINE) conn.destroy();
        return;
      }
      conn.pause();
      let request: ControlRequest;
      try {
        request = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      } catch {
        conn.end(`${JSON.stringify({ ok: false, error: "not a JSON line" })}\n`);
        return;
      }
      onRequest(request, (r) => conn.end(`${JSON.stringify(r)}\n`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // 0600 from the first instant: only the master's user may reach it.
    const umask = process.umask(0o177);
    server.listen(path, () => {
      process.umask(umask);
      server.off("error", reject);
      resolve();
    });
  }).catch((err) => {
    throw tsgiError("TSGI_ERR_MASTER_LISTEN", { address: `unix:${path} (the control socket)`, reason: describeError(err) });
  });
  chmodSync(path, 0o600);
  return server;
}

async function removeStale(path: string): Promise<void> {
  try {
    if (!lstatSync(path).isSocket()) throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: "the control socket's path exists and is not a socket" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (await answers(path)) throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: "another tsgi master of this file answers on its control socket" });
  unlinkSync(path);
}

/** The client side: one command to the master on `path`, its reply. */
export function controlRequest(path: string, request: ControlRequest, timeoutMs = 10_000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path });
    let buf = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from the master on ${path} within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(`${JSON.stringify(request)}\n`));
    sock.on("data", (chunk: string) => (buf += chunk));
    sock.on("end", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as ControlReply);
      } catch {
        reject(new Error(`the master on ${path} answered something that is not JSON`));
      }
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === "ENOENT" || err.code === "ECONNREFUSED"
          ? new Error(`no tsgi master runs for this file (nothing answers on ${path})`)
          : err,
      );
    });
  });
}

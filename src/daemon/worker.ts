// A worker process of a site's process group: imports the application before it accepts (a
// site that cannot import fails at boot, not on its first request), accepts on the sockets
// its master bound (descriptors 4, 5, … in `listen` order, inherited through the stdio
// table), serves, and on "stop" stops accepting and lets requests in flight finish within
// graceful-timeout.

import type net from "node:net";
import { createLogger } from "../log.ts";
import { binding } from "../native.ts";
import { createFastCgiServer } from "../protocol/fastcgi.ts";
import { serveFastCgiNatively } from "../protocol/fastcgi-native.ts";
import { createHttpServer } from "../protocol/http.ts";
import { Site } from "../protocol/site.ts";
import { createUwsgiServer } from "../protocol/uwsgi.ts";
import { serveUwsgiNatively, type NativeListener } from "../protocol/uwsgi-native.ts";
import { loadApplication } from "./app.ts";
import { parseListen } from "./listen.ts";

/**
 * glibc's trim threshold for a worker (native/binding/process.cc): 32 MiB of freed heap kept
 * for the next request bodies instead of a page fault per page per read. TSGI_MALLOC_TRIM
 * (bytes) overrides it; 0 keeps glibc's own.
 */
const MALLOC_TRIM_BYTES = 32 * 1024 * 1024;

/** Exit status of a worker that could not boot: the master stops respawning it (gunicorn's WORKER_BOOT_ERROR). */
export const WORKER_BOOT_ERROR = 3;

/** What the master tells a worker, as JSON in TSGI_WORKER. */
export interface WorkerConfig {
  site: string;
  index: number;
  app: string;
  cwd: string;
  listen: string[];
  mount: string;
  debug: boolean;
  maxParams: number;
  maxBody: number;
  requestTimeout: number;
  headerTimeout: number;
  gracefulTimeout: number;
  maxConnections: number;
  multiprocess: boolean;
}

export type WorkerMessage =
  | { type: "ready" }
  | { type: "boot-error"; code: string; message: string };

function send(msg: WorkerMessage): void {
  process.send?.(msg);
}

/** The first inherited listening socket: fd 3 is the IPC channel to the master. */
export const FIRST_LISTEN_FD = 4;

/** Accepts on an inherited listening socket. */
function listenOnFd(server: net.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ fd }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

export async function runWorker(cfg: WorkerConfig): Promise<void> {
  process.title = `tsgi: ${cfg.site} worker ${cfg.index}`;
  const trim = Number(process.env.TSGI_MALLOC_TRIM ?? MALLOC_TRIM_BYTES);
  if (Number.isInteger(trim) && trim > 0 && trim < 2 ** 31) binding.mallocTrimThreshold(trim);
  const log = createLogger(cfg.site);
  let app;
  try {
    if (cfg.cwd) process.chdir(cfg.cwd);
    app = await loadApplication(cfg.app, process.cwd());
  } catch (err) {
    const e = err as { code?: string; message?: string };
    log.error(`worker ${cfg.index} could not load ${cfg.app}`, err);
    send({ type: "boot-error", code: e.code ?? "TSGI_ERR_APP_IMPORT", message: e.message ?? String(err) });
    process.exit(WORKER_BOOT_ERROR);
  }

  const site = new Site({
    name: cfg.site,
    app,
    mount: cfg.mount,
    debug: cfg.debug,
    maxParams: cfg.maxParams,
    maxBody: cfg.maxBody,
    requestTimeout: cfg.requestTimeout,
    headerTimeout: cfg.headerTimeout,
    maxConnections: cfg.maxConnections,
    multiprocess: cfg.multiprocess,
    log,
  });
  const servers: net.Server[] = [];
  const natives: NativeListener[] = [];
  for (const [i, text] of cfg.listen.entries()) {
    const spec = parseListen(text);
    const fd = FIRST_LISTEN_FD + i;
    // FastCGI and uwsgi sockets go to the native bridge (DESIGN §2): a net.Socket per
    // connection costs more than a request. TSGI_NATIVE_IO=0 keeps them in node:net.
    const isPipe = "path" in spec;
    const native =
      spec.protocol === "uwsgi" ? serveUwsgiNatively(site, fd, isPipe) : spec.protocol === "fastcgi" ? serveFastCgiNatively(site, fd, isPipe) : null;
    if (native) {
      natives.push(native);
      continue;
    }
    const server =
      spec.protocol === "fastcgi" ? createFastCgiServer(site) : spec.protocol === "uwsgi" ? createUwsgiServer(site) : createHttpServer(site);
    await listenOnFd(server, fd);
    servers.push(server);
  }
  send({ type: "ready" });

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    site.stopping = true;
    // Requests in flight finish; connections close as they fall idle (Site.stopping); the
    // process exits once every listener has closed and every connection is gone, so no
    // response is cut in a write queue.
    let open = servers.length;
    for (const s of servers) {
      s.close(() => open--);
      (s as { closeIdleConnections?: () => void }).closeIdleConnections?.();
    }
    for (const n of natives) n.close();
    site.closeIdleConnections();
    setInterval(() => {
      if (open <= 0 && natives.every((n) => n.connections === 0)) process.exit(0);
    }, 10);
    setTimeout(() => {
      log.warn(`worker ${cfg.index} stops with ${site.inFlight} requests still in flight after graceful-timeout`);
      process.exit(0);
    }, cfg.gracefulTimeout);
  };
  process.on("message", (msg: { type?: string }) => {
    if (msg?.type === "stop") stop();
  });
  process.on("SIGTERM", stop);
  // The master handles SIGINT for the whole group (a terminal sends it to every process).
  process.on("SIGINT", () => undefined);
}

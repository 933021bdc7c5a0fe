// A worker process of a site's process group: imports the application before it accepts (a
// site that cannot import fails at boot, not on its first request), listens on the sockets
// its master shares with it (node:cluster with shared handles: the master binds, every
// worker accepts), serves, and on "stop" stops accepting and lets requests in flight finish
// within graceful-timeout.

import type net from "node:net";
import { createLogger } from "../log.ts";
import { createFastCgiServer } from "../protocol/fastcgi.ts";
import { createHttpServer } from "../protocol/http.ts";
import { Site } from "../protocol/site.ts";
import { createUwsgiServer } from "../protocol/uwsgi.ts";
import { loadApplication } from "./app.ts";
import { parseListen, type ListenSpec } from "./listen.ts";

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
  | { type: "ready"; addresses: (string | { address: string; port: number })[] }
  | { type: "boot-error"; code: string; message: string };

function send(msg: WorkerMessage): void {
  process.send?.(msg);
}

function listen(server: net.Server, spec: ListenSpec): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if ("path" in spec) server.listen({ path: spec.path }, done);
    else server.listen({ host: spec.host, port: spec.port }, done);
  });
}

export async function runWorker(cfg: WorkerConfig): Promise<void> {
  process.title = `tsgi: ${cfg.site} worker ${cfg.index}`;
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
  for (const text of cfg.listen) {
    const spec = parseListen(text);
    const server =
      spec.protocol === "fastcgi" ? createFastCgiServer(site) : spec.protocol === "uwsgi" ? createUwsgiServer(site) : createHttpServer(site);
    await listen(server, spec);
    servers.push(server);
  }
  send({
    type: "ready",
    addresses: servers.map((s) => {
      const a = s.address();
      return typeof a === "string" || a === null ? String(a) : { address: a.address, port: a.port };
    }),
  });

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    site.stopping = true;
    // Requests in flight finish; connections close as they fall idle (Site.stopping); the
    // process exits once every server has closed, so no response is cut in a write queue.
    let open = servers.length;
    const exitIfClosed = () => {
      if (--open === 0) process.exit(0);
    };
    for (const s of servers) {
      s.close(exitIfClosed);
      (s as { closeIdleConnections?: () => void }).closeIdleConnections?.();
    }
    site.closeIdleConnections();
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

// A worker process of a site's process group: imports the application before it accepts (a
// site that cannot import fails at boot, not on its first request, and the master reports
// why), accepts on the sockets its master bound (descriptors 4, 5, … in `listen` order,
// inherited through the stdio table), serves, asks the master for its replacement when it
// reached `max-requests`, sat idle for `inactivity-timeout`, caught an exception nothing
// handled or holds a request that went on `graceful-timeout` past its `request-timeout`, and
// on "stop" (or when its master is gone) stops accepting and lets requests in flight finish
// within graceful-timeout. No application behaviour and no client ends it.

import type http from "node:http";
import type net from "node:net";
import { tsgiError } from "../errors.ts";
import { applicationFrames, createLogger, logDestination, reopenLogFiles, type Logger } from "../log.ts";
import { binding } from "../native.ts";
import { serveFastCgi } from "../protocol/fastcgi-native.ts";
import { createHttpServer, drainHttpServer } from "../protocol/http.ts";
import type { NativeListener } from "../protocol/native-listener.ts";
import { Site } from "../protocol/site.ts";
import { serveUwsgi } from "../protocol/uwsgi-native.ts";
import { loadSettings } from "../project/settings.ts";
import { AllowList } from "./allow.ts";
import { Handoffs, adopt, stopReading } from "./handoff.ts";
import { loadApplication } from "./app.ts";
import { parseListen } from "./listen.ts";
import type { SiteSettings } from "./settings/index.ts";
import { StatusPages, type StatusSnapshot } from "./status-page.ts";

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
  multiprocess: boolean;
  settings: SiteSettings;
  /** Started as root: who to become before anything of the application runs. */
  identity: { user: string | null; uid: number | null; gid: number | null } | null;
}

/** Worker → master, over the IPC channel. */
export type WorkerMessage =
  | { type: "ready" }
  /** Why the application cannot be imported: its code, its one-line message, the application's frames. */
  | { type: "boot-error"; code: string; message: string; frames: string[] }
  /** Start my replacement, then stop me (max-requests, inactivity-timeout, an uncaught exception). */
  | { type: "recycle"; reason: string }
  /** ondemand: idle for inactivity-timeout; stop me and start no replacement. */
  | { type: "idle" }
  /** Every HEARTBEAT_MS while serving: alive (a worker stuck in a loop stops beating and is replaced), and its figures for `tsgi status`. */
  | { type: "heartbeat"; served: number; inFlight: number; rss: number }
  /** Draining: a FastCGI persistent connection of listener `listen` (its text in the site's settings), sent with its socket, for another worker of the site. */
  | { type: "handoff"; listen: string };

/** Master → worker. */
export type MasterMessage =
  | { type: "stop" }
  | { type: "reopen-logs" }
  /** A persistent connection another worker of the site handed off, sent with its socket: serve it on listener `listen`. */
  | { type: "handoff"; listen: string }
  /** The site's status, in answer to a heartbeat, for its status page and metrics (sites with `status` or `metrics` only). */
  | ({ type: "status" } & StatusSnapshot);

function send(msg: WorkerMessage): void {
  if (process.connected) process.send?.(msg);
}

/** How often a ready worker tells its master it is alive. */
export const HEARTBEAT_MS = 1000;

/**
 * Becomes the site's user through libc (initgroups, setgid, setuid: NSS users and their
 * supplementary groups, as every other daemon does), before the application is imported.
 */
function dropPrivileges(id: NonNullable<WorkerConfig["identity"]>): void {
  // Node has it on POSIX; @types/node leaves it out.
  const initgroups = (process as { initgroups?: (user: string | number, extraGroup: string | number) => void }).initgroups!;
  if (id.user !== null) initgroups(id.user, id.gid ?? id.user);
  else if (id.gid !== null) process.setgroups!([id.gid]);
  if (id.gid !== null) process.setgid!(id.gid);
  if (id.uid !== null) process.setuid!(id.uid);
}

/** The first inherited listening socket: fd 3 is the IPC channel to the master. */
export const FIRST_LISTEN_FD = 4;

/** Accepts on an inherited listening socket. */
function listenOnFd(server: http.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ fd }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** `max-requests` with up to 10 % jitter, so that a group's workers do not recycle at once. */
function requestBudget(maxRequests: number): number {
  if (maxRequests <= 0) return Number.POSITIVE_INFINITY;
  return maxRequests + Math.floor(Math.random() * (Math.floor(maxRequests / 10) + 1));
}

export async function runWorker(cfg: WorkerConfig): Promise<void> {
  const s = cfg.settings;
  process.title = `tsgi: ${cfg.site} worker ${cfg.index}`;
  if (cfg.identity) dropPrivileges(cfg.identity);
  const trim = Number(process.env.TSGI_MALLOC_TRIM ?? MALLOC_TRIM_BYTES);
  if (Number.isInteger(trim) && trim > 0 && trim < 2 ** 31) binding.mallocTrimThreshold(trim);
  const log = createLogger(cfg.site, {
    error: logDestination(s["error-log"] ?? "-", process.stderr, "error-log") ?? process.stderr,
    access: logDestination(s["access-log"] ?? "-", process.stdout, "access-log"),
  });

  let recycling = false;
  const recycle = (reason: string) => {
    if (recycling) return;
    recycling = true;
    send({ type: "recycle", reason });
  };
  // Nothing an application does may end the worker and the requests in flight with it. A
  // rejection nobody handles is logged; an uncaught exception may have left the process in
  // any state, so the worker finishes what it serves and is replaced.
  process.on("unhandledRejection", (reason) => {
    log.error(`worker ${cfg.index}: a promise rejected and nothing handled it (the worker goes on)`, reason);
  });
  process.on("uncaughtException", (err) => {
    log.error(`worker ${cfg.index}: an exception nothing caught; the worker finishes its requests and is replaced`, err);
    recycle("an uncaught exception");
  });

  let app;
  try {
    if (s.cwd) process.chdir(s.cwd);
    app = await loadApplication(s.app ?? (await applicationOfSettings(s.settings)), process.cwd());
  } catch (err) {
    // The master writes it to the error log, once for the whole group. The message must reach
    // it before the exit: exit in the send's callback.
    const e = err as Error & { code?: string };
    const cause = e.cause instanceof Error ? e.cause : e;
    const msg: WorkerMessage = { type: "boot-error", code: e.code ?? "TSGI_ERR_APP_IMPORT", message: e.message ?? String(err), frames: applicationFrames(cause.stack) };
    if (process.connected) process.send!(msg, () => process.exit(WORKER_BOOT_ERROR));
    else process.exit(WORKER_BOOT_ERROR);
    return;
  }

  const allow = new AllowList(s.allow);
  // The site's figures for the page come with the master's answers to the heartbeats.
  const pages = StatusPages.wanted(s)
    ? new StatusPages({ status: s.status ?? "", metrics: s.metrics ?? "", allow, self: () => ({ served: site.served, inFlight: site.inFlight, rssBytes: process.memoryUsage.rss() }) })
    : null;
  const site: Site = new Site({
    name: cfg.site,
    app,
    mount: s.mount ?? "",
    debug: s.debug,
    maxParams: s["max-params"],
    maxBody: s["max-body"],
    requestTimeout: s["request-timeout"],
    stuckTimeout: s["graceful-timeout"],
    headerTimeout: s["header-timeout"],
    maxConnections: s["max-connections"],
    concurrency: s.concurrency,
    multiprocess: cfg.multiprocess,
    log,
    allow,
    builtin: pages,
  });
  const servers: http.Server[] = [];
  const natives: NativeListener[] = [];
  const fastcgi = new Map<string, NativeListener>();
  const handoffs = new Handoffs(log, cfg.index);
  for (const [i, text] of s.listen.entries()) {
    const spec = parseListen(text);
    const fd = FIRST_LISTEN_FD + i;
    // FastCGI and uwsgi sockets go to the native bridge (DESIGN §2): a net.Socket per
    // connection costs more than a request. HTTP (development, no front server) is node:http.
    const isPipe = "path" in spec;
    if (spec.protocol === "fastcgi") {
      const native = serveFastCgi(site, fd, isPipe, (socket) => handoffs.send(text, socket));
      natives.push(native);
      fastcgi.set(text, native);
    }
    else if (spec.protocol === "uwsgi") natives.push(serveUwsgi(site, fd, isPipe));
    else {
      const server = createHttpServer(site, isPipe);
      await listenOnFd(server, fd);
      servers.push(server);
    }
  }
  site.onSaturated = (saturated) => {
    for (const n of natives) {
      if (!n.pauseAccept(saturated)) log.error(`worker ${cfg.index}: cannot accept again after reaching concurrency`);
    }
  };
  watchLifetime(site, s, log, cfg.index, recycle);
  site.onStuck = recycle;
  send({ type: "ready" });
  const beat = () => send({ type: "heartbeat", served: site.served, inFlight: site.inFlight, rss: process.memoryUsage.rss() });
  setInterval(beat, HEARTBEAT_MS).unref();
  // The first snapshot for the status page now, not a heartbeat later.
  if (pages) beat();

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    beat();
    // Requests in flight finish; the process exits once every listener has closed and every
    // connection is gone, so no response is cut in a queue. No HTTP keep-alive connection is
    // closed under its client (drainHttpServer).
    let open = servers.length;
    for (const server of servers) drainHttpServer(server, () => open--);
    // An idle persistent connection (FastCGI keep-conn) may carry a request from the front
    // server this instant: closing one under nginx's keepalive cache loses that request (it
    // did even 2 s into the drain, under load, and with the FIN sent together with the last
    // response when CPUs are contended). So none is closed: each, between requests, goes to
    // another worker of the site through the master (a socket passed over IPC, what is
    // unread still in it); when no worker takes it, it closes after its next response, or at
    // graceful-timeout. uwsgi connections carry one request each (nothing to hand off).
    for (const n of natives) n.close(true, n instanceof binding.FastCgiServer);
    setInterval(() => {
      if (open <= 0 && natives.every((n) => n.connections === 0) && handoffs.pending === 0) {
        if (handoffs.sent > 0) log.info(`worker ${cfg.index} handed ${handoffs.sent} persistent connections to the site's other workers`);
        process.exit(0);
      }
    }, 10);
    setTimeout(() => {
      if (site.inFlight > 0) log.warn(`worker ${cfg.index} stops with ${site.inFlight} requests still in flight after graceful-timeout`);
      process.exit(0);
    }, s["graceful-timeout"]).unref();
  };
  process.on("message", (msg: MasterMessage, handle?: net.Socket) => {
    if (msg?.type === "handoff") {
      stopReading(handle);
      // One sent as this worker began to drain goes back, for another worker.
      if (stopping && handle) handoffs.pass(msg.listen, handle);
      else adopt(fastcgi.get(msg.listen), handle, log, cfg.index);
    }
    else if (msg?.type === "stop") stop();
    else if (msg?.type === "reopen-logs") reopen(log, cfg.index);
    else if (msg?.type === "status") pages?.update(msg);
  });
  // The master is gone (killed, even with -9): a worker without a master stops.
  process.on("disconnect", stop);
  // SIGTERM stops as "stop" does; a second one (the master's after graceful-timeout) at once.
  process.on("SIGTERM", () => (stopping ? process.exit(0) : stop()));
  process.on("SIGUSR1", () => reopen(log, cfg.index));
  // The master handles SIGINT for the whole group (a terminal sends it to every process).
  process.on("SIGINT", () => undefined);
}

function reopen(log: Logger, index: number): void {
  for (const failure of reopenLogFiles()) log.error(`worker ${index} cannot reopen a log file: ${failure}`);
}

/** `ondemand` with inactivity-timeout 0: idle workers stop after PHP-FPM's default pm.process_idle_timeout. */
export const ONDEMAND_IDLE_MS = 10_000;

/**
 * max-requests and inactivity-timeout: when either is reached, the worker asks to be replaced
 * (ondemand: an idle worker asks to stop).
 */
function watchLifetime(site: Site, s: SiteSettings, log: Logger, index: number, recycle: (reason: string) => void): void {
  const budget = requestBudget(s["max-requests"]);
  const idleMs = s.ondemand && s["inactivity-timeout"] === 0 ? ONDEMAND_IDLE_MS : s["inactivity-timeout"];
  let lastDone = 0;
  let idleTimer: NodeJS.Timeout | null = null;
  let gone = false;
  // As mod_wsgi's inactivity-timeout: counted from the end of the last request, so a worker
  // that has served nothing since it started is never recycled for idling. An ondemand
  // worker counts from its start too: one started for a connection that sent nothing stops.
  const checkIdle = () => {
    idleTimer = null;
    const idle = Date.now() - lastDone;
    if (site.inFlight > 0 || gone) return;
    if (idle >= idleMs) {
      if (s.ondemand) {
        gone = true;
        log.info(`worker ${index} idle for ${Math.round(idle / 1000)}s (inactivity-timeout): stopping it (ondemand)`);
        send({ type: "idle" });
        return;
      }
      log.info(`worker ${index} idle for ${Math.round(idle / 1000)}s (inactivity-timeout): replacing it`);
      recycle("inactivity-timeout");
    } else {
      idleTimer = setTimeout(checkIdle, idleMs - idle);
      idleTimer.unref();
    }
  };
  if (s.ondemand) {
    lastDone = Date.now();
    idleTimer = setTimeout(checkIdle, idleMs);
    idleTimer.unref();
  }
  site.afterRequest = () => {
    if (site.served >= budget) recycle(`max-requests (${site.served} served)`);
    if (idleMs > 0 && site.inFlight === 0) {
      lastDone = Date.now();
      if (!idleTimer) {
        idleTimer = setTimeout(checkIdle, idleMs);
        idleTimer.unref();
      }
    }
  };
}

/** A site without `app`: the TSGI_APPLICATION of its settings module (tsgi.toml's `settings`). */
async function applicationOfSettings(module: string | null): Promise<string> {
  const settings = await loadSettings(process.cwd(), module ?? undefined);
  if (!settings.TSGI_APPLICATION) throw tsgiError("TSGI_ERR_SETTINGS_NO_APPLICATION", { module: settings.module });
  return settings.TSGI_APPLICATION;
}

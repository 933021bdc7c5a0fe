// A site's process group, seen from the master (mod_wsgi's WSGIDaemonProcess, PHP-FPM's
// pool): binds the site's sockets once (native socket/bind/listen: the master never accepts;
// a unix socket another process answers on is refused, a stale one replaced, and at stop only
// the socket file this pool created is removed), forks `processes` workers (child_process.fork
// of bin/tsgi.js) with the sockets in their stdio table (fd 4 onwards, in `listen` order; each
// worker accepts), replaces a worker that dies, retries one that dies at boot with exponential
// backoff, replaces a worker that asks for it (max-requests, inactivity-timeout, an uncaught
// exception) by starting the new one first, reloads the same way, and stops gracefully.
// Issue 9 turns this into the daemon's reconciler; this is the one group of `tsgi serve`.

import { fork, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { tsgiError, type TsgiError } from "../errors.ts";
import { prepareLogFile, reopenLogFiles, summarize, type Logger } from "../log.ts";
import { binding } from "../native.ts";
import { BIN } from "../paths.ts";
import { describeListen, parseListen, type ListenSpec } from "./listen.ts";
import type { SiteSettings } from "./settings/index.ts";
import { resolveGroup, resolveUser } from "./users.ts";
import { WORKER_BOOT_ERROR, type MasterMessage, type WorkerConfig, type WorkerMessage } from "./worker.ts";

export type PoolState = "starting" | "running" | "reloading" | "failed" | "stopping" | "stopped";

export interface PoolConfig {
  site: string;
  /** The site's settings; `cwd` absolute. */
  settings: SiteSettings;
}

interface Slot {
  worker: ChildProcess;
  index: number;
  ready: boolean;
  /** Stopped on purpose (reload, recycle, stop): its exit is not a crash. */
  retired: boolean;
  startedAt: number;
  readyAt: number;
  /** Why the previous worker in this place went away. */
  lastRestart: string | null;
  /** Resolves when the process exited (or was given up on after SIGKILL). */
  exited: Promise<void>;
  gone: () => void;
}

/** A worker's boot: ready, or why not (`error`: what the worker reported, when it could). */
type Boot = { slot: Slot } | { failed: string; error: Error | null };

const BOOT_ATTEMPTS = 5;
const BACKOFF_MS = 100;
/** A worker that crashes sooner than this after it was ready is restarted with a delay (a crash on every first request is no loop). */
const CRASH_GRACE_MS = 1000;
const MAX_CRASH_DELAY_MS = 5000;
const BACKLOG = 511;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether something accepts connections on the unix socket `path` (a stale file refuses them). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path });
    const timer = setTimeout(() => {
      // A connect that hangs is a listener with a full queue: alive.
      sock.destroy();
      resolve(true);
    }, 1000);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") resolve(false);
      else reject(err);
    });
  });
}

export class Pool {
  state: PoolState = "starting";
  failure: string | null = null;
  readonly #site: string;
  readonly #s: SiteSettings;
  readonly #log: Logger;
  readonly #specs: ListenSpec[];
  /** The bound sockets, in `listen` order: the master's descriptors and the TCP ports. */
  #sockets: { fd: number; port?: number }[] = [];
  /** The unix socket files this pool created: removed at stop only while they are still these. */
  #socketFiles: { path: string; dev: number; ino: number }[] = [];
  /** The current worker of each place (1…processes). */
  #slots = new Map<number, Slot>();
  /** Every worker forked and not yet exited: booting, current or retired. */
  #children = new Set<Slot>();
  #reloading: Promise<void> | null = null;
  #reloadAgain = false;
  #recycles: Promise<void> = Promise.resolve();
  #crashes = 0;
  readonly #ids: { uid?: number; gid?: number };
  readonly #socketIds: { uid: number; gid: number } | null;

  constructor(cfg: PoolConfig, log: Logger) {
    this.#site = cfg.site;
    this.#s = cfg.settings;
    this.#log = log;
    this.#specs = this.#s.listen.map(parseListen);
    const s = this.#s;
    const root = process.getuid?.() === 0;
    const user = s.user ? resolveUser(s.user) : null;
    const gid = s.group ? resolveGroup(s.group) : user?.gid;
    const owner = s["socket-owner"] ? resolveUser(s["socket-owner"], "socket-owner").uid : user?.uid;
    const ownerGroup = s["socket-group"] ? resolveGroup(s["socket-group"], "socket-group") : gid;
    if (!root) {
      // Without root nothing can change hands: a setting that asks for it is an error, not a no-op.
      const uid = process.getuid?.();
      const myGid = process.getgid?.();
      const needsRoot = (key: string, value: string) =>
        tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `${JSON.stringify(value)} is another identity than tsgi's own (uid ${uid}); that needs tsgi started as root` });
      if (s.user && user!.uid !== uid) throw needsRoot("user", s.user);
      if (s.group && gid !== myGid && !process.getgroups?.().includes(gid!)) throw needsRoot("group", s.group);
      if (s["socket-owner"] && owner !== uid) throw needsRoot("socket-owner", s["socket-owner"]);
    }
    this.#ids = root && user ? { uid: user.uid, gid } : root && gid !== undefined ? { gid } : {};
    this.#socketIds =
      owner !== undefined || ownerGroup !== undefined ? { uid: owner ?? process.getuid?.() ?? 0, gid: ownerGroup ?? process.getgid?.() ?? 0 } : null;
  }

  get workers(): { pid: number; index: number; ready: boolean; uptime: number; lastRestart: string | null }[] {
    return [...this.#slots.values()].map((s) => ({
      pid: s.worker.pid ?? 0,
      index: s.index,
      ready: s.ready,
      uptime: (Date.now() - s.startedAt) / 1000,
      lastRestart: s.lastRestart,
    }));
  }

  /** Starts the group; resolves with the addresses once every worker is ready, rejects (TSGI_ERR_POOL_BOOT) if they cannot boot. */
  async start(): Promise<string[]> {
    await this.#bindSockets();
    this.#prepareLogs();
    const booted = await Promise.allSettled(Array.from({ length: this.#s.processes }, (_, i) => this.#boot(i + 1, null)));
    const failed = booted.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      for (const r of booted) if (r.status === "fulfilled") void this.#retire(r.value);
      this.state = "failed";
      this.failure = summarize(failed.reason);
      throw failed.reason;
    }
    for (const r of booted) this.#install((r as PromiseFulfilledResult<Slot>).value);
    this.state = "running";
    return this.#specs.map((spec, i) => describeListen(spec, this.#sockets[i]?.port));
  }

  /**
   * New workers start and are ready before the old ones stop accepting and drain. A reload
   * asked for while one runs is done once more after it (never two at once).
   */
  reload(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") return Promise.resolve();
    if (this.#reloading) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    this.#reloading = (async () => {
      do {
        this.#reloadAgain = false;
        await this.#reloadOnce();
      } while (this.#reloadAgain && this.state !== "stopping" && this.state !== "stopped");
    })().finally(() => {
      this.#reloading = null;
    });
    return this.#reloading;
  }

  async #reloadOnce(): Promise<void> {
    this.state = "reloading";
    const places = Array.from({ length: this.#s.processes }, (_, i) => i + 1);
    const booted = await Promise.allSettled(places.map((i) => this.#boot(i, "reload")));
    if (this.#stopping()) {
      for (const r of booted) if (r.status === "fulfilled") void this.#retire(r.value);
      return;
    }
    const failed = booted.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      for (const r of booted) if (r.status === "fulfilled") void this.#retire(r.value);
      this.#log.error("reload failed; the old workers keep serving", failed.reason);
    } else {
      for (const r of booted) this.#install((r as PromiseFulfilledResult<Slot>).value);
      this.#log.info(`reloaded: ${places.length} new worker${places.length > 1 ? "s" : ""} serving`);
    }
    this.state = "running";
  }

  /** Graceful stop: workers stop accepting, finish their requests, exit; then TERM, then KILL. */
  async stop(): Promise<void> {
    this.state = "stopping";
    this.#slots.clear();
    // Booting workers too: one that would become ready after this must not serve on.
    await Promise.all([...this.#children].map((s) => this.#retire(s)));
    this.#removeSockets();
    this.state = "stopped";
  }

  /** SIGINT twice: stop at once. */
  kill(): void {
    this.state = "stopping";
    for (const s of this.#children) s.worker.kill("SIGKILL");
    this.#removeSockets();
  }

  /** SIGUSR1: the log files are opened again, the master's and every worker's. */
  reopenLogs(): void {
    try {
      this.#prepareLogs();
    } catch (err) {
      this.#log.error("cannot reopen the log files", err);
      return;
    }
    for (const failure of reopenLogFiles()) this.#log.error(`cannot reopen a log file: ${failure}`);
    const msg: MasterMessage = { type: "reopen-logs" };
    for (const s of this.#children) if (s.worker.connected) s.worker.send(msg);
  }

  #stopping(): boolean {
    return this.state === "stopping" || this.state === "stopped";
  }

  /** A booted worker becomes the current one of its place; the one it replaces is retired. */
  #install(slot: Slot): void {
    const old = this.#slots.get(slot.index);
    this.#slots.set(slot.index, slot);
    if (old && old !== slot) void this.#retire(old);
  }

  // ---- workers ----

  #workerEnv(index: number): Record<string, string> {
    const s = this.#s;
    const cfg: WorkerConfig = { site: this.#site, index, multiprocess: s.processes > 1, settings: s };
    const base = s["clear-env"] ? {} : (process.env as Record<string, string>);
    const env: Record<string, string> = { ...base, ...s.env, TSGI_WORKER: JSON.stringify(cfg) };
    if (s["clear-env"] && process.env.PATH && !s.env.PATH) env.PATH = process.env.PATH;
    // `settings` goes verbatim into the workers' TSGI_SETTINGS_MODULE and wins over an inherited one.
    if (s.settings) env.TSGI_SETTINGS_MODULE = s.settings;
    return env;
  }

  /** Forks a worker for place `index` until it is ready; retried with backoff when it dies at start-up. */
  async #boot(index: number, reason: string | null): Promise<Slot> {
    for (let attempt = 1; ; attempt++) {
      const r = await this.#fork(index, reason);
      if ("slot" in r) return r.slot;
      if (this.#stopping()) throw tsgiError("TSGI_ERR_POOL_BOOT", { site: this.#site, reason: "the site is stopping" });
      // The application cannot be imported: as the worker said it (code, message, frames), once.
      if (r.error) throw r.error;
      if (attempt >= BOOT_ATTEMPTS) throw tsgiError("TSGI_ERR_POOL_BOOT", { site: this.#site, reason: `worker ${index} ${r.failed} (${attempt} attempts)` });
      const delay = BACKOFF_MS * 2 ** (attempt - 1);
      this.#log.warn(`worker ${index} died at start-up (${r.failed}); retrying in ${delay} ms`);
      await sleep(delay);
      if (this.#stopping()) throw tsgiError("TSGI_ERR_POOL_BOOT", { site: this.#site, reason: "the site is stopping" });
      reason = r.failed;
    }
  }

  #fork(index: number, reason: string | null): Promise<Boot> {
    return new Promise((resolve) => {
      const worker = fork(BIN, [], {
        env: this.#workerEnv(index),
        stdio: ["inherit", "inherit", "inherit", "ipc", ...this.#sockets.map((s) => s.fd)],
        ...this.#ids,
      });
      let gone!: () => void;
      const exited = new Promise<void>((r) => (gone = r));
      const slot: Slot = { worker, index, ready: false, retired: false, startedAt: Date.now(), readyAt: 0, lastRestart: reason, exited, gone };
      this.#children.add(slot);
      let bootError: Error | null = null;
      worker.on("message", (msg: WorkerMessage) => {
        if (msg.type === "boot-error") bootError = Object.assign(new Error(msg.message), { code: msg.code, frames: msg.frames });
        else if (msg.type === "ready" && !slot.ready) {
          slot.ready = true;
          slot.readyAt = Date.now();
          resolve({ slot });
        } else if (msg.type === "recycle") this.#recycle(slot, msg.reason);
      });
      let forkError: string | null = null;
      worker.on("error", (err) => {
        if (!slot.ready) forkError ??= `cannot start a worker: ${err.message}`;
      });
      worker.on("exit", (code, signal) => {
        this.#children.delete(slot);
        gone();
        if (!slot.ready) {
          const failed = forkError ?? `exited with ${signal ?? `status ${code}`} before it was ready`;
          resolve({ failed, error: code === WORKER_BOOT_ERROR ? (bootError ?? tsgiError("TSGI_ERR_POOL_BOOT", { site: this.#site, reason: failed })) : null });
          return;
        }
        this.#exitedAfterReady(slot, code, signal);
      });
    });
  }

  /** A ready worker exited: a crash unless it was retired; the place gets a new worker. */
  #exitedAfterReady(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.retired || this.#slots.get(slot.index) !== slot || this.#stopping()) return;
    this.#slots.delete(slot.index);
    const why = signal ? `killed by ${signal}` : `exited with status ${code}`;
    const early = Date.now() - slot.readyAt < CRASH_GRACE_MS;
    this.#crashes = early ? this.#crashes + 1 : 0;
    const delay = early ? Math.min(MAX_CRASH_DELAY_MS, BACKOFF_MS * 2 ** (this.#crashes - 1)) : 0;
    this.#log.error(`worker ${slot.index} (pid ${slot.worker.pid}) ${why}; starting a new one${delay ? ` in ${delay} ms` : ""}`);
    void sleep(delay)
      .then(() => (this.#stopping() || this.#slots.has(slot.index) ? null : this.#boot(slot.index, why)))
      .then(
        (fresh) => {
          if (!fresh) return;
          if (this.#stopping()) void this.#retire(fresh);
          else this.#install(fresh);
        },
        (err: TsgiError) => {
          this.state = "failed";
          this.failure = summarize(err);
          this.#log.error(`worker ${slot.index} cannot be replaced`, err);
        },
      );
  }

  /** A worker asked to be replaced: its successor starts first; one such replacement at a time. */
  #recycle(slot: Slot, reason: string): void {
    this.#recycles = this.#recycles.then(async () => {
      if (slot.retired || this.#slots.get(slot.index) !== slot || this.state !== "running") return;
      this.#log.info(`worker ${slot.index} (pid ${slot.worker.pid}) is replaced: ${reason}`);
      try {
        const fresh = await this.#boot(slot.index, reason);
        if (this.#stopping() || slot.retired) void this.#retire(fresh);
        else this.#install(fresh);
      } catch (err) {
        this.#log.error(`worker ${slot.index} could not be replaced (${reason}); it keeps serving`, err);
      }
    });
  }

  #retire(slot: Slot): Promise<void> {
    if (slot.retired) return slot.exited;
    slot.retired = true;
    const worker = slot.worker;
    if (worker.exitCode !== null || worker.signalCode !== null) return slot.exited;
    const kill = setTimeout(() => {
      this.#log.warn(`worker ${slot.index} (pid ${worker.pid}) did not stop within graceful-timeout; killing it`);
      worker.kill("SIGKILL");
      // A process that cannot even be killed (stuck in the kernel) must not hold the stop.
      setTimeout(() => {
        this.#children.delete(slot);
        slot.gone();
      }, 5000).unref();
    }, this.#s["graceful-timeout"] + 2000);
    void slot.exited.then(() => clearTimeout(kill));
    // A worker still booting, or one that lost its IPC channel, gets SIGTERM: the same stop.
    const msg: MasterMessage = { type: "stop" };
    if (worker.connected && slot.ready) worker.send(msg);
    else worker.kill("SIGTERM");
    return slot.exited;
  }

  // ---- sockets and log files ----

  /**
   * Binds every listener once. A unix socket path another process answers on is refused (two
   * sites on one socket would take turns at random, and the second's stop would unlink the
   * first's socket); a socket file nothing answers on is stale (a crash left it) and replaced.
   */
  async #bindSockets(): Promise<void> {
    if (this.#sockets.length > 0) return;
    try {
      for (const spec of this.#specs) {
        if ("path" in spec) this.#sockets.push(await this.#bindUnix(spec.path));
        else this.#sockets.push(this.#bindTcp(spec.host, spec.port));
      }
    } catch (err) {
      this.#removeSockets();
      throw err;
    }
  }

  async #bindUnix(path: string): Promise<{ fd: number }> {
    let existing;
    try {
      existing = lstatSync(path);
    } catch {
      existing = null;
    }
    if (existing) {
      if (!existing.isSocket()) throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: "the path exists and is not a socket" });
      let alive: boolean;
      try {
        alive = await answers(path);
      } catch (err) {
        throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: `cannot tell whether another process serves on it (${summarize(err)})` });
      }
      if (alive) throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: "another process answers on it" });
      unlinkSync(path);
    }
    let fd: number;
    try {
      fd = binding.bindUnix(path, BACKLOG).fd;
    } catch (err) {
      throw tsgiError("TSGI_ERR_MASTER_LISTEN", { address: `unix:${path}`, reason: (err as Error).message });
    }
    const st = statSync(path);
    this.#socketFiles.push({ path, dev: st.dev, ino: st.ino });
    chmodSync(path, this.#s["socket-mode"]);
    if (this.#socketIds) chownSync(path, this.#socketIds.uid, this.#socketIds.gid);
    return { fd };
  }

  #bindTcp(host: string, port: number): { fd: number; port: number } {
    try {
      return binding.bindTcp(host, port, BACKLOG);
    } catch (err) {
      throw tsgiError("TSGI_ERR_MASTER_LISTEN", { address: `${host.includes(":") ? `[${host}]` : host}:${port}`, reason: (err as Error).message });
    }
  }

  #removeSockets(): void {
    for (const s of this.#sockets) binding.closeFd(s.fd);
    this.#sockets = [];
    for (const { path, dev, ino } of this.#socketFiles) {
      try {
        const st = lstatSync(path);
        if (st.dev === dev && st.ino === ino) unlinkSync(path);
        else this.#log.warn(`${path} is no longer the socket this site created; left in place`);
      } catch {
        // already gone
      }
    }
    this.#socketFiles = [];
  }

  /** Log files exist and belong to the workers' user before the workers open them. */
  #prepareLogs(): void {
    const owner = this.#ids.uid !== undefined ? { uid: this.#ids.uid, gid: this.#ids.gid ?? this.#ids.uid } : null;
    for (const key of ["access-log", "error-log"] as const) {
      const where = this.#s[key];
      if (where && where !== "-" && where !== "off") prepareLogFile(where, owner, key);
    }
  }
}

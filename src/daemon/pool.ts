// A site's process group, seen from the master (mod_wsgi's WSGIDaemonProcess, PHP-FPM's
// pool): binds the site's sockets once (native socket/bind/listen: the master never
// accepts), forks `processes` workers (child_process.fork of bin/tsgi.js) with the sockets
// in their stdio table (fd 4 onwards, in `listen` order; each worker accepts), replaces a worker that dies, retries one that
// dies at boot with exponential backoff and marks the site failed after a few tries, reloads
// by starting new workers before stopping old ones, and stops gracefully.

import { fork, type ChildProcess } from "node:child_process";
import { BIN } from "../paths.ts";
import { chmodSync, chownSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import type { Logger } from "../log.ts";
import { binding } from "../native.ts";
import { describeListen, parseListen, type ListenSpec } from "./listen.ts";
import { resolveGroup, resolveUser } from "./users.ts";
import { WORKER_BOOT_ERROR, type WorkerConfig, type WorkerMessage } from "./worker.ts";

export type PoolState = "starting" | "running" | "reloading" | "failed" | "stopping" | "stopped";

export interface PoolConfig extends Omit<WorkerConfig, "index" | "multiprocess"> {
  processes: number;
  socketMode: number;
  /** Workers run as this user/group when the master is root. */
  user: string | null;
  group: string | null;
  /** Unix sockets are owned by these (default: the site's user and group). */
  socketOwner: string | null;
  socketGroup: string | null;
  env: Record<string, string>;
  clearEnv: boolean;
  settings: string | null;
}

type Worker = ChildProcess & { tsgiRetired?: boolean };

const WORKER_ENTRY = BIN;

function isDead(worker: ChildProcess): boolean {
  return worker.exitCode !== null || worker.signalCode !== null;
}

interface Slot {
  worker: Worker;
  index: number;
  generation: number;
  ready: boolean;
  startedAt: number;
  /** Why the previous worker in this slot went away. */
  lastRestart: string | null;
}

const BOOT_ATTEMPTS = 5;
const BACKOFF_MS = 100;

export class Pool {
  state: PoolState = "starting";
  failure: string | null = null;
  readonly #cfg: PoolConfig;
  readonly #log: Logger;
  readonly #specs: ListenSpec[];
  /** The bound sockets, in `listen` order: the master's descriptors and the TCP ports. */
  #sockets: { fd: number; port?: number }[] = [];
  #slots = new Map<number, Slot>();
  #generation = 0;
  #bootFailures = 0;
  #socketsPrepared = false;
  readonly #ids: { uid?: number; gid?: number };
  readonly #socketIds: { uid: number; gid: number } | null;

  constructor(cfg: PoolConfig, log: Logger) {
    this.#cfg = cfg;
    this.#log = log;
    this.#specs = cfg.listen.map(parseListen);
    const root = process.getuid?.() === 0;
    const user = cfg.user ? resolveUser(cfg.user) : null;
    const gid = cfg.group ? resolveGroup(cfg.group) : user?.gid;
    this.#ids = root && user ? { uid: user.uid, gid } : {};
    const owner = cfg.socketOwner ? resolveUser(cfg.socketOwner).uid : user?.uid;
    const ownerGroup = cfg.socketGroup ? resolveGroup(cfg.socketGroup) : gid;
    this.#socketIds = root && (owner !== undefined || ownerGroup !== undefined) ? { uid: owner ?? 0, gid: ownerGroup ?? 0 } : null;
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

  /** Starts the group; resolves with the addresses once every worker is ready, rejects if they cannot boot. */
  async start(): Promise<string[]> {
    this.#bindSockets();
    const generation = ++this.#generation;
    await Promise.all(Array.from({ length: this.#cfg.processes }, (_, i) => this.#spawn(i + 1, generation, null)));
    this.state = "running";
    return this.#specs.map((spec, i) => describeListen(spec, this.#sockets[i]?.port));
  }

  /** New workers start and are ready before the old ones stop accepting and drain. */
  async reload(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") return;
    this.state = "reloading";
    this.#bootFailures = 0;
    const old = [...this.#slots.values()];
    const generation = ++this.#generation;
    try {
      await Promise.all(old.map((s) => this.#spawn(s.index, generation, "reload")));
    } catch (err) {
      this.#log.error("reload failed; the old workers keep serving", err);
      this.state = "running";
      return;
    }
    for (const s of old) this.#retire(s);
    this.state = "running";
  }

  /** Graceful stop: workers stop accepting, finish their requests, exit; then TERM, then KILL. */
  async stop(): Promise<void> {
    this.state = "stopping";
    const slots = [...this.#slots.values()];
    await Promise.all(slots.map((s) => this.#retire(s)));
    this.#removeSockets();
    this.state = "stopped";
  }

  /** SIGINT twice: stop at once. */
  kill(): void {
    this.state = "stopping";
    for (const s of this.#slots.values()) s.worker.kill("SIGKILL");
    this.#removeSockets();
  }

  #workerEnv(index: number): Record<string, string> {
    const cfg: WorkerConfig = {
      site: this.#cfg.site,
      index,
      app: this.#cfg.app,
      cwd: this.#cfg.cwd,
      listen: this.#cfg.listen,
      mount: this.#cfg.mount,
      debug: this.#cfg.debug,
      maxParams: this.#cfg.maxParams,
      maxBody: this.#cfg.maxBody,
      requestTimeout: this.#cfg.requestTimeout,
      headerTimeout: this.#cfg.headerTimeout,
      gracefulTimeout: this.#cfg.gracefulTimeout,
      maxConnections: this.#cfg.maxConnections,
      multiprocess: this.#cfg.processes > 1,
    };
    const base = this.#cfg.clearEnv ? {} : (process.env as Record<string, string>);
    const env: Record<string, string> = { ...base, ...this.#cfg.env, TSGI_WORKER: JSON.stringify(cfg) };
    if (this.#cfg.clearEnv && process.env.PATH && !this.#cfg.env.PATH) env.PATH = process.env.PATH;
    // `settings` goes verbatim into the workers' TSGI_SETTINGS_MODULE and wins over an inherited one.
    if (this.#cfg.settings) env.TSGI_SETTINGS_MODULE = this.#cfg.settings;
    return env;
  }

  #spawn(index: number, generation: number, reason: string | null): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker: Worker = fork(WORKER_ENTRY, [], {
        env: this.#workerEnv(index),
        stdio: ["inherit", "inherit", "inherit", "ipc", ...this.#sockets.map((s) => s.fd)],
        ...this.#ids,
      });
      const slot: Slot = { worker, index, generation, ready: false, startedAt: Date.now(), lastRestart: reason };
      let bootError: string | null = null;
      worker.on("message", (msg: WorkerMessage) => {
        if (msg.type === "boot-error") bootError = `${msg.code}: ${msg.message}`;
        if (msg.type === "ready") {
          slot.ready = true;
          this.#bootFailures = 0;
          // A newer generation's worker takes the slot; the old one is retired by reload().
          this.#slots.set(index, slot);
          resolve();
        }
      });
      worker.on("exit", (code, signal) => {
        if (this.#slots.get(index) === slot) this.#slots.delete(index);
        if (!slot.ready) {
          const why = bootError ?? `exited with ${signal ?? `status ${code}`} before it was ready`;
          if (this.state === "stopping" || this.state === "stopped") return reject(new Error(why));
          this.#bootFailures++;
          if (code === WORKER_BOOT_ERROR || this.#bootFailures >= BOOT_ATTEMPTS) {
            this.state = "failed";
            this.failure = why;
            this.#log.error(`site ${this.#cfg.site} failed: ${why}`);
            return reject(new Error(why));
          }
          const delay = BACKOFF_MS * 2 ** (this.#bootFailures - 1);
          this.#log.warn(`worker ${index} died at start-up (${why}); retrying in ${delay} ms`);
          setTimeout(() => this.#spawn(index, generation, why).then(resolve, reject), delay);
          return;
        }
        if (slot.generation !== this.#generation || this.state === "stopping" || this.state === "stopped") return;
        if (worker.tsgiRetired) return;
        // A crash: replace the worker; the others and their requests are untouched.
        const why = signal ? `killed by ${signal}` : `exited with status ${code}`;
        this.#log.error(`worker ${index} (pid ${worker.pid}) ${why}; starting a new one`);
        void this.#spawn(index, generation, why).catch(() => undefined);
      });
    });
  }

  #retire(slot: Slot): Promise<void> {
    const worker = slot.worker;
    worker.tsgiRetired = true;
    return new Promise((resolve) => {
      if (isDead(worker)) return resolve();
      let giveUp: NodeJS.Timeout | undefined;
      const kill = setTimeout(() => {
        this.#log.warn(`worker ${slot.index} (pid ${worker.pid}) did not stop within graceful-timeout; killing it`);
        worker.kill("SIGKILL");
        // A process that cannot even be killed (stuck in the kernel) must not hold the stop.
        giveUp = setTimeout(resolve, 5000);
      }, this.#cfg.gracefulTimeout + 2000);
      worker.once("exit", () => {
        clearTimeout(kill);
        clearTimeout(giveUp);
        resolve();
      });
      // A worker that already lost its IPC channel gets SIGTERM, which it handles the same way.
      if (worker.connected) worker.send({ type: "stop" });
      else worker.kill("SIGTERM");
    });
  }

  /**
   * Binds every listener once. A stale unix socket file left by a crash would make the bind
   * fail with EADDRINUSE, so a socket file is removed first (never another kind of file).
   */
  #bindSockets(): void {
    if (this.#socketsPrepared) return;
    this.#socketsPrepared = true;
    const BACKLOG = 511;
    for (const spec of this.#specs) {
      if ("path" in spec) {
        if (existsSync(spec.path) && lstatSync(spec.path).isSocket()) unlinkSync(spec.path);
        const { fd } = binding.bindUnix(spec.path, BACKLOG);
        chmodSync(spec.path, this.#cfg.socketMode);
        if (this.#socketIds) chownSync(spec.path, this.#socketIds.uid, this.#socketIds.gid);
        this.#sockets.push({ fd });
      } else {
        this.#sockets.push(binding.bindTcp(spec.host, spec.port, BACKLOG));
      }
    }
  }

  #removeSockets(): void {
    for (const s of this.#sockets) binding.closeFd(s.fd);
    this.#sockets = [];
    for (const spec of this.#specs) {
      if ("path" in spec && existsSync(spec.path)) {
        try {
          unlinkSync(spec.path);
        } catch {
          // already gone
        }
      }
    }
  }
}

// A site's process group, the master's side of it (mod_wsgi's WSGIDaemonProcess, PHP-FPM's
// pool): the site's sockets (from the master's registry), its log files, and the workers,
// forked from bin/tsgi.js with the sockets in their stdio table (fd 4 onwards, in `listen`
// order). What to do with the workers is decided by the reconciler (group.ts); this file
// carries out its actions and turns a child's messages and exit into events for the master's
// loop. A reload with changed settings binds the new sockets first, and lets go of the old
// ones only once the new generation serves (or of the new ones, when it never does).

import { fork, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { tsgiError } from "../errors.ts";
import { prepareLogFile, type Logger } from "../log.ts";
import { binding, type ReadableWatch } from "../native.ts";
import { BIN } from "../paths.ts";
import { Group, type Action, type GroupState, type RestartCause } from "./group.ts";
import { socketFd, stopReading } from "./handoff.ts";
import { describeListen, parseListen } from "./listen.ts";
import type { SiteSettings } from "./settings/index.ts";
import type { BoundSocket, SocketRegistry } from "./sockets.ts";
import { resolveGroup, resolveUser } from "./users.ts";
import type { MasterMessage, WorkerConfig, WorkerMessage } from "./worker.ts";

/** What a group's children (and, ondemand, its listening sockets) tell the master's loop. */
export type ChildEvent =
  | { kind: "message"; group: ProcessGroup; pid: number; msg: WorkerMessage }
  | { kind: "exit"; group: ProcessGroup; pid: number; how: string }
  /** ondemand: a connection waits on one of the site's sockets. */
  | { kind: "demand"; group: ProcessGroup };

export interface GroupHost {
  enqueue(event: ChildEvent): void;
  readonly sockets: SocketRegistry;
}

export interface WorkerStatus {
  pid: number;
  index: number;
  generation: number;
  state: string;
  served: number;
  inFlight: number;
  rssBytes: number;
  uptimeSeconds: number;
  lastRestart: string | null;
}

export interface SiteStatus {
  name: string;
  state: GroupState;
  failure: string | null;
  generation: number;
  processes: number;
  listen: string[];
  workers: WorkerStatus[];
  /** Workers started in the place of another (or on demand), by cause. */
  restarts: Partial<Record<RestartCause, number>>;
  /** ondemand: persistent connections the master holds for the next worker (see ProcessGroup#hold). */
  heldConnections: number;
}

/** A front server's persistent connection the master holds while the site has no worker. */
interface Held {
  listen: string;
  socket: Socket;
  watch: ReadableWatch;
  armed: boolean;
}

/** Who the workers run as, and who owns the site's files. */
interface Identity {
  /** For the workers: drop to these (started as root). */
  user: string | null;
  uid?: number;
  gid?: number;
  /** For the socket files. */
  socketIds: { uid: number; gid: number } | null;
}

/** The identity a site's settings ask for, checked: without root nothing can change hands. */
export function identityOf(s: SiteSettings): Identity {
  const root = process.getuid?.() === 0;
  const user = s.user ? resolveUser(s.user) : null;
  const gid = s.group ? resolveGroup(s.group) : user?.gid;
  const owner = s["socket-owner"] ? resolveUser(s["socket-owner"], "socket-owner").uid : user?.uid;
  const ownerGroup = s["socket-group"] ? resolveGroup(s["socket-group"], "socket-group") : gid;
  if (!root) {
    // A setting that asks for another identity is an error, not a no-op.
    const uid = process.getuid?.();
    const myGid = process.getgid?.();
    const needsRoot = (key: string, value: string) =>
      tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `${JSON.stringify(value)} is another identity than tsgi's own (uid ${uid}); that needs tsgi started as root` });
    if (s.user && user!.uid !== uid) throw needsRoot("user", s.user);
    if (s.group && gid !== myGid && !process.getgroups?.().includes(gid!)) throw needsRoot("group", s.group);
    if (s["socket-owner"] && owner !== uid) throw needsRoot("socket-owner", s["socket-owner"]);
  }
  return {
    user: root && user ? user.name : null,
    uid: root && user ? user.uid : undefined,
    gid: root ? gid : undefined,
    socketIds:
      owner !== undefined || ownerGroup !== undefined ? { uid: owner ?? process.getuid?.() ?? 0, gid: ownerGroup ?? process.getgid?.() ?? 0 } : null,
  };
}

/** How long a ready worker may go without a heartbeat before it is killed as stuck. */
export const HEARTBEAT_TIMEOUT_MS = 30_000;

export class ProcessGroup {
  readonly name: string;
  readonly group: Group;
  readonly log: Logger;
  #settings: SiteSettings;
  #identity: Identity;
  #sockets: BoundSocket[] = [];
  readonly #host: GroupHost;
  readonly #children = new Map<number, ChildProcess>();
  /** Round-robin among the workers that may adopt a handed-off connection. */
  #handoffTurn = 0;
  /** ondemand: a watch per socket while a waiting connection would start a worker. */
  #watches: { sockets: BoundSocket[]; watches: ReadableWatch[]; armed: boolean } | null = null;
  /** ondemand: connections of workers that idled out, until a worker takes them or the front server closes them. */
  #held: Held[] = [];
  /** A reload with changed settings in progress: what to go back to if it never serves. */
  #pending: { generation: number; settings: SiteSettings; identity: Identity; sockets: BoundSocket[] } | null = null;

  constructor(name: string, settings: SiteSettings, host: GroupHost, log: Logger) {
    this.name = name;
    this.#settings = settings;
    this.#identity = identityOf(settings);
    this.#host = host;
    this.log = log;
    this.group = new Group(name, this.#groupOptions(settings));
  }

  get settings(): SiteSettings {
    return this.#settings;
  }

  /** Binds (or takes from the registry) the site's sockets and prepares its log files. */
  async open(): Promise<void> {
    this.#sockets = await this.#acquire(this.#settings, this.#identity);
    this.#prepareLogs(this.#settings, this.#identity);
  }

  /** The addresses as people read them (with the port the kernel chose for :0). */
  addresses(): string[] {
    return this.#settings.listen.map((text, i) => describeListen(parseListen(text), this.#sockets[i]?.port));
  }

  /**
   * A reload. With new settings, the new sockets are bound first (a socket kept is the same
   * socket) and the new workers get them; the old ones go when the new generation serves. A
   * site that could not open (its sockets) tries again.
   */
  async reload(settings?: SiteSettings): Promise<void> {
    if (this.#sockets.length === 0 && !this.#pending && (!settings || JSON.stringify(settings) === JSON.stringify(this.#settings))) {
      await this.open();
      this.group.reload();
      return;
    }
    if (settings && JSON.stringify(settings) !== JSON.stringify(this.#settings)) {
      this.#unwatch(); // the sockets may change; a watch never outlives its socket
      const identity = identityOf(settings);
      const sockets = await this.#acquire(settings, identity);
      this.#prepareLogs(settings, identity);
      // A reload over one still in progress: the sockets of that one are not needed any more.
      if (this.#pending) this.#release(this.#sockets);
      const previous = this.#pending ?? { settings: this.#settings, identity: this.#identity, sockets: this.#sockets };
      this.#settings = settings;
      this.#identity = identity;
      this.#sockets = sockets;
      this.group.options = this.#groupOptions(settings);
      this.group.reload();
      this.#pending = { generation: this.group.generation, ...previous };
      return;
    }
    this.group.reload();
  }

  /** One event of this group's children. */
  handle(event: ChildEvent, now: number): Action[] {
    if (event.kind === "exit") {
      this.#children.delete(event.pid);
      return this.group.exited(event.pid, event.how, now);
    }
    if (event.kind === "demand") {
      if (this.group.demand(now)) this.log.info(`a connection waits: starting a worker (ondemand)`);
      return [];
    }
    const msg = event.msg;
    switch (msg.type) {
      case "ready":
        this.group.ready(event.pid, now);
        this.#passHeld();
        return [];
      case "heartbeat":
        this.group.heartbeat(event.pid, now, { served: msg.served, inFlight: msg.inFlight, rss: msg.rss });
        this.#sendStatus(event.pid, now);
        return [];
      case "recycle":
        this.group.recycle(event.pid, msg.reason);
        return [];
      case "idle":
        this.group.idle(event.pid);
        return [];
      case "boot-error":
        this.group.bootError(event.pid, Object.assign(new Error(msg.message), { code: msg.code, frames: msg.frames }));
        return [];
      case "handoff": // passed on as it arrives (#handOff), never queued
        return [];
    }
  }

  /** The reconciler's actions, carried out (a failed fork is an event of its own, and so on). */
  reconcile(now: number, first: Action[] = []): void {
    let actions = [...first, ...this.group.reconcile(now)];
    while (actions.length > 0) {
      const more: Action[] = [];
      for (const a of actions) more.push(...this.#carryOut(a, now));
      actions = more.length > 0 ? [...more, ...this.group.reconcile(now)] : [];
    }
    this.#settle();
    this.#watch(now);
  }

  stop(): void {
    this.group.stop();
    this.#dropHeld();
  }

  /** SIGINT twice: every worker killed at once. */
  kill(): void {
    for (const child of this.#children.values()) child.kill("SIGKILL");
  }

  /** The site's sockets go back to the registry (once it stopped). */
  close(): void {
    this.#unwatch();
    this.#dropHeld();
    this.#release(this.#sockets);
    this.#sockets = [];
    if (this.#pending) this.#release(this.#pending.sockets);
    this.#pending = null;
  }

  /** SIGUSR1: the site's log files and every worker's are opened again. */
  reopenLogs(): void {
    try {
      this.#prepareLogs(this.#settings, this.#identity);
    } catch (err) {
      this.log.error("cannot reopen the log files", err);
      return;
    }
    const msg: MasterMessage = { type: "reopen-logs" };
    for (const child of this.#children.values()) if (child.connected) child.send(msg);
  }

  status(now: number): SiteStatus {
    return {
      name: this.name,
      state: this.group.state,
      failure: this.group.failure,
      generation: this.group.generation,
      processes: this.#settings.processes,
      listen: this.addresses(),
      workers: [...this.group.workers.values()]
        .sort((a, b) => a.index - b.index || a.seq - b.seq)
        .map((w) => ({
          pid: w.pid,
          index: w.index,
          generation: w.generation,
          state: w.state,
          served: w.served,
          inFlight: w.inFlight,
          rssBytes: w.rss,
          uptimeSeconds: Math.round((now - w.startedAt) / 100) / 10,
          lastRestart: w.reason,
        })),
      restarts: Object.fromEntries(this.group.restarts),
      heldConnections: this.#held.length,
    };
  }

  /** A site with a status page or metrics: the worker that beat gets the site's status to show (src/daemon/status-page.ts). */
  #sendStatus(pid: number, now: number): void {
    if (!this.#settings.status && !this.#settings.metrics) return;
    const child = this.#children.get(pid);
    if (!child?.connected) return;
    // The page is served over the web: the master's figures without the path of its file.
    const master = { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), rssBytes: process.memoryUsage.rss(), file: null };
    const msg: MasterMessage = { type: "status", master, site: this.status(now) };
    child.send(msg);
  }

  // ---- carrying out ----

  #carryOut(a: Action, now: number): Action[] {
    switch (a.kind) {
      case "spawn":
        return this.#spawn(a, now);
      case "stop": {
        const child = this.#children.get(a.pid);
        const msg: MasterMessage = { type: "stop" };
        if (child?.connected) child.send(msg);
        else child?.kill("SIGTERM");
        return [];
      }
      case "signal":
        this.#children.get(a.pid)?.kill(a.signal);
        return [];
      case "log":
        if (a.level === "error") this.log.error(a.message, a.error);
        else this.log[a.level](a.message);
        return [];
    }
  }

  #spawn(a: Extract<Action, { kind: "spawn" }>, now: number): Action[] {
    let child: ChildProcess;
    try {
      child = fork(BIN, [], {
        env: this.#workerEnv(a.index),
        stdio: ["inherit", "inherit", "inherit", "ipc", ...this.#sockets.map((s) => s.fd)],
      });
    } catch (err) {
      return this.group.forkFailed(a, err, now);
    }
    const pid = child.pid;
    if (pid === undefined) {
      // spawn failed asynchronously (the error event follows): a boot failure now.
      child.on("error", () => undefined);
      return this.group.forkFailed(a, new Error("fork returned no pid"), now);
    }
    this.#children.set(pid, child);
    this.group.forked(a, pid, now);
    child.on("message", (msg: WorkerMessage, handle?: Socket) => {
      // A connection in transit is passed on now, in this callback (Node reads a socket it
      // receives from the next turn of the loop on), not through the master's queue.
      if (msg?.type === "handoff") this.#handOff(pid, msg, handle);
      else this.#host.enqueue({ kind: "message", group: this, pid, msg });
    });
    child.on("error", (err) => this.log.error(`worker ${a.index} (pid ${pid})`, err));
    child.on("exit", (code, signal) => {
      const how = signal ? `killed by ${signal}` : `exited with status ${code}`;
      this.#host.enqueue({ kind: "exit", group: this, pid, how });
    });
    return [];
  }

  /**
   * A draining worker's persistent connection (src/daemon/handoff.ts) goes to a ready worker
   * of the site, the newest generation first, in turn. With none, an ondemand site's master
   * holds it for the next worker (#hold); a site that stops closes it.
   */
  #handOff(from: number, msg: Extract<WorkerMessage, { type: "handoff" }>, handle: Socket | undefined): void {
    stopReading(handle);
    if (!handle) return;
    const target = this.#adopter(from);
    if (target) this.#pass(target, msg.listen, handle);
    else if (this.#settings.ondemand && this.group.state !== "stopping" && this.group.state !== "stopped") this.#hold(msg.listen, handle);
    else handle.destroy();
  }

  /** A ready worker of the newest generation (not `except`), in turn; none when there is no such worker. */
  #adopter(except = 0): ChildProcess | null {
    const ready = [...this.group.workers.values()].filter((w) => w.state === "ready" && w.pid !== except && this.#children.get(w.pid)?.connected);
    const newest = Math.max(...ready.map((w) => w.generation));
    const targets = ready.filter((w) => w.generation === newest);
    if (targets.length === 0) return null;
    return this.#children.get(targets[this.#handoffTurn++ % targets.length]!.pid)!;
  }

  #pass(target: ChildProcess, listen: string, handle: Socket): void {
    const forward: MasterMessage = { type: "handoff", listen };
    try {
      target.send(forward, handle, {}, (err) => {
        if (err) handle.destroy();
      });
    } catch {
      handle.destroy();
    }
  }

  /**
   * ondemand: the last worker idled out, and nginx still caches its persistent connections
   * (FastCGI keep-conn): closing one as the front server sends a request on it loses that
   * request. So the master holds each, reads nothing of it, and watches it: the front
   * server's next request there is demand (a worker starts and gets every held connection
   * once ready, the request still unread in the kernel); the front server closing it (its
   * keepalive_timeout) drops it here. A site that stops closes what it holds.
   */
  #hold(listen: string, socket: Socket): void {
    const fd = socketFd(socket);
    let watch: ReadableWatch;
    try {
      watch = new binding.ReadableWatch(fd, () => this.#heldReadable(held));
    } catch (err) {
      this.log.error("cannot hold a persistent connection for the next worker; closing it", err);
      socket.destroy();
      return;
    }
    const held: Held = { listen, socket, watch, armed: true };
    this.#held.push(held);
    watch.start();
  }

  #heldReadable(held: Held): void {
    held.armed = false;
    const what = binding.peek(socketFd(held.socket));
    if (what === 0) {
      // The front server closed it.
      this.#held = this.#held.filter((h) => h !== held);
      held.watch.close();
      held.socket.destroy();
    } else if (what < 0) {
      held.watch.start();
      held.armed = true;
    } else {
      // A request waits on it: as a connection waiting on a listening socket. The watch stays
      // off while it waits (#watch arms it again whenever a worker could start).
      this.#host.enqueue({ kind: "demand", group: this });
    }
  }

  /** A worker is ready: it serves what the master held. */
  #passHeld(): void {
    if (this.#held.length === 0) return;
    const target = this.#adopter();
    if (!target) return;
    for (const h of this.#held) {
      h.watch.close();
      this.#pass(target, h.listen, h.socket);
    }
    this.log.info(`gave ${this.#held.length} persistent connection${this.#held.length > 1 ? "s" : ""} held while the site had no worker to worker pid ${target.pid}`);
    this.#held = [];
  }

  #dropHeld(): void {
    for (const h of this.#held) {
      h.watch.close();
      h.socket.destroy();
    }
    this.#held = [];
  }

  /** After the reconciler: a changed reload that serves lets go of the old sockets; one abandoned goes back. */
  #settle(): void {
    const p = this.#pending;
    if (!p) return;
    if (this.group.serving === p.generation || this.group.generation !== p.generation) this.#unwatch();
    if (this.group.serving === p.generation) {
      this.#release(p.sockets.filter((s) => !this.#sockets.includes(s)));
      this.#pending = null;
    } else if (this.group.generation !== p.generation) {
      // Abandoned (the reloaded workers could not start): the settings of before serve on.
      this.#release(this.#sockets.filter((s) => !p.sockets.includes(s)));
      this.#settings = p.settings;
      this.#identity = p.identity;
      this.#sockets = p.sockets;
      this.group.options = this.#groupOptions(p.settings);
      this.#pending = null;
    }
  }

  #groupOptions(s: SiteSettings) {
    return { processes: s.processes, gracefulTimeoutMs: s["graceful-timeout"], heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, ondemand: s.ondemand };
  }

  /**
   * ondemand: the master watches the site's listening sockets (never accepting) while a
   * waiting connection would start a worker; the first one that becomes readable is demand.
   * The watch is one-shot, so a connection queued for a worker still booting is one event.
   */
  #watch(now: number): void {
    const want = this.group.wantsDemand(now) && this.#sockets.length > 0;
    // A held connection whose request waits: watched again, so it is demand again (at once).
    if (want) {
      for (const h of this.#held) {
        if (!h.armed) {
          h.watch.start();
          h.armed = true;
        }
      }
    }
    if (this.#watches && this.#watches.sockets !== this.#sockets) this.#unwatch();
    if (!want) {
      if (this.#watches?.armed) {
        for (const w of this.#watches.watches) w.stop();
        this.#watches.armed = false;
      }
      return;
    }
    if (!this.#watches) {
      const fire = () => {
        if (!this.#watches?.armed) return;
        for (const w of this.#watches.watches) w.stop();
        this.#watches.armed = false;
        this.#host.enqueue({ kind: "demand", group: this });
      };
      this.#watches = { sockets: this.#sockets, watches: this.#sockets.map((s) => new binding.ReadableWatch(s.fd, fire)), armed: false };
    }
    if (!this.#watches.armed) {
      for (const w of this.#watches.watches) w.start();
      this.#watches.armed = true;
    }
  }

  #unwatch(): void {
    for (const w of this.#watches?.watches ?? []) w.close();
    this.#watches = null;
  }

  #workerEnv(index: number): Record<string, string> {
    const s = this.#settings;
    const id = this.#identity;
    const cfg: WorkerConfig = {
      site: this.name,
      index,
      multiprocess: s.processes > 1,
      settings: s,
      identity: id.uid !== undefined || id.gid !== undefined ? { user: id.user, uid: id.uid ?? null, gid: id.gid ?? null } : null,
    };
    const base = s["clear-env"] ? {} : (process.env as Record<string, string>);
    const env: Record<string, string> = { ...base, ...s.env, TSGI_WORKER: JSON.stringify(cfg) };
    if (s["clear-env"] && process.env.PATH && !s.env.PATH) env.PATH = process.env.PATH;
    // `settings` goes verbatim into the workers' TSGI_SETTINGS_MODULE and wins over an inherited one.
    if (s.settings) env.TSGI_SETTINGS_MODULE = s.settings;
    // The master's own plumbing is not the application's.
    delete env.NOTIFY_SOCKET;
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    return env;
  }

  async #acquire(s: SiteSettings, id: Identity): Promise<BoundSocket[]> {
    const got: BoundSocket[] = [];
    try {
      for (const text of s.listen) got.push(await this.#host.sockets.acquire(parseListen(text), { mode: s["socket-mode"], ids: id.socketIds }));
    } catch (err) {
      this.#release(got);
      throw err;
    }
    return got;
  }

  #release(sockets: BoundSocket[]): void {
    for (const s of sockets) this.#host.sockets.release(s);
  }

  /** Log files exist and belong to the workers' user before the workers open them. */
  #prepareLogs(s: SiteSettings, id: Identity): void {
    const owner = id.uid !== undefined ? { uid: id.uid, gid: id.gid ?? id.uid } : null;
    for (const key of ["access-log", "error-log"] as const) {
      const where = s[key];
      if (where && where !== "-" && where !== "off") prepareLogFile(where, owner, key);
    }
  }
}

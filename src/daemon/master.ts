// The master (DESIGN §4): one process for every site of a tsgi.toml (or the one site of
// `tsgi serve`). It binds every socket, never accepts, never imports application code, and
// runs each site's process group. Shaped as gunicorn's arbiter: signal handlers, the
// children's messages and exits, control commands and the tick only *enqueue*; one loop takes
// the events in order, hands each to its site, and carries out what the sites' reconcilers
// return. The tick is armed for the earliest deadline any site asked for (a backoff, a stop
// escalation, a heartbeat), never polled.

import type { Server } from "node:net";
import { lstatSync, unlinkSync, writeFileSync } from "node:fs";
import { reopenLogFiles, summarize, type Logger } from "../log.ts";
import type { Action } from "./group.ts";
import { ProcessGroup, type ChildEvent, type SiteStatus } from "./process-group.ts";
import type { SiteConfig } from "./config.ts";
import { listenControl, type ControlReply, type ControlRequest } from "./control.ts";
import { SocketRegistry } from "./sockets.ts";
import { statusLine, type Notifier } from "./systemd.ts";

/** A site as the master runs it: its name and its settings, coerced (tsgi.toml's [site.NAME], or `tsgi serve`'s flags). */
export type SiteDefinition = SiteConfig;

export interface MasterStatus {
  pid: number;
  uptimeSeconds: number;
  rssBytes: number;
  file: string | null;
}

type MasterEvent =
  | ChildEvent
  | { kind: "tick" }
  | { kind: "signal"; signal: NodeJS.Signals }
  | { kind: "control"; request: ControlRequest; reply: (r: ControlReply) => void }
  /** A reload was prepared (the file reread, sockets bound); `problems` when the file was refused. */
  | { kind: "reloaded"; problems?: string[] };

export interface MasterOptions {
  /** The master's own error log (the daemon's `error-log`). */
  log: Logger;
  /** Each site's logger. */
  siteLog: (site: SiteDefinition) => Logger;
  /** The configuration file, reread on reload (null: `tsgi serve`, nothing to reread). */
  file: string | null;
  /** Rereads the file: the sites, or every problem found. */
  reread?: () => { sites: SiteDefinition[] } | { problems: string[] };
  control?: string | null;
  pidfile?: string | null;
  /** `tsgi serve`: a site that cannot start ends the master (exit 1) instead of standing failed. */
  exitOnSiteFailure?: boolean;
  /** Once every site is running or failed, the first time. */
  onReady?: (sites: ProcessGroup[]) => void;
  /** systemd's notify protocol (systemd.ts): READY=1, RELOADING=1, STOPPING=1, STATUS=. */
  notifier?: Notifier;
}

export class Master {
  readonly sites = new Map<string, ProcessGroup>();
  readonly sockets: SocketRegistry;
  readonly #o: MasterOptions;
  readonly #log: Logger;
  #queue: MasterEvent[] = [];
  #scheduled = false;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  /** Sites removed by a reload, stopping. */
  #leaving = new Set<ProcessGroup>();
  #stopping = false;
  /** `tsgi serve` whose site could not start: exit 1 once stopped. */
  #exitOnFailure = false;
  #signals = 0;
  #readyOnce = false;
  #reloadRunning = false;
  #reloadAgain: { site?: string } | null = null;
  #control: Server | null = null;
  readonly #startedAt = Date.now();
  /** Every site of the file opened (start() done): readiness can be judged. */
  #opened = false;

  constructor(options: MasterOptions) {
    this.#o = options;
    this.#log = options.log;
    this.sockets = new SocketRegistry(options.log);
  }

  /** Opens every site (sockets, logs), then starts the loop; a site that cannot open is failed, the rest serve. */
  async start(sites: SiteDefinition[]): Promise<void> {
    for (const sig of ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGQUIT"] as const) {
      process.on(sig, () => this.enqueue({ kind: "signal", signal: sig }));
    }
    for (const def of sites) await this.#openSite(def);
    if (this.#o.control) await this.#listenControl(this.#o.control);
    if (this.#o.pidfile) writeFileSync(this.#o.pidfile, `${process.pid}\n`);
    this.#opened = true;
    this.enqueue({ kind: "tick" });
  }

  enqueue(event: MasterEvent): void {
    this.#queue.push(event);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#drain());
  }

  status(): { master: MasterStatus; sites: SiteStatus[] } {
    const now = Date.now();
    return {
      master: { pid: process.pid, uptimeSeconds: Math.round((now - this.#startedAt) / 1000), rssBytes: process.memoryUsage.rss(), file: this.#o.file },
      sites: [...this.sites.values()].map((s) => s.status(now)),
    };
  }

  // ---- the loop ----

  #drain(): void {
    this.#scheduled = false;
    const now = Date.now();
    const first = new Map<ProcessGroup, Action[]>();
    while (this.#queue.length > 0) {
      const event = this.#queue.shift()!;
      try {
        this.#dispatch(event, now, first);
      } catch (err) {
        this.#log.error(`the master could not handle a ${event.kind} event`, err);
      }
    }
    for (const site of [...this.sites.values(), ...this.#leaving]) site.reconcile(now, first.get(site) ?? []);
    this.#afterReconcile();
    this.#arm(now);
  }

  #dispatch(event: MasterEvent, now: number, first: Map<ProcessGroup, Action[]>): void {
    const push = (site: ProcessGroup, actions: Action[]) => {
      if (actions.length > 0) first.set(site, [...(first.get(site) ?? []), ...actions]);
    };
    switch (event.kind) {
      case "message":
      case "exit":
      case "demand":
        push(event.group, event.group.handle(event, now));
        return;
      case "tick":
        return;
      case "signal":
        this.#onSignal(event.signal);
        return;
      case "control":
        this.#onControl(event.request, event.reply);
        return;
      case "reloaded":
        this.#reloadRunning = false;
        if (event.problems) {
          this.#log.error(`${this.#o.file}: not reloaded, the sites go on as they were: ${event.problems.length} problem${event.problems.length > 1 ? "s" : ""}`);
          for (const p of event.problems) this.#log.error(p);
        }
        if (this.#reloadAgain && !this.#stopping) {
          const again = this.#reloadAgain;
          this.#reloadAgain = null;
          this.#reload(again.site);
        }
        return;
    }
  }

  #onSignal(signal: NodeJS.Signals): void {
    switch (signal) {
      case "SIGHUP":
        this.#log.info(`SIGHUP: reloading ${this.#o.file ? `${this.#o.file} and ` : ""}every worker`);
        this.#reload();
        return;
      case "SIGUSR1":
        // The files are shared by path (one LogFile each): reopened once, for every site.
        for (const failure of reopenLogFiles()) this.#log.error(`cannot reopen a log file: ${failure}`);
        for (const site of this.sites.values()) site.reopenLogs();
        this.#log.info("SIGUSR1: log files reopened (the workers reopen theirs)");
        return;
      default:
        // SIGTERM, SIGINT, SIGQUIT: stop gracefully; a second one stops at once.
        if (++this.#signals >= 2) {
          this.#log.warn(`${signal} again: stopping at once`);
          this.#killAll();
          return;
        }
        this.#log.info(`${signal}: stopping (requests in flight finish within graceful-timeout; ${signal} again stops at once)`);
        this.#stop();
    }
  }

  #onControl(request: ControlRequest, reply: (r: ControlReply) => void): void {
    switch (request.command) {
      case "status":
        reply({ ok: true, ...this.status() });
        return;
      case "reload":
        if (request.site && !this.sites.has(request.site)) {
          reply({ ok: false, error: `no site ${JSON.stringify(request.site)} (sites: ${[...this.sites.keys()].join(", ")})` });
          return;
        }
        this.#log.info(`control: reloading ${request.site ? `site ${request.site}` : "every site"}`);
        this.#reload(request.site);
        reply({ ok: true, message: request.site ? `reloading ${request.site}` : "reloading" });
        return;
      case "stop":
        this.#log.info("control: stopping");
        reply({ ok: true, message: "stopping" });
        this.#stop();
        return;
      default:
        reply({ ok: false, error: `unknown command ${JSON.stringify((request as { command?: unknown }).command)}` });
    }
  }

  /** The tick for the earliest deadline of any site. */
  #arm(now: number): void {
    let next = Infinity;
    for (const site of [...this.sites.values(), ...this.#leaving]) {
      const t = site.group.nextDeadline(now);
      if (t !== null && t < next) next = t;
    }
    if (next === this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = next;
    if (next === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.enqueue({ kind: "tick" });
    }, Math.max(0, next - now));
  }

  #afterReconcile(): void {
    for (const site of this.#leaving) {
      if (site.group.state === "stopped") {
        site.close();
        this.#leaving.delete(site);
        site.log.info(`site ${site.name} removed`);
      }
    }
    const sites = [...this.sites.values()];
    if (this.#o.exitOnSiteFailure && !this.#stopping) {
      const failed = sites.find((s) => s.group.state === "failed" && s.group.serving === 0);
      if (failed) {
        // Its reconciler logged why, once.
        this.#exitOnFailure = true;
        this.#stop();
        return;
      }
    }
    if (!this.#readyOnce && this.#opened && sites.every((s) => s.group.state === "running" || s.group.state === "idle" || s.group.state === "failed")) {
      this.#readyOnce = true;
      this.#o.onReady?.(sites);
    }
    this.#tellSystemd(sites);
    if (this.#stopping && sites.every((s) => s.group.state === "stopped") && this.#leaving.size === 0) this.#exit(this.#exitOnFailure ? 1 : 0);
  }

  /** READY=1 once every site runs or failed (at start, and when a reload is done), else STATUS= as it changes. */
  #tellSystemd(sites: ProcessGroup[]): void {
    const n = this.#o.notifier;
    if (!n?.enabled || !this.#opened || this.#stopping) return;
    const settled = sites.every((s) => s.group.state === "running" || s.group.state === "idle" || s.group.state === "failed");
    if (settled && !this.#reloadRunning && this.#reloadAgain === null) n.ready(statusLine(sites));
    n.status(statusLine(sites));
  }

  // ---- reload ----

  /** A reload: the file reread (daemon), then every site (or one) reloaded; coalesced while one is being prepared. */
  #reload(only?: string): void {
    if (this.#stopping) return;
    this.#o.notifier?.reloading(statusLine([...this.sites.values()]));
    if (this.#reloadRunning) {
      // One more after this one: of that site if only it was asked for, else of everything.
      const prev = this.#reloadAgain;
      this.#reloadAgain = prev === null || prev.site === only ? { site: only } : {};
      return;
    }
    this.#reloadRunning = true;
    void this.#prepareReload(only).then(
      (r) => this.enqueue({ kind: "reloaded", ...r }),
      (err) => {
        this.#log.error("reload failed", err);
        this.enqueue({ kind: "reloaded" });
      },
    );
  }

  async #prepareReload(only?: string): Promise<{ problems?: string[] }> {
    let defs: SiteDefinition[] | null = null;
    if (this.#o.reread) {
      const r = this.#o.reread();
      if ("problems" in r) return { problems: r.problems };
      defs = r.sites;
    }
    if (defs === null) {
      for (const site of this.sites.values()) if (!only || site.name === only) await site.reload();
      return {};
    }
    const wanted = new Map(defs.map((d) => [d.name, d]));
    // Removed sites stop first (their sockets are released once their workers are gone).
    if (!only) {
      for (const site of [...this.sites.values()]) {
        if (wanted.has(site.name)) continue;
        site.log.info(`site ${site.name} is no longer in ${this.#o.file}: stopping it`);
        this.sites.delete(site.name);
        site.stop();
        this.#leaving.add(site);
      }
    }
    for (const def of defs) {
      if (only && def.name !== only) continue;
      const site = this.sites.get(def.name);
      if (!site) {
        this.#log.info(`site ${def.name} added`);
        await this.#openSite(def);
        continue;
      }
      try {
        await site.reload(def.settings);
      } catch (err) {
        site.log.error(`site ${def.name}: the new settings cannot take effect; it goes on as it was`, err);
      }
    }
    return {};
  }

  async #openSite(def: SiteDefinition): Promise<void> {
    const log = this.#o.siteLog(def);
    let site: ProcessGroup;
    try {
      site = new ProcessGroup(def.name, def.settings, this, log);
    } catch (err) {
      log.error(`site ${def.name} cannot start`, err);
      if (this.#o.exitOnSiteFailure) this.#exit(1);
      return;
    }
    try {
      await site.open();
    } catch (err) {
      log.error(`site ${def.name} cannot start`, err);
      site.close();
      if (this.#o.exitOnSiteFailure) this.#exit(1);
      // It stands failed in `tsgi status` until a reload can bind its sockets.
      site.group.fail(summarize(err), err);
      this.sites.set(def.name, site);
      return;
    }
    this.sites.set(def.name, site);
    this.enqueue({ kind: "tick" });
  }

  // ---- stop ----

  #stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#o.notifier?.stopping(statusLine([...this.sites.values()]));
    this.#control?.close();
    for (const site of this.sites.values()) site.stop();
    this.enqueue({ kind: "tick" });
  }

  #killAll(): void {
    for (const site of [...this.sites.values(), ...this.#leaving]) site.kill();
    this.#exit(130);
  }

  #exit(code: number): never {
    this.sockets.closeAll();
    if (this.#o.control) removeSocketFile(this.#o.control);
    if (this.#o.pidfile) {
      try {
        unlinkSync(this.#o.pidfile);
      } catch {
        // gone already
      }
    }
    if (code === 0) this.#log.info("stopped");
    process.exit(code);
  }

  async #listenControl(path: string): Promise<void> {
    this.#control = await listenControl(path, (request, reply) => this.enqueue({ kind: "control", request, reply }));
  }
}

function removeSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // gone already
  }
}


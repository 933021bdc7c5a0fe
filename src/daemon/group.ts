// One site's process group as the master sees it: a reconciler over its workers
// (`pid → {place, generation, state, deadline}`), shaped as gunicorn's arbiter. Nothing here
// forks, signals or sets a timer: events (a worker forked, became ready, beat, asked to be
// replaced, exited; reload, stop, a tick) change the records, and `reconcile(now)` returns
// what to do (spawn, stop, TERM, KILL, log) with every delay as a time (`nextDeadline()`),
// so the rules are tested with a fake clock and a fake fork beside the tests with real
// processes. The master's loop is the only caller: one event at a time.
//
// The rules, each idempotent:
// - A group has `processes` places. The target generation G goes up on every reload. A place
//   with no live worker of G (booting or ready, not asked to go) gets one spawned, unless
//   its backoff time has not come, the site failed, or it is stopping.
// - Old generations stop only once every place has a ready worker of G: a reload never
//   leaves fewer than `processes` ready workers, and one that fails stops its new workers
//   and leaves the old ones serving. Booting workers of an older generation stop at once.
// - Within G a place keeps its newest ready worker; an older one (a recycled worker) stops
//   once its replacement is ready. One recycle at a time per group.
// - A worker that dies before it is ready is retried with exponential backoff; after
//   BOOT_ATTEMPTS in a row the site is `failed` (nothing serves) or the reload is abandoned
//   (the old workers serve). Nothing is respawned for a failed site until a reload.
// - A ready worker that exits unasked is replaced at once, or with backoff when it died
//   within CRASH_GRACE_MS of being ready (a crash on every first request is no fork loop).
// - A worker silent past the heartbeat timeout is killed (and so replaced); one asked to
//   stop gets `stop`, then SIGTERM after graceful-timeout, then SIGKILL.
// - `ondemand`: the places are filled on demand. None is active until a connection waits
//   (`demand()`, from the driver's watch on the listening sockets), each demand while no
//   worker boots activates one more (up to `processes`), and a worker idle for
//   inactivity-timeout (`idle()`) gives its place back; a group with no active place is `idle`.

export type GroupState = "idle" | "starting" | "running" | "reloading" | "failed" | "stopping" | "stopped";
export type WorkerState = "booting" | "ready" | "stopping";

export interface GroupOptions {
  processes: number;
  gracefulTimeoutMs: number;
  /** A ready worker silent this long is killed (0: never). */
  heartbeatTimeoutMs: number;
  /** No worker until a connection waits; idle workers give their place back. */
  ondemand?: boolean;
}

export interface WorkerRecord {
  pid: number;
  /** Its place, 1…processes. */
  index: number;
  generation: number;
  /** Spawn order in the group: the newest of two in a place has the greater. */
  seq: number;
  state: WorkerState;
  startedAt: number;
  readyAt: number;
  lastBeatAt: number;
  /** Why this worker was started (null: the first of its place). */
  reason: string | null;
  /** It asked to be replaced (max-requests, inactivity-timeout, an exception), and why. */
  recycle: string | null;
  /** When it was asked to stop, and how far that went: 0 the message, 1 SIGTERM, 2 SIGKILL. */
  stopAt: number;
  escalation: 0 | 1 | 2;
  /** Killed for not booting or not beating: its exit is the consequence, not news. */
  killed: boolean;
  /** Figures from its last heartbeat. */
  served: number;
  inFlight: number;
  rss: number;
}

export type Action =
  | { kind: "spawn"; index: number; generation: number; reason: string | null }
  /** Ask the worker to stop accepting, finish its requests and exit. */
  | { kind: "stop"; pid: number }
  | { kind: "signal"; pid: number; signal: "SIGTERM" | "SIGKILL" }
  | { kind: "log"; level: "info" | "warn" | "error"; message: string; error?: unknown };

export const BOOT_ATTEMPTS = 5;
export const BACKOFF_MS = 100;
export const MAX_BACKOFF_MS = 5000;
/** A worker that crashes sooner than this after it was ready is restarted with backoff. */
export const CRASH_GRACE_MS = 1000;
/** A worker that is not ready this long after its fork is killed: a boot failure. */
export const BOOT_TIMEOUT_MS = 60_000;
/** After SIGTERM, how long before SIGKILL. */
export const TERM_GRACE_MS = 2000;
/** After SIGKILL, how long before a process that still did not exit (stuck in the kernel) is given up on. */
export const KILL_GRACE_MS = 5000;
/**
 * `ondemand`: after a worker became ready, how long before a connection still waiting on the
 * listening socket counts as demand for one more (the new worker needs a moment to accept
 * what queued while it booted).
 */
export const DEMAND_SETTLE_MS = 200;

interface Place {
  /** Boot failures in a row of the target generation. */
  failures: number;
  /** Crashes in a row soon after ready. */
  crashes: number;
  /** No spawn before this time (backoff). */
  notBefore: number;
  /** Why the last worker of this place went away: the next one's reason. */
  lastReason: string | null;
}

/** The few causes a worker is restarted for, as the metrics count them (reasons carry figures). */
export type RestartCause = "reload" | "ondemand" | "max-requests" | "inactivity-timeout" | "exception" | "exit";

export function restartCause(reason: string): RestartCause {
  if (reason === "reload") return "reload";
  if (reason.endsWith("(ondemand)")) return "ondemand";
  if (reason.startsWith("max-requests")) return "max-requests";
  if (reason === "inactivity-timeout") return "inactivity-timeout";
  if (reason === "an uncaught exception") return "exception";
  return "exit"; // went away unasked: an exit, a signal, a missed heartbeat, a boot that failed
}

const backoff = (n: number) => Math.min(MAX_BACKOFF_MS, BACKOFF_MS * 2 ** Math.max(0, n - 1));

export class Group {
  state: GroupState = "starting";
  /** Why the site failed (the import error), or why the last reload did not take. */
  failure: string | null = null;
  /** Workers started in the place of another (or on demand), by cause, since the master started. */
  readonly restarts = new Map<RestartCause, number>();
  /** The error behind `failure`, as the worker reported it. */
  failureError: unknown = null;
  readonly site: string;
  #o: GroupOptions;
  #generation = 1;
  /** The highest generation ever started (generations are never reused). */
  #lastGeneration = 1;
  /** The generation that serves (the last one complete). */
  #serving = 0;
  #seq = 0;
  readonly workers = new Map<number, WorkerRecord>();
  #places = new Map<number, Place>();
  /** Boot errors reported by workers that then exited, by pid. */
  #bootErrors = new Map<number, unknown>();
  /** The places to fill: every one, or (ondemand) those demand activated. */
  #active = new Set<number>();
  /** ondemand: no demand is taken before this time. */
  #demandAfter = 0;

  constructor(site: string, options: GroupOptions) {
    this.site = site;
    this.#o = { ...options };
    this.#ensurePlaces();
  }

  /** The generation being started or serving (the target). */
  get generation(): number {
    return this.#generation;
  }

  /** The last generation that was complete (every place ready); 0 before the first. */
  get serving(): number {
    return this.#serving;
  }

  /** New options (a reload of a changed file) apply from the next generation's spawns on. */
  set options(o: GroupOptions) {
    this.#o = { ...o };
    this.#ensurePlaces();
  }

  get options(): GroupOptions {
    return this.#o;
  }

  // ---- events ----

  /** The driver forked `spawn`'s worker. */
  forked(spawn: { index: number; generation: number; reason: string | null }, pid: number, now: number): void {
    if (spawn.reason) {
      const cause = restartCause(spawn.reason);
      this.restarts.set(cause, (this.restarts.get(cause) ?? 0) + 1);
    }
    this.workers.set(pid, {
      pid,
      index: spawn.index,
      generation: spawn.generation,
      seq: ++this.#seq,
      state: "booting",
      startedAt: now,
      readyAt: 0,
      lastBeatAt: now,
      reason: spawn.reason,
      recycle: null,
      stopAt: 0,
      escalation: 0,
      killed: false,
      served: 0,
      inFlight: 0,
      rss: 0,
    });
  }

  /** The fork itself failed (EAGAIN, ENOMEM): a boot failure of that place. */
  forkFailed(spawn: { index: number; generation: number }, error: unknown, now: number): Action[] {
    return this.#bootFailed(spawn.index, spawn.generation, `cannot start a worker: ${(error as Error)?.message ?? error}`, error, now);
  }

  ready(pid: number, now: number): void {
    const w = this.workers.get(pid);
    if (!w || w.state !== "booting") return;
    w.state = "ready";
    w.readyAt = now;
    w.lastBeatAt = now;
    if (w.generation === this.#generation) this.#place(w.index).failures = 0;
    if (this.#o.ondemand) this.#demandAfter = now + DEMAND_SETTLE_MS;
  }

  heartbeat(pid: number, now: number, figures?: { served: number; inFlight: number; rss: number }): void {
    const w = this.workers.get(pid);
    if (!w) return;
    w.lastBeatAt = now;
    if (figures) Object.assign(w, figures);
  }

  /** Worker `pid` asked to be replaced. */
  recycle(pid: number, reason: string): void {
    const w = this.workers.get(pid);
    if (w && w.state === "ready" && !w.recycle) w.recycle = reason;
  }

  /** The worker reported why it cannot boot (before it exits). */
  bootError(pid: number, error: unknown): void {
    this.#bootErrors.set(pid, error);
  }

  /**
   * ondemand: a connection waits on a listening socket. Activates one more place when the
   * group takes demand (`wantsDemand`); false when it does not.
   */
  demand(now: number): boolean {
    if (!this.wantsDemand(now)) return false;
    let i = 1;
    while (this.#active.has(i)) i++;
    this.#active.add(i);
    this.#place(i).lastReason = this.#active.size === 1 ? "a connection (ondemand)" : "more connections waiting (ondemand)";
    if (this.state === "idle") this.state = "starting";
    return true;
  }

  /** Whether a waiting connection would start a worker now (the driver watches the sockets while it does). */
  wantsDemand(now: number): boolean {
    if (!this.#o.ondemand || now < this.#demandAfter) return false;
    if (this.state === "failed" || this.state === "stopping" || this.state === "stopped") return false;
    if (this.#active.size >= this.#o.processes) return false;
    for (const w of this.workers.values()) if (w.state === "booting") return false;
    return true;
  }

  /** ondemand: worker `pid` sat idle for inactivity-timeout; its place is given back (it stops). */
  idle(pid: number): void {
    const w = this.workers.get(pid);
    if (!this.#o.ondemand || !w || w.state !== "ready") return;
    this.#active.delete(w.index);
    this.#place(w.index).lastReason = null;
  }

  exited(pid: number, how: string, now: number): Action[] {
    const w = this.workers.get(pid);
    if (!w) return [];
    this.workers.delete(pid);
    const bootError = this.#bootErrors.get(pid);
    this.#bootErrors.delete(pid);
    if (w.state === "stopping" || this.state === "stopping" || this.state === "stopped") return [];
    if (w.state === "booting") {
      if (w.generation !== this.#generation) return [];
      return this.#bootFailed(w.index, w.generation, `worker ${w.index} ${how} before it was ready`, bootError ?? null, now);
    }
    // A ready worker went away unasked.
    const place = this.#place(w.index);
    const early = now - w.readyAt < CRASH_GRACE_MS;
    place.crashes = early ? place.crashes + 1 : 0;
    const delay = early ? backoff(place.crashes) : 0;
    place.notBefore = Math.max(place.notBefore, now + delay);
    place.lastReason = how;
    const replaced = this.#hasLiveOfCurrent(w.index) || this.state === "failed";
    return [
      {
        kind: "log",
        level: "error",
        message: `worker ${w.index} (pid ${pid}) ${how}${replaced ? "" : `; starting a new one${delay ? ` in ${delay} ms` : ""}`}`,
      },
    ];
  }

  reload(): void {
    if (this.state === "stopping" || this.state === "stopped") return;
    this.#generation = ++this.#lastGeneration;
    for (const p of this.#places.values()) {
      p.failures = 0;
      p.notBefore = 0;
      p.lastReason = "reload";
    }
    if (this.state === "failed") {
      this.failure = null;
      this.failureError = null;
      // An ondemand site starts over dormant: the next connection tries the new code.
      if (this.#o.ondemand) this.#active.clear();
    }
    this.state = this.#serving === 0 || this.#readyOf(this.#serving).length === 0 ? "starting" : "reloading";
  }

  /** The site cannot run at all (its sockets cannot be bound): failed until a reload. */
  fail(summary: string, error: unknown): void {
    this.state = "failed";
    this.failure = summary;
    this.failureError = error;
  }

  stop(): void {
    if (this.state === "stopped") return;
    this.state = "stopping";
  }

  // ---- the rules ----

  reconcile(now: number): Action[] {
    const actions: Action[] = [];
    this.#escalate(now, actions);
    if (this.state === "stopping" || this.state === "stopped") {
      for (const w of this.workers.values()) this.#stopWorker(w, now, actions);
      if (this.workers.size === 0) this.state = "stopped";
      return actions;
    }
    this.#checkLiveness(now, actions);
    const G = this.#generation;
    const places = this.#o.processes;

    // A generation complete: every active place has a ready worker of G (ondemand: none may be active).
    let complete = true;
    for (const i of this.#active) if (!this.#newestReady(i, G)) complete = false;
    if (complete) {
      if (this.#serving !== G) {
        const first = this.#serving === 0;
        this.#serving = G;
        const n = this.#active.size;
        if (!first) actions.push({ kind: "log", level: "info", message: n > 0 ? `reloaded: ${n} new worker${n > 1 ? "s" : ""} serving` : "reloaded (no worker running: ondemand)" });
      }
      if (this.state !== "failed") this.state = this.#active.size > 0 ? "running" : "idle";
      for (const w of this.workers.values()) {
        if (w.generation < G || w.index > places) this.#stopWorker(w, now, actions);
      }
    }
    // ondemand: a place given back stops its worker.
    if (this.#o.ondemand) for (const w of this.workers.values()) if (!this.#active.has(w.index)) this.#stopWorker(w, now, actions);
    for (const w of this.workers.values()) {
      // A booting worker of an older generation is not needed: a newer one is on its way.
      if (w.state === "booting" && w.generation < G && this.#hasAnyReady(w.index)) this.#stopWorker(w, now, actions);
    }
    // Within G: a place keeps its newest ready worker; older ones stop.
    for (let i = 1; i <= places; i++) {
      const keep = this.#newestReady(i, G);
      if (!keep) continue;
      for (const w of this.workers.values()) {
        if (w.index === i && w.generation === G && w.seq < keep.seq && w.state !== "stopping") this.#stopWorker(w, now, actions);
      }
    }
    if (this.state === "failed") return actions;

    // Spawns.
    const recycling = [...this.workers.values()].some((w) => w.state === "booting" && w.generation === G && this.#newestReady(w.index, G)?.recycle);
    let recycleStarted = recycling;
    for (const i of [...this.#active].sort((a, b) => a - b)) {
      const place = this.#place(i);
      if (place.notBefore > now) continue;
      const booting = [...this.workers.values()].some((w) => w.index === i && w.generation === G && w.state === "booting");
      if (booting) continue;
      const ready = this.#newestReady(i, G);
      if (ready && !ready.recycle) continue;
      if (ready?.recycle) {
        if (recycleStarted) continue;
        recycleStarted = true;
        actions.push({ kind: "log", level: "info", message: `worker ${i} (pid ${ready.pid}) is replaced: ${ready.recycle}` });
        actions.push({ kind: "spawn", index: i, generation: G, reason: ready.recycle });
        continue;
      }
      actions.push({ kind: "spawn", index: i, generation: G, reason: place.lastReason });
    }
    return actions;
  }

  /** The earliest time after `now` at which `reconcile` would act without an event, or null. */
  nextDeadline(now: number): number | null {
    let next = Infinity;
    const consider = (t: number) => {
      if (t < next) next = t;
    };
    if (this.state !== "failed" && this.state !== "stopping" && this.state !== "stopped") {
      for (const p of this.#places.values()) if (p.notBefore > now) consider(p.notBefore);
      if (this.#o.ondemand && this.#demandAfter > now) consider(this.#demandAfter);
    }
    for (const w of this.workers.values()) {
      if (w.state === "stopping") consider(w.stopAt + this.#escalationDelay(w.escalation));
      else if (w.killed) continue;
      else if (w.state === "booting") consider(w.startedAt + BOOT_TIMEOUT_MS);
      else if (this.#o.heartbeatTimeoutMs > 0) consider(w.lastBeatAt + this.#o.heartbeatTimeoutMs);
    }
    return next === Infinity ? null : next;
  }

  // ---- helpers ----

  #ensurePlaces(): void {
    for (let i = 1; i <= this.#o.processes; i++) if (!this.#places.has(i)) this.#places.set(i, { failures: 0, crashes: 0, notBefore: 0, lastReason: null });
    if (!this.#o.ondemand) for (let i = 1; i <= this.#o.processes; i++) this.#active.add(i);
    for (const i of this.#active) if (i > this.#o.processes) this.#active.delete(i);
  }

  #place(i: number): Place {
    this.#ensurePlaces();
    return this.#places.get(i) ?? { failures: 0, crashes: 0, notBefore: 0, lastReason: null };
  }

  #readyOf(generation: number): WorkerRecord[] {
    return [...this.workers.values()].filter((w) => w.state === "ready" && w.generation === generation);
  }

  #newestReady(index: number, generation: number): WorkerRecord | null {
    let best: WorkerRecord | null = null;
    for (const w of this.workers.values()) {
      if (w.index === index && w.generation === generation && w.state === "ready" && (!best || w.seq > best.seq)) best = w;
    }
    return best;
  }

  #hasAnyReady(index: number): boolean {
    for (const w of this.workers.values()) if (w.index === index && w.state === "ready") return true;
    return false;
  }

  #hasLiveOfCurrent(index: number): boolean {
    for (const w of this.workers.values()) if (w.index === index && w.generation === this.#generation && w.state !== "stopping") return true;
    return false;
  }

  #bootFailed(index: number, generation: number, reason: string, error: unknown, now: number): Action[] {
    if (generation !== this.#generation || this.state === "failed") return [];
    const place = this.#place(index);
    place.failures++;
    place.lastReason = reason;
    if (place.failures < BOOT_ATTEMPTS) {
      const delay = backoff(place.failures);
      place.notBefore = now + delay;
      // The error itself is logged once, when it is given up on.
      const what = error ? "could not start" : reason.replace(/^worker \d+ /, "");
      return [{ kind: "log", level: "warn", message: `worker ${index} ${what}; retrying in ${delay} ms (attempt ${place.failures} of ${BOOT_ATTEMPTS})` }];
    }
    // Given up: a reload that does not take leaves the serving generation; a site with nothing serving has failed.
    const serving = this.#serving > 0 && this.#serving !== this.#generation ? this.#readyOf(this.#serving) : [];
    const summary = error ? firstLine(error) : reason;
    if (serving.length > 0 && this.state === "reloading") {
      this.failure = `reload failed: ${summary}`;
      this.failureError = error;
      const abandoned = this.#generation;
      this.#generation = this.#serving;
      this.state = "running";
      for (const p of this.#places.values()) p.failures = 0;
      const actions: Action[] = [
        { kind: "log", level: "error", message: `reload failed; the old workers keep serving`, error: error ?? reason },
      ];
      for (const w of this.workers.values()) if (w.generation === abandoned) this.#stopWorker(w, now, actions);
      return actions;
    }
    this.state = "failed";
    this.failure = summary;
    this.failureError = error;
    const actions: Action[] = [
      { kind: "log", level: "error", message: `site ${this.site} failed: its workers cannot start (${BOOT_ATTEMPTS} attempts)`, error: error ?? reason },
    ];
    for (const w of this.workers.values()) if (w.state === "booting") this.#stopWorker(w, now, actions);
    return actions;
  }

  #stopWorker(w: WorkerRecord, now: number, actions: Action[]): void {
    if (w.state === "stopping") return;
    const wasReady = w.state === "ready";
    w.state = "stopping";
    w.stopAt = now;
    w.escalation = 0;
    // A booting worker has no listener to drain: SIGTERM is its stop.
    if (wasReady) actions.push({ kind: "stop", pid: w.pid });
    else {
      w.escalation = 1;
      actions.push({ kind: "signal", pid: w.pid, signal: "SIGTERM" });
    }
  }

  #escalationDelay(step: 0 | 1 | 2): number {
    // After the message: graceful-timeout and a second for the worker's own exit; after SIGTERM: TERM_GRACE_MS.
    if (step === 0) return this.#o.gracefulTimeoutMs + 1000;
    if (step === 1) return TERM_GRACE_MS;
    return KILL_GRACE_MS;
  }

  #escalate(now: number, actions: Action[]): void {
    for (const w of this.workers.values()) {
      if (w.state !== "stopping") continue;
      if (now < w.stopAt + this.#escalationDelay(w.escalation)) continue;
      if (w.escalation === 2) {
        // It cannot even be killed: it must not hold a stop or a place forever.
        this.workers.delete(w.pid);
        actions.push({ kind: "log", level: "error", message: `worker ${w.index} (pid ${w.pid}) did not exit after SIGKILL; given up on` });
      } else if (w.escalation === 0) {
        w.escalation = 1;
        w.stopAt = now;
        actions.push({ kind: "log", level: "warn", message: `worker ${w.index} (pid ${w.pid}) did not stop within graceful-timeout; SIGTERM` });
        actions.push({ kind: "signal", pid: w.pid, signal: "SIGTERM" });
      } else {
        w.escalation = 2;
        w.stopAt = now;
        actions.push({ kind: "log", level: "warn", message: `worker ${w.index} (pid ${w.pid}) ignored SIGTERM; SIGKILL` });
        actions.push({ kind: "signal", pid: w.pid, signal: "SIGKILL" });
      }
    }
  }

  #checkLiveness(now: number, actions: Action[]): void {
    for (const w of this.workers.values()) {
      if (w.killed) continue;
      if (w.state === "booting" && now - w.startedAt >= BOOT_TIMEOUT_MS) {
        actions.push({ kind: "log", level: "error", message: `worker ${w.index} (pid ${w.pid}) not ready after ${BOOT_TIMEOUT_MS / 1000}s; killing it` });
        actions.push({ kind: "signal", pid: w.pid, signal: "SIGKILL" });
        w.killed = true; // once; its exit is the boot failure
      } else if (w.state === "ready" && this.#o.heartbeatTimeoutMs > 0 && now - w.lastBeatAt >= this.#o.heartbeatTimeoutMs) {
        actions.push({
          kind: "log",
          level: "error",
          message: `worker ${w.index} (pid ${w.pid}) sent no heartbeat for ${Math.round((now - w.lastBeatAt) / 1000)}s (stuck); killing it`,
        });
        actions.push({ kind: "signal", pid: w.pid, signal: "SIGKILL" });
        w.killed = true;
      }
    }
  }
}

function firstLine(error: unknown): string {
  const e = error as { code?: string; message?: string };
  const msg = (e?.message ?? String(error)).split("\n")[0]!;
  return e?.code && !msg.startsWith(e.code) ? `${e.code}: ${msg}` : msg;
}

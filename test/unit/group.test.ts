// The process group's reconciler (src/daemon/group.ts) with a fake clock and a fake fork:
// each defect the issue found in the old pool is a test here (a late `ready` of an older
// generation, a reload that half fails, reloading a failed site, a retry after stop, a crash
// loop, overlapping reloads, stop going straight to SIGKILL), beside the tests that run
// real processes (test/daemon/).

import { describe, expect, test } from "vitest";
import { BOOT_ATTEMPTS, BOOT_TIMEOUT_MS, CRASH_GRACE_MS, DEMAND_SETTLE_MS, Group, TERM_GRACE_MS, type Action } from "../../src/daemon/group.ts";

/** A fake master: forks are pids handed out in order, signals are recorded, time moves by hand. */
class Sim {
  now = 1_000_000;
  nextPid = 100;
  group: Group;
  spawned: { pid: number; index: number; generation: number; reason: string | null }[] = [];
  stops: number[] = [];
  signals: { pid: number; signal: string }[] = [];
  logs: { level: string; message: string }[] = [];

  constructor(processes = 2, gracefulTimeoutMs = 5000, heartbeatTimeoutMs = 0, ondemand = false) {
    this.group = new Group("site", { processes, gracefulTimeoutMs, heartbeatTimeoutMs, ondemand });
    this.run([]);
  }

  run(actions: Action[]): void {
    let pending = [...actions, ...this.group.reconcile(this.now)];
    while (pending.length > 0) {
      const more: Action[] = [];
      for (const a of pending) {
        if (a.kind === "spawn") {
          const pid = this.nextPid++;
          this.spawned.push({ pid, index: a.index, generation: a.generation, reason: a.reason });
          this.group.forked(a, pid, this.now);
        } else if (a.kind === "stop") this.stops.push(a.pid);
        else if (a.kind === "signal") this.signals.push({ pid: a.pid, signal: a.signal });
        else this.logs.push({ level: a.level, message: a.message });
      }
      pending = more;
    }
  }

  /** Reconcile after an event, as the master's loop does. */
  after(event: () => Action[] | void): void {
    const actions = event() ?? [];
    this.run(actions);
  }

  ready(pid: number) {
    this.after(() => this.group.ready(pid, this.now));
  }
  exit(pid: number, how = "exited with status 1") {
    this.after(() => this.group.exited(pid, how, this.now));
  }
  advance(ms: number) {
    this.now += ms;
    this.after(() => []);
  }
  /** Advance to the next deadline the group asked for (the master's tick). */
  tick() {
    const next = this.group.nextDeadline(this.now);
    if (next === null) throw new Error("no deadline");
    this.now = Math.max(this.now, next);
    this.after(() => []);
  }
  live(): number[] {
    return [...this.group.workers.values()].filter((w) => w.state !== "stopping").map((w) => w.pid);
  }
  readyPids(): number[] {
    return [...this.group.workers.values()].filter((w) => w.state === "ready").map((w) => w.pid);
  }
  /** Every worker asked to stop exits now. */
  exitStopped() {
    for (const w of [...this.group.workers.values()]) if (w.state === "stopping") this.exit(w.pid, "exited with status 0");
  }
}

function started(processes = 2): Sim {
  const sim = new Sim(processes);
  for (const s of [...sim.spawned]) sim.ready(s.pid);
  expect(sim.group.state).toBe("running");
  return sim;
}

describe("the process group's reconciler", () => {
  test("starts `processes` workers and is running once every one is ready", () => {
    const sim = new Sim(3);
    expect(sim.spawned.map((s) => s.index)).toEqual([1, 2, 3]);
    expect(sim.group.state).toBe("starting");
    sim.ready(100);
    sim.ready(101);
    expect(sim.group.state).toBe("starting");
    sim.ready(102);
    expect(sim.group.state).toBe("running");
    expect(sim.stops).toEqual([]);
  });

  test("reload: the old workers stop only once every new one is ready", () => {
    const sim = started(2);
    sim.after(() => sim.group.reload());
    expect(sim.group.state).toBe("reloading");
    const fresh = sim.spawned.slice(2).map((s) => s.pid);
    expect(fresh).toHaveLength(2);
    sim.ready(fresh[0]!);
    expect(sim.stops).toEqual([]); // one new ready is not a generation
    expect(sim.readyPids()).toHaveLength(3);
    sim.ready(fresh[1]!);
    expect(sim.stops.sort()).toEqual([100, 101]);
    expect(sim.group.state).toBe("running");
    expect(sim.logs.some((l) => /reloaded: 2 new workers serving/.test(l.message))).toBe(true);
  });

  test("a late `ready` from an older generation does not take a place: it is stopped", () => {
    const sim = started(1);
    sim.after(() => sim.group.reload()); // gen 2: pid 101 booting
    sim.after(() => sim.group.reload()); // gen 3: pid 101 is stopped (a ready worker serves), 102 booting
    expect(sim.signals).toContainEqual({ pid: 101, signal: "SIGTERM" });
    sim.ready(102);
    sim.ready(101); // late: it was already told to go
    expect(sim.live()).toEqual([102]);
    expect(sim.stops).toContain(100);
    sim.exitStopped();
    expect([...sim.group.workers.keys()]).toEqual([102]);
  });

  test("overlapping reloads are coalesced: never more than the old and one new generation, then exactly `processes`", () => {
    const sim = started(2);
    let most = 0;
    for (let i = 0; i < 5; i++) {
      sim.after(() => sim.group.reload());
      sim.advance(300);
      most = Math.max(most, sim.live().length);
    }
    expect(most).toBeLessThanOrEqual(4);
    for (const w of [...sim.group.workers.values()]) if (w.state === "booting") sim.ready(w.pid);
    sim.exitStopped();
    expect(sim.live()).toHaveLength(2);
    expect(sim.readyPids()).toHaveLength(2);
    expect(new Set([...sim.group.workers.values()].map((w) => w.generation))).toEqual(new Set([sim.group.generation]));
  });

  test("a reload that half fails stops the new workers that were ready and leaves the old ones serving", () => {
    const sim = started(2);
    sim.after(() => sim.group.reload());
    const [a, b] = sim.spawned.slice(2).map((s) => s.pid);
    sim.ready(a!);
    let failing = b!;
    for (let i = 1; i <= BOOT_ATTEMPTS; i++) {
      sim.exit(failing, "exited with status 3");
      if (i < BOOT_ATTEMPTS) {
        sim.tick();
        failing = sim.spawned.at(-1)!.pid;
      }
    }
    expect(sim.stops).toEqual([a]); // the new worker that did become ready
    expect(sim.live().sort()).toEqual([100, 101]);
    expect(sim.group.state).toBe("running");
    expect(sim.group.failure).toMatch(/^reload failed/);
    const count = sim.spawned.length;
    sim.advance(60_000);
    expect(sim.spawned.length).toBe(count); // nothing more is tried until the next reload
  });

  test("a site whose workers cannot start is failed after BOOT_ATTEMPTS with backoff, and a reload starts it again", () => {
    const sim = new Sim(1);
    const times: number[] = [];
    for (let i = 1; i <= BOOT_ATTEMPTS; i++) {
      times.push(sim.now);
      const pid = sim.spawned.at(-1)!.pid;
      sim.after(() => sim.group.bootError(pid, Object.assign(new Error("Unexpected token"), { code: "TSGI_ERR_APP_IMPORT" })));
      sim.exit(pid, "exited with status 3");
      if (i < BOOT_ATTEMPTS) sim.tick();
    }
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps).toEqual([100, 200, 400, 800]);
    expect(sim.group.state).toBe("failed");
    expect(sim.group.failure).toBe("TSGI_ERR_APP_IMPORT: Unexpected token");
    expect(sim.logs.filter((l) => l.level === "error")).toHaveLength(1);
    expect(sim.group.nextDeadline(sim.now)).toBeNull();
    sim.advance(3_600_000);
    expect(sim.spawned).toHaveLength(BOOT_ATTEMPTS);
    // Reloading a failed site starts workers, and it is running once they are ready.
    sim.after(() => sim.group.reload());
    expect(sim.group.state).toBe("starting");
    expect(sim.spawned).toHaveLength(BOOT_ATTEMPTS + 1);
    sim.ready(sim.spawned.at(-1)!.pid);
    expect(sim.group.state).toBe("running");
    expect(sim.group.failure).toBeNull();
  });

  test("no retry after stop: a place in backoff spawns nothing once the group stops", () => {
    const sim = new Sim(1);
    sim.exit(100);
    expect(sim.group.nextDeadline(sim.now)).toBe(sim.now + 100);
    sim.group.stop();
    sim.advance(10_000);
    expect(sim.spawned).toHaveLength(1);
    expect(sim.group.state).toBe("stopped");
  });

  test("a crashed ready worker is replaced at once; one that crashes right after ready is replaced with growing backoff", () => {
    const sim = started(2);
    sim.advance(CRASH_GRACE_MS * 10);
    sim.exit(100, "killed by SIGKILL");
    expect(sim.spawned.at(-1)).toMatchObject({ index: 1, reason: "killed by SIGKILL" });
    expect(sim.live()).toContain(101); // the other place is untouched
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const pid = sim.spawned.at(-1)!.pid;
      sim.ready(pid);
      const crashedAt = sim.now;
      sim.exit(pid, "killed by SIGSEGV");
      const before = sim.spawned.length;
      sim.tick();
      expect(sim.spawned.length).toBe(before + 1);
      delays.push(sim.now - crashedAt);
    }
    expect(delays).toEqual([100, 200, 400, 800]);
    expect(Object.fromEntries(sim.group.restarts)).toEqual({ exit: 5 });
  });

  test("max-requests recycling: the successor is ready before the old worker stops, one place at a time", () => {
    const sim = started(3);
    for (const pid of [100, 101, 102]) sim.after(() => sim.group.recycle(pid, "max-requests (1000 served)"));
    expect(sim.spawned).toHaveLength(4); // one successor, not three
    const first = sim.spawned[3]!;
    expect(first).toMatchObject({ index: 1, reason: "max-requests (1000 served)" });
    expect(sim.stops).toEqual([]);
    sim.ready(first.pid);
    expect(sim.stops).toEqual([100]);
    expect(sim.spawned).toHaveLength(5);
    sim.ready(sim.spawned[4]!.pid);
    sim.ready(sim.spawned[5]!.pid);
    expect(sim.stops).toEqual([100, 101, 102]);
    expect(sim.readyPids()).toHaveLength(3);
    expect(Object.fromEntries(sim.group.restarts)).toEqual({ "max-requests": 3 });
  });

  test("stop: the message, then SIGTERM after graceful-timeout, then SIGKILL", () => {
    const sim = started(1);
    sim.group.stop();
    sim.advance(0);
    expect(sim.stops).toEqual([100]);
    sim.tick();
    expect(sim.signals).toEqual([{ pid: 100, signal: "SIGTERM" }]);
    const termAt = sim.now;
    sim.tick();
    expect(sim.now - termAt).toBe(TERM_GRACE_MS);
    expect(sim.signals.at(-1)).toEqual({ pid: 100, signal: "SIGKILL" });
    sim.exit(100, "killed by SIGKILL");
    expect(sim.group.state).toBe("stopped");
  });

  test("a worker that sends no heartbeat is killed and replaced; one that is not ready in time is a boot failure", () => {
    const sim = new Sim(1, 5000, 10_000);
    sim.ready(100);
    sim.advance(5000);
    sim.after(() => sim.group.heartbeat(100, sim.now));
    sim.advance(9000);
    expect(sim.signals).toEqual([]);
    sim.tick();
    expect(sim.signals).toEqual([{ pid: 100, signal: "SIGKILL" }]);
    sim.exit(100, "killed by SIGKILL");
    const next = sim.spawned.at(-1)!;
    expect(next.pid).not.toBe(100);
    sim.advance(BOOT_TIMEOUT_MS);
    expect(sim.signals.at(-1)).toEqual({ pid: next.pid, signal: "SIGKILL" });
    sim.exit(next.pid, "killed by SIGKILL");
    expect(sim.logs.some((l) => l.level === "warn" && /retrying in 100 ms/.test(l.message))).toBe(true);
  });

  test("ondemand: no worker until a connection waits, one more per demand while none boots, up to processes; an idle worker gives its place back", () => {
    const sim = new Sim(2, 5000, 0, true);
    expect(sim.spawned).toHaveLength(0);
    expect(sim.group.state).toBe("idle");
    expect(sim.group.wantsDemand(sim.now)).toBe(true);
    sim.after(() => void sim.group.demand(sim.now));
    expect(sim.spawned.map((s) => s.index)).toEqual([1]);
    expect(sim.group.state).toBe("starting");
    // While it boots, a waiting connection is the same demand: nothing more starts.
    expect(sim.group.wantsDemand(sim.now)).toBe(false);
    expect(sim.group.demand(sim.now)).toBe(false);
    sim.ready(sim.spawned[0]!.pid);
    expect(sim.group.state).toBe("running");
    // Right after ready, connections queued while it booted are its own to accept.
    expect(sim.group.wantsDemand(sim.now)).toBe(false);
    expect(sim.group.nextDeadline(sim.now)).toBe(sim.now + DEMAND_SETTLE_MS);
    sim.tick();
    expect(sim.group.wantsDemand(sim.now)).toBe(true);
    sim.after(() => void sim.group.demand(sim.now));
    expect(sim.spawned.map((s) => s.index)).toEqual([1, 2]);
    sim.ready(sim.spawned[1]!.pid);
    sim.advance(DEMAND_SETTLE_MS);
    // Full: no more demand is taken.
    expect(sim.group.wantsDemand(sim.now)).toBe(false);
    // Worker 1 idles: it stops and its place is not refilled; the group takes demand again.
    sim.after(() => sim.group.idle(sim.spawned[0]!.pid));
    expect(sim.stops).toEqual([sim.spawned[0]!.pid]);
    sim.exit(sim.spawned[0]!.pid, "exited with status 0");
    expect(sim.spawned).toHaveLength(2);
    expect(sim.group.wantsDemand(sim.now)).toBe(true);
    sim.after(() => sim.group.idle(sim.spawned[1]!.pid));
    sim.exit(sim.spawned[1]!.pid, "exited with status 0");
    expect(sim.group.workers.size).toBe(0);
    expect(sim.group.state).toBe("idle");
  });

  test("ondemand: a reload of an idle site starts nothing; of an active one replaces its workers; a failed one starts over dormant", () => {
    const sim = new Sim(1, 5000, 0, true);
    sim.after(() => sim.group.reload());
    expect(sim.spawned).toHaveLength(0);
    expect(sim.group.state).toBe("idle");
    sim.after(() => void sim.group.demand(sim.now));
    sim.ready(sim.spawned[0]!.pid);
    sim.after(() => sim.group.reload());
    expect(sim.spawned).toHaveLength(2);
    expect(sim.group.state).toBe("reloading");
    sim.ready(sim.spawned[1]!.pid);
    expect(sim.stops).toEqual([sim.spawned[0]!.pid]);
    expect(sim.group.state).toBe("running");
    // Its workers cannot start: failed after BOOT_ATTEMPTS; a reload makes it wait for a connection again.
    sim.after(() => sim.group.idle(sim.spawned[1]!.pid));
    sim.exit(sim.spawned[1]!.pid, "exited with status 0");
    sim.advance(DEMAND_SETTLE_MS);
    sim.after(() => void sim.group.demand(sim.now));
    for (let i = 0; i < BOOT_ATTEMPTS; i++) {
      sim.exit(sim.spawned.at(-1)!.pid);
      if (i < BOOT_ATTEMPTS - 1) sim.tick();
    }
    expect(sim.group.state).toBe("failed");
    expect(sim.group.wantsDemand(sim.now)).toBe(false);
    const before = sim.spawned.length;
    sim.after(() => sim.group.reload());
    expect(sim.spawned).toHaveLength(before);
    expect(sim.group.state).toBe("idle");
    expect(sim.group.wantsDemand(sim.now)).toBe(true);
  });
});

// Processes of the benchmark harness: backends spawned and tracked by PID (with their start
// time, so a recycled PID is never signalled), their process trees read from /proc, CPU time
// (utime+stime) and RSS of those trees, and stopping everything the harness started — the
// root by SIGTERM, then SIGKILL for any root or descendant still alive after a grace period.

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

export const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

export interface Stat {
  pid: number;
  /** The command name (/proc/PID/comm, 15 bytes at most). */
  comm: string;
  /** R, S, D, Z (zombie: ended, not yet reaped), … */
  state: string;
  ppid: number;
  /** utime + stime, clock ticks. */
  ticks: number;
  /** Start time since boot, clock ticks: tells a recycled PID apart. */
  start: number;
}

/** /proc/PID/stat, parsed after the last ")" (process titles hold spaces and parentheses). */
export function readStat(pid: number): Stat | null {
  let line: string;
  try {
    line = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const f = line.slice(line.lastIndexOf(")") + 2).split(" ");
  // f[0] is field 3 (state): field N is f[N - 3].
  return { pid, comm: line.slice(line.indexOf("(") + 1, line.lastIndexOf(")")), state: f[0]!, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), start: Number(f[19]) };
}

export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const e of readdirSync("/proc")) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    const s = readStat(Number(e));
    if (s) out.push(s);
  }
  return out;
}

/** The root and all its descendants now (root first). */
export function processTree(root: number): Stat[] {
  const stats = allStats();
  const rootStat = stats.find((s) => s.pid === root);
  if (!rootStat) return [];
  const tree = [rootStat];
  for (let i = 0; i < tree.length; i++) for (const s of stats) if (s.ppid === tree[i]!.pid) tree.push(s);
  return tree;
}

/**
 * A backend's processes: all of them, the root's children, and the workers (the children, or
 * the root when it has none). tsx's esbuild service (a child of tsgi's master when it
 * transpiles) counts in `all`, not as a child.
 */
export interface Group {
  all: Stat[];
  children: Stat[];
  workers: Stat[];
}

export function group(root: number): Group {
  const all = processTree(root);
  const children = all.filter((s) => s.ppid === root && s.comm !== "esbuild" && s.state !== "Z");
  return { all, children, workers: children.length ? children : all.slice(0, 1) };
}

/** Sum of utime+stime in µs of these processes now (those that ended count 0). */
export function cpuMicros(stats: Stat[]): number {
  let ticks = 0;
  for (const s of stats) {
    const now = readStat(s.pid);
    if (now && now.start === s.start) ticks += now.ticks;
  }
  return (ticks * 1e6) / CLK_TCK;
}

export function sumRssKiB(stats: Stat[]): number {
  let kib = 0;
  for (const s of stats) kib += rssKiB(s.pid);
  return kib;
}

// ---- what the harness started ----

export interface Started {
  name: string;
  child: ChildProcess;
  pid: number;
  start: number;
  exited: Promise<void>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null;
}

const started = new Set<Started>();

export function spawnTracked(name: string, cmd: string, args: string[], options: SpawnOptions): Started {
  const child = spawn(cmd, args, options);
  if (child.pid === undefined) throw new Error(`could not start ${name}: ${cmd} ${args.join(" ")}`);
  const entry: Started = {
    name,
    child,
    pid: child.pid,
    start: readStat(child.pid)?.start ?? -1,
    exitInfo: null,
    exited: new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        entry.exitInfo = { code, signal };
        resolve();
      });
      child.once("error", () => {
        entry.exitInfo = { code: null, signal: null };
        resolve();
      });
    }),
  };
  started.add(entry);
  return entry;
}

function killIfSame(s: { pid: number; start: number }, signal: NodeJS.Signals): void {
  const now = readStat(s.pid);
  if (!now || (s.start >= 0 && now.start !== s.start)) return;
  try {
    process.kill(s.pid, signal);
  } catch {
    // ended meanwhile
  }
}

/** SIGTERM to the root, SIGKILL to it and its former descendants after `graceMs`. */
export async function stopTracked(entry: Started, graceMs = 8000): Promise<void> {
  const tree = entry.exitInfo ? [] : processTree(entry.pid);
  if (!entry.exitInfo) {
    killIfSame(entry, "SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([entry.exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }
  // Descendants (cluster workers, uWSGI workers) normally end with their master; any left are ours.
  const deadline = Date.now() + 2000;
  for (;;) {
    const alive = tree.filter((s) => {
      const now = readStat(s.pid);
      return now && now.start === s.start && (s.pid !== entry.pid || !entry.exitInfo);
    });
    if (!alive.length) break;
    if (Date.now() > deadline) {
      for (const s of alive) killIfSame(s, "SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!entry.exitInfo) {
    killIfSame(entry, "SIGKILL");
    await entry.exited;
  }
  started.delete(entry);
}

/** Last resort on process exit: SIGKILL whatever is still tracked (synchronous). */
export function killAllTrackedSync(): void {
  for (const e of started) {
    for (const s of processTree(e.pid).reverse()) killIfSame(s, "SIGKILL");
  }
  started.clear();
}

export function trackedCount(): number {
  return started.size;
}

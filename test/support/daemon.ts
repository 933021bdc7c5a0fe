// `tsgi daemon -c FILE` as a test child, and the commands users run against it (`tsgi status
// --json`, `tsgi stop`), for the real-process daemon tests under test/daemon/. The status
// command runs asynchronously, so that a load running in the same test process is not
// paused while it does.

import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";

const BIN = join(import.meta.dirname, "..", "..", "bin", "tsgi.js");

export interface Daemon {
  proc: ChildProcess;
  /** Everything the daemon wrote to stderr so far (its error log, and its workers'). */
  stderr(): string;
  /** Everything written to stdout so far (the access logs going to "-"). */
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The test runner's environment, minus a TSGI_SETTINGS_MODULE it may carry, plus `extra`. */
export function daemonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.TSGI_SETTINGS_MODULE;
  return env;
}

export function startDaemon(cwd: string, file: string, env: NodeJS.ProcessEnv = daemonEnv()): Daemon {
  let err = "";
  let out = "";
  const proc = spawn(process.execPath, [BIN, "daemon", "-c", file], { cwd, stdio: ["ignore", "pipe", "pipe"], env });
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    stderr: () => err,
    stdout: () => out,
    exited,
    async stop(timeoutMs = 20_000) {
      if (alive()) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => alive() && proc.kill("SIGKILL"), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

type Nothing = null | undefined | false | 0 | "";

/** `fn()` again every `everyMs` until it gives something (not null, false, …), within `timeoutMs`. */
export async function poll<T>(what: string, timeoutMs: number, fn: () => T | Nothing | Promise<T | Nothing>, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `tsgi ARGS…` run synchronously (commands that change things: stop, reload). */
export function tsgi(cwd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface WorkerStatus {
  pid: number;
  index: number;
  generation: number;
  state: "booting" | "ready" | "stopping";
  served: number;
  inFlight: number;
  lastRestart: string | null;
}

export interface SiteStatusJson {
  name: string;
  state: string;
  failure: string | null;
  workers: WorkerStatus[];
  /** ondemand: the front server's persistent connections the master holds for the next worker. */
  heldConnections: number;
}

/** `tsgi status --json -c FILE`, without blocking the test's event loop. */
export function status(cwd: string, file: string): Promise<{ sites: SiteStatusJson[] }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, "status", "--json", "-c", file], { cwd, encoding: "utf8", timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`tsgi status failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as { sites: SiteStatusJson[] });
    });
  });
}

export async function siteStatus(cwd: string, file: string, name: string): Promise<SiteStatusJson> {
  const s = (await status(cwd, file)).sites.find((x) => x.name === name);
  if (!s) throw new Error(`tsgi status lists no site ${name}`);
  return s;
}

/**
 * The same status straight from the control socket (what `tsgi status` asks): a poll that
 * costs no process start, for invariants checked many times a second under load.
 */
export function controlStatus(controlPath: string): Promise<{ sites: SiteStatusJson[] }> {
  return new Promise((resolve, reject) => {
    const sock = connect(controlPath);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(`${JSON.stringify({ command: "status" })}\n`));
    sock.on("data", (d: string) => (buf += d));
    sock.on("error", reject);
    sock.on("end", () => {
      try {
        const reply = JSON.parse(buf) as { ok: boolean; sites?: SiteStatusJson[]; error?: string };
        if (!reply.ok) reject(new Error(`control socket: ${reply.error}`));
        else resolve({ sites: reply.sites ?? [] });
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/**
 * `npx tsgi runserver 127.0.0.1:PORT` in `cwd` (a project), as a user runs it: the body of
 * GET `path` once it answers, and what it printed; then stopped, its whole process group
 * (npx, the supervisor, its server processes) with SIGTERM.
 */
export async function runserverGet(cwd: string, path: string, o: { npxArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<{ body: string; output: string }> {
  const { freePort } = await import("./front-servers.ts");
  const port = await freePort();
  const dev = spawn("npx", [...(o.npxArgs ?? []), "tsgi", "runserver", `127.0.0.1:${port}`], { cwd, env: o.env ?? process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  dev.stdout!.setEncoding("utf8").on("data", (d: string) => (output += d));
  dev.stderr!.setEncoding("utf8").on("data", (d: string) => (output += d));
  const exited = new Promise((r) => dev.once("exit", r));
  try {
    const body = await poll(`runserver answering (output: ${output})`, 30_000, async () => (await fetch(`http://127.0.0.1:${port}${path}`).catch(() => null))?.text(), 200);
    return { body, output };
  } finally {
    process.kill(-dev.pid!, "SIGTERM");
    await exited;
  }
}

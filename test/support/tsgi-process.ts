// `tsgi serve` as a real child process for the integration tests: listeners on kernel-chosen
// TCP ports (`PROTO:127.0.0.1:0`, read back from the "listening on" lines) or on unix sockets
// in a temp folder, stdout and stderr captured for log assertions, and stop by PID with
// SIGTERM (then SIGKILL after a timeout), waiting for the exit.

import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ECHO_APP = join(ROOT, "test", "support", "echo-app.ts");

export type Proto = "fastcgi" | "uwsgi" | "http";

/** A listener to open: TCP on loopback, or a unix socket named `name` in the temp folder. */
export interface ListenWanted {
  proto: Proto;
  unix?: boolean;
  /** Key under which the address is returned (default: the protocol). */
  key?: string;
}

export type Address = { host: string; port: number } | { path: string };

export interface TsgiProcess {
  pid: number;
  /** The temp folder: unix sockets, the echo app's events file. */
  dir: string;
  /** Addresses by ListenWanted.key. */
  addresses: Record<string, Address>;
  tcp(key: string): { host: string; port: number };
  unixPath(key: string): string;
  /** `host:port` or `unix:/path`, as nginx writes an upstream address. */
  nginxAddress(key: string): string;
  stdout(): string;
  stderr(): string;
  /** The echo app's events file (TSGI_ECHO_EVENTS) as lines. */
  events(): string[];
  /** Resolves once `pattern` matches stderr (polls; rejects after `timeoutMs`). */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  waitForEvent(line: string, timeoutMs?: number): Promise<void>;
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface TsgiOptions {
  app?: string;
  listen: ListenWanted[];
  /** More `tsgi serve` flags, e.g. ["--processes", "2", "--mount", "/app"]. */
  args?: string[];
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function poll<T>(what: string, timeoutMs: number, check: () => T | null | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export async function startTsgi(options: TsgiOptions): Promise<TsgiProcess> {
  const dir = mkdtempSync(join(tmpdir(), "tsgi-serve-"));
  // Started as root, nginx and Apache workers run as www-data and must reach the sockets here.
  if (process.getuid?.() === 0) chmodSync(dir, 0o755);
  const eventsPath = join(dir, "events.log");
  const args = [join(ROOT, "bin", "tsgi.js"), "serve", options.app ?? ECHO_APP];
  const keys: string[] = [];
  for (const l of options.listen) {
    const key = l.key ?? l.proto;
    keys.push(key);
    args.push("--listen", l.unix ? `${l.proto}:unix:${join(dir, `${key}.sock`)}` : `${l.proto}:127.0.0.1:0`);
  }
  if (options.listen.some((l) => l.unix)) args.push("--socket-mode", "0666");
  args.push(...(options.args ?? []));

  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TSGI_ECHO_EVENTS: eventsPath, ...options.env },
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const state: { exit: { code: number | null; signal: NodeJS.Signals | null } | null } = { exit: null };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      state.exit = { code, signal };
      resolve(state.exit);
    });
  });

  // One "TIME [info] [NAME] listening on PROTO ADDR (N workers)" error-log line per listener, in --listen order.
  const lines = await poll("tsgi serve's listening lines", options.startTimeoutMs ?? 20_000, () => {
    if (state.exit) throw new Error(`tsgi serve exited (${JSON.stringify(state.exit)})\n--- stdout ---\n${out}\n--- stderr ---\n${err}`);
    const found = [...err.matchAll(/ \[info\] \[\S+\] listening on (\w+) (\S+)/g)];
    return found.length >= keys.length ? found : null;
  }).catch(async (e: unknown) => {
    child.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });

  const addresses: Record<string, Address> = {};
  keys.forEach((key, i) => {
    const addr = lines[i]![2]!;
    if (addr.startsWith("unix:")) addresses[key] = { path: addr.slice(5) };
    else {
      const colon = addr.lastIndexOf(":");
      addresses[key] = { host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) };
    }
  });

  const proc: TsgiProcess = {
    pid: child.pid!,
    dir,
    addresses,
    tcp(key) {
      const a = addresses[key];
      if (!a || !("port" in a)) throw new Error(`no TCP listener ${key}`);
      return a;
    },
    unixPath(key) {
      const a = addresses[key];
      if (!a || !("path" in a)) throw new Error(`no unix listener ${key}`);
      return a.path;
    },
    nginxAddress(key) {
      const a = addresses[key];
      if (!a) throw new Error(`no listener ${key}`);
      return "path" in a ? `unix:${a.path}` : `${a.host}:${a.port}`;
    },
    stdout: () => out,
    stderr: () => err,
    events: () => (existsSync(eventsPath) ? readFileSync(eventsPath, "utf8").split("\n").filter(Boolean) : []),
    waitForStderr: (pattern, timeoutMs = 5000) => poll(`stderr to match ${pattern}`, timeoutMs, () => err.match(pattern)),
    waitForEvent: (line, timeoutMs = 5000) =>
      poll(`event "${line}" (events: ${proc.events().join(" | ")})`, timeoutMs, () => proc.events().includes(line)).then(() => undefined),
    async stop(timeoutMs = 15_000) {
      if (!state.exit) {
        process.kill(child.pid!, "SIGTERM");
        const timer = setTimeout(() => {
          if (!state.exit) process.kill(child.pid!, "SIGKILL");
        }, timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
      return state.exit!;
    },
  };
  return proc;
}

// Real `tsgi` processes for the issue-8 regression tests, with the flags a test gives them
// verbatim (test/support/tsgi-process.ts picks the listen addresses itself; these tests need
// to choose paths, share one between two instances and read logs from files): start and wait
// for the "listening" lines (from stderr, or from the --error-log file when one is given), or
// run to exit; stop by PID; every process started here is remembered, so that `stopAll()` in
// afterAll leaves nothing behind. Plus the /proc readings the tests make of a master and its
// workers, and raw uwsgi / FastCGI clients on TCP or unix sockets.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fcgi, uwsgi } from "../../../src/native.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const BIN = join(ROOT, "bin", "tsgi.js");
export const PROBE_APP = join(ROOT, "test", "regressions", "apps", "probe.mjs");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function poll<T>(what: string, timeoutMs: number, check: () => T | null | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export interface Proc {
  pid: number;
  stdout(): string;
  stderr(): string;
  /** The error log: stderr, or the --error-log file when the flags name one. */
  errorLog(): string;
  /** The exit, once it happened (else null). */
  exit(): Exit | null;
  exited: Promise<Exit>;
  /** "PROTO ADDRESS" of each listening line, in order (e.g. "http 127.0.0.1:41234", "fastcgi unix:/tmp/x.sock"). */
  listening: string[];
  /** `host:port` of the n-th listener (a TCP one). */
  tcp(n?: number): { host: string; port: number };
  /** http://host:port of the n-th listener. */
  url(n?: number): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit. */
  stop(timeoutMs?: number): Promise<Exit>;
}

export interface SpawnOptions {
  cwd?: string;
  /** Added to the test's environment (a value of null removes the variable). */
  env?: Record<string, string | null>;
  /** The command (default: the checkout's bin/tsgi.js). */
  bin?: string;
}

const live = new Set<Proc>();

function environment(extra: Record<string, string | null> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(extra)) {
    if (v === null) delete env[k];
    else env[k] = v;
  }
  return env;
}

function flagValue(args: string[], flag: string): string | undefined {
  const i = args.lastIndexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Starts `tsgi ARGS…` and keeps its output. */
export function spawnTsgi(args: string[], o: SpawnOptions = {}): Proc {
  const child: ChildProcess = spawn(process.execPath, [o.bin ?? BIN, ...args], {
    cwd: o.cwd ?? ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: environment(o.env),
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const state: { exit: Exit | null } = { exit: null };
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => {
      state.exit = { code, signal };
      live.delete(proc);
      resolve(state.exit);
    });
  });
  const errorFile = flagValue(args, "--error-log");
  const errorLog = () => {
    if (!errorFile || errorFile === "-") return err;
    return existsSync(errorFile) ? readFileSync(errorFile, "utf8") : "";
  };
  const listening: string[] = [];
  const at = (n: number) => {
    const addr = listening[n]?.split(" ")[1];
    if (!addr || addr.startsWith("unix:")) throw new Error(`listener ${n} is not a TCP one: ${listening[n]}`);
    const colon = addr.lastIndexOf(":");
    return { host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) };
  };
  const proc: Proc = {
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    errorLog,
    exit: () => state.exit,
    exited,
    listening,
    tcp: (n = 0) => at(n),
    url: (n = 0) => {
      const a = at(n);
      return `http://${a.host}:${a.port}`;
    },
    waitForLog: (pattern, timeoutMs = 5000) => poll(`the error log to match ${pattern}; it has:\n${errorLog()}`, timeoutMs, () => errorLog().match(pattern)),
    async stop(timeoutMs = 15_000) {
      if (!state.exit) {
        try {
          process.kill(proc.pid, "SIGTERM");
        } catch {
          // exited meanwhile
        }
        const timer = setTimeout(() => {
          if (!state.exit) process.kill(proc.pid, "SIGKILL");
        }, timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      return state.exit!;
    },
  };
  live.add(proc);
  return proc;
}

/**
 * `tsgi serve APP ARGS…` until every --listen has its "listening on" line in the error log
 * (rejects with the output when it exits first or takes longer than `timeoutMs`).
 */
export async function serve(app: string, args: string[], o: SpawnOptions & { timeoutMs?: number } = {}): Promise<Proc> {
  const wanted = args.filter((a) => a === "--listen").length;
  const proc = spawnTsgi(["serve", app, ...args], o);
  try {
    const lines = await poll("tsgi serve's listening lines", o.timeoutMs ?? 20_000, () => {
      if (proc.exit()) throw new Error(`tsgi serve exited (${JSON.stringify(proc.exit())})\n--- stdout ---\n${proc.stdout()}\n--- stderr ---\n${proc.stderr()}\n--- error log ---\n${proc.errorLog()}`);
      const found = [...proc.errorLog().matchAll(/ \[info\] \[\S+\] listening on (\w+ \S+)/g)];
      return found.length >= wanted ? found : null;
    });
    for (const m of lines) proc.listening.push(m[1]!);
  } catch (err) {
    if (!proc.exit()) process.kill(proc.pid, "SIGKILL");
    await proc.exited;
    throw err;
  }
  return proc;
}

/** `tsgi ARGS…` run to its exit (SIGKILL after `timeoutMs`). */
export async function runTsgi(args: string[], o: SpawnOptions & { timeoutMs?: number } = {}): Promise<Exit & { stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const proc = spawnTsgi(args, o);
  const timer = setTimeout(() => {
    if (!proc.exit()) process.kill(proc.pid, "SIGKILL");
  }, o.timeoutMs ?? 20_000);
  const exit = await proc.exited;
  clearTimeout(timer);
  return { ...exit, stdout: proc.stdout(), stderr: proc.stderr(), ms: Date.now() - started };
}

/** Stops every process started here and still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

/** The lines of a log, without the empty last one. */
export const lines = (text: string) => text.split("\n").filter((l) => l !== "");

// ---- /proc ------------------------------------------------------------------------------------

/** Pids whose parent is `ppid` (from /proc/PID/stat). */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // Fields after the command's closing parenthesis: state, ppid, …
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === ppid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The command line of `pid` as ps shows it (a process title set by tsgi replaces argv). */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0+$/, "").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

/** The worker processes of a master: its children titled "tsgi: SITE worker N". */
export function workersOf(master: number): number[] {
  return childrenOf(master)
    .filter((pid) => / worker \d+/.test(cmdline(pid)))
    .sort((a, b) => a - b);
}

/** A field of /proc/PID/status ("Uid", "Gid", …) as its numbers. */
export function statusIds(pid: number, field: "Uid" | "Gid"): number[] {
  const m = new RegExp(`^${field}:\\s+(.*)$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return m[1]!.trim().split(/\s+/).map(Number);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** uid (and primary gid) of a user, gid of a group, from /etc/passwd and /etc/group. */
export function userIds(name: string): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.split(":")[0] === name);
  if (!line) throw new Error(`no user ${name} on this machine`);
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

export function groupId(name: string): number {
  const line = readFileSync("/etc/group", "utf8").split("\n").find((l) => l.split(":")[0] === name);
  if (!line) throw new Error(`no group ${name} on this machine`);
  return Number(line.split(":")[2]);
}

/** Socket inodes a process holds open (from /proc/PID/fd). */
export function socketInodes(pid: number): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Every TCP socket in state LISTEN (0A) on this machine: inode and local port (IPv4 and IPv6). */
export function listeningTcp(): { inode: number; port: number; address: string }[] {
  const out: { inode: number; port: number; address: string }[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const row of text.split("\n").slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A") continue;
      const [addr, port] = f[1]!.split(":");
      out.push({ inode: Number(f[9]), port: parseInt(port!, 16), address: addr! });
    }
  }
  return out;
}

/** The TCP ports `pid` listens on (its socket inodes that are LISTEN rows). */
export function listeningPortsOf(pid: number): number[] {
  const mine = socketInodes(pid);
  return [...new Set(listeningTcp().filter((r) => mine.has(r.inode)).map((r) => r.port))].sort((a, b) => a - b);
}

// ---- raw uwsgi and FastCGI clients --------------------------------------------------------------

export type Address = { host: string; port: number } | { path: string };

export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Everything received before the peer closed. */
  raw: Buffer;
}

/** Opens a connection; resolves once connected. */
export function openSocket(a: Address): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = "path" in a ? connect({ path: a.path }) : connect({ host: a.host, port: a.port });
    sock.once("connect", () => {
      sock.off("error", reject);
      // A reset after the connection is seen through "close"; an error event must not go unhandled.
      sock.on("error", () => undefined);
      resolve(sock);
    });
    sock.once("error", reject);
  });
}

/** Sends `data` on a new connection and collects every byte until the peer closes. */
export async function exchange(a: Address, data: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  const sock = await openSocket(a);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString("latin1").slice(0, 200)}`));
    }, timeoutMs);
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", () => undefined);
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    sock.write(data);
  });
}

/** The CGI params of a GET (or `method`) of `uri`, as a front server sends them. */
export function cgiParams(uri: string, extra: string[] = [], method = "GET", body?: Buffer): string[] {
  const q = uri.indexOf("?");
  const path = q < 0 ? uri : uri.slice(0, q);
  return [
    "REQUEST_METHOD", method,
    "REQUEST_URI", uri,
    "PATH_INFO", path,
    "QUERY_STRING", q < 0 ? "" : uri.slice(q + 1),
    "SERVER_PROTOCOL", "HTTP/1.1",
    "SERVER_NAME", "localhost",
    "SERVER_PORT", "80",
    "REMOTE_ADDR", "127.0.0.1",
    ...(body ? ["CONTENT_LENGTH", String(body.length)] : []),
    ...extra,
  ];
}

function parseHttpish(text: string, statusLine: RegExp): { status: number; headers: Record<string, string>; body: string } {
  const split = text.indexOf("\r\n\r\n");
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? "" : text.slice(split + 4);
  const headers: Record<string, string> = {};
  let status = 0;
  for (const [i, line] of head.split("\r\n").entries()) {
    const s = i === 0 ? statusLine.exec(line) : null;
    if (s) {
      status = Number(s[1]);
      continue;
    }
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  if (!status && headers.status) status = Number(headers.status.slice(0, 3));
  return { status, headers, body };
}

/** One uwsgi request on a new connection; the reply as tsgi wrote it (raw HTTP/1.1). */
export async function uwsgiRequest(a: Address, uri: string, o: { extra?: string[]; method?: string; body?: Buffer } = {}): Promise<RawReply> {
  const packet = uwsgi.request(cgiParams(uri, o.extra, o.method, o.body));
  const raw = await exchange(a, o.body ? Buffer.concat([packet, o.body]) : packet);
  return { ...parseHttpish(raw.toString("utf8"), /^HTTP\/1\.[01] (\d{3})/), raw };
}

const FCGI_PARAMS = 4;
const FCGI_STDIN = 5;
const FCGI_STDOUT = 6;
const FCGI_END_REQUEST = 3;

/** Splits FastCGI output into records (a trailing partial record is left out). */
export function fcgiRecords(b: Buffer): { type: number; id: number; content: Buffer }[] {
  const out: { type: number; id: number; content: Buffer }[] = [];
  let at = 0;
  while (at + 8 <= b.length) {
    const len = b.readUInt16BE(at + 4);
    const pad = b[at + 6]!;
    if (at + 8 + len + pad > b.length) break;
    out.push({ type: b[at + 1]!, id: b.readUInt16BE(at + 2), content: b.subarray(at + 8, at + 8 + len) });
    at += 8 + len + pad;
  }
  return out;
}

/** One FastCGI RESPONDER request on a new connection (no keep-conn); the STDOUT as a reply, and whether FCGI_END_REQUEST came. */
export async function fcgiRequest(a: Address, uri: string, o: { extra?: string[]; method?: string; body?: Buffer } = {}): Promise<RawReply & { ended: boolean }> {
  const parts = [fcgi.beginRequest(1, 1, 0), fcgi.stream(FCGI_PARAMS, 1, fcgi.pairs(cgiParams(uri, o.extra, o.method, o.body))), fcgi.streamEnd(FCGI_PARAMS, 1)];
  if (o.body && o.body.length > 0) parts.push(fcgi.stream(FCGI_STDIN, 1, o.body));
  parts.push(fcgi.streamEnd(FCGI_STDIN, 1));
  const raw = await exchange(a, Buffer.concat(parts));
  const recs = fcgiRecords(raw);
  const stdout = Buffer.concat(recs.filter((r) => r.type === FCGI_STDOUT).map((r) => r.content)).toString("utf8");
  return { ...parseHttpish(stdout, /^HTTP\/1\.[01] (\d{3})/), raw, ended: recs.some((r) => r.type === FCGI_END_REQUEST) };
}

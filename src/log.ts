// The logs a site writes: an error log of plain lines (time, level, site, message — what
// nginx and PHP-FPM operators grep; an error is one line with its code, and the stack of the
// application's own frames under it) and an access log in common log format with the
// duration appended. Each goes to a destination: the process's stderr / stdout ("-"), a file
// (appended, and reopened on SIGUSR1 for logrotate), or nowhere ("off").

import { closeSync, fchownSync, openSync, writeSync } from "node:fs";
import { tsgiError } from "./errors.ts";
import { ROOT } from "./paths.ts";

export interface Logger {
  error(message: string, err?: unknown): void;
  warn(message: string): void;
  info(message: string): void;
  /** One access-log line. */
  access(entry: AccessEntry): void;
}

export interface AccessEntry {
  remoteAddr: string;
  method: string;
  uri: string;
  protocol: string;
  status: number;
  bytes: number;
  durationMs: number;
  user?: string;
}

export interface LogSink {
  write(data: string | Uint8Array): unknown;
}

export interface LogStreams {
  error: LogSink;
  access: LogSink | null;
}

/**
 * A log file, opened for appending. `reopen()` opens the path again (after logrotate moved
 * the file away) and closes the old descriptor; a write that fails is dropped: a full disk
 * must not stop the site.
 */
export class LogFile implements LogSink {
  readonly path: string;
  #fd: number;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, "a", 0o640);
  }

  write(data: string | Uint8Array): void {
    try {
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      for (let at = 0; at < bytes.length; ) at += writeSync(this.#fd, bytes, at);
    } catch {
      // nowhere left to say it
    }
  }

  reopen(): void {
    const fd = openSync(this.path, "a", 0o640);
    closeSync(this.#fd);
    this.#fd = fd;
  }
}

const files = new Map<string, LogFile>();

/**
 * Where a log goes, as the settings spell it: "-" is `stdio` (the process's own stdout or
 * stderr), "off" nowhere (null), anything else a file path (one LogFile per path).
 */
export function logDestination(where: string, stdio: LogSink, key = "log"): LogSink | null {
  if (where === "-") return stdio;
  if (where === "off") return null;
  let file = files.get(where);
  if (!file) {
    try {
      file = new LogFile(where);
    } catch (err) {
      throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `cannot open ${where}: ${summarize(err)}` });
    }
    files.set(where, file);
  }
  return file;
}

/** SIGUSR1: every log file of this process opened again. Returns the errors (path: reason). */
export function reopenLogFiles(): string[] {
  const failed: string[] = [];
  for (const f of files.values()) {
    try {
      f.reopen();
    } catch (err) {
      failed.push(`${f.path}: ${(err as Error).message}`);
    }
  }
  return failed;
}

/**
 * Makes sure a log file exists and belongs to `owner` (the site's user) before workers that
 * run as that user open it: the master does this at start and before each reopen.
 */
export function prepareLogFile(path: string, owner: { uid: number; gid: number } | null, key = "log"): void {
  let fd: number;
  try {
    fd = openSync(path, "a", 0o640);
  } catch (err) {
    throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `cannot open ${path}: ${summarize(err)}` });
  }
  try {
    if (owner) fchownSync(fd, owner.uid, owner.gid);
  } finally {
    closeSync(fd);
  }
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The time as common log format writes it: 10/Oct/2000:13:55:36 +0000 (UTC), made once a second. */
let clfSecond = -1;
let clfText = "";
function clfTime(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second === clfSecond) return clfText;
  const d = new Date(now);
  const p = (n: number) => String(n).padStart(2, "0");
  clfSecond = second;
  clfText = `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
  return clfText;
}

// Frames of tsgi itself, of Node and of dependencies: not the application's own.
const FOREIGN_FRAME = new RegExp(
  [/\(node:/.source, /at node:/.source, /\/node_modules\//.source, ...["src", "dist", "bin"].map((d) => escapeRegExp(`${ROOT}/${d}/`))].join("|"),
);
const MAX_FRAMES = 10;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The "    at …" lines of `stack` that are the application's own (at most ten). */
export function applicationFrames(stack: string | undefined): string[] {
  if (!stack) return [];
  const frames: string[] = [];
  for (const line of stack.split("\n")) {
    if (!/^\s+at /.test(line) || FOREIGN_FRAME.test(line)) continue;
    frames.push(`    ${line.trim()}`);
    if (frames.length === MAX_FRAMES) break;
  }
  return frames;
}

/** An error's one-line summary: its code (when it has one, once) and its message, on one line. */
export function summarize(err: unknown): string {
  if (!(err instanceof Error)) return typeof err === "string" ? err : JSON.stringify(err) ?? String(err);
  const code = (err as { code?: unknown }).code;
  const first = err.message.trim().replace(/\s*\n\s*/g, " ");
  // Node's system errors already start with their code ("EACCES: permission denied, …").
  if (typeof code === "string" && !first.startsWith(code)) return `${code}: ${first}`;
  if (typeof code === "string") return first;
  return `${err.name}: ${first}`;
}

/**
 * An error as the error log writes it: the summary, then the application's own frames (an
 * error from another process brings them along as `frames`).
 */
export function describeError(err: unknown): string {
  const carried = (err as { frames?: unknown } | null)?.frames;
  const frames = Array.isArray(carried)
    ? (carried as string[])
    : err instanceof Error
      ? applicationFrames((err.cause instanceof Error ? err.cause : err).stack)
      : [];
  return [summarize(err), ...frames].join("\n");
}

// Bytes an access-log field may not carry as they are: a quote or backslash would end or
// break the field, a control byte (CR, LF, ESC…) forge a line or drive a terminal. nginx's
// default escaping writes them as \xHH, and so does tsgi, with every byte above 0x7E. A char
// above 0xFF (a string the application made, not bytes off the wire) is written as its low
// byte, escaped when that is: U+010A must not become a raw LF.
const HEX_BYTES = Buffer.from("0123456789ABCDEF", "latin1");

/** A field of an access-log line, escaped as nginx escapes it (chars are bytes: latin1). */
export function escapeField(text: string): string {
  const buf = Buffer.allocUnsafe(4 * text.length);
  return buf.toString("latin1", 0, putField(buf, 0, text));
}

/** `text` escaped (the rule above), into `buf` at `at`: where it ends (up to 4 bytes a char). */
function putField(buf: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const b = text.charCodeAt(i) & 0xff;
    if (b < 0x20 || b >= 0x7f || b === 0x22 || b === 0x5c) {
      buf[at] = 0x5c; // \xHH
      buf[at + 1] = 0x78;
      buf[at + 2] = HEX_BYTES[b >> 4]!;
      buf[at + 3] = HEX_BYTES[b & 15]!;
      at += 4;
    } else {
      buf[at++] = b;
    }
  }
  return at;
}

/** ASCII text of our own (the time, a number's digits), into `buf` at `at`. */
function putAscii(buf: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) buf[at++] = text.charCodeAt(i);
  return at;
}

/** A count's decimal digits, into `buf` at `at` (a string's only when it is not a whole number). */
function putCount(buf: Buffer, at: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) return putAscii(buf, at, String(n));
  let end = at + 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) end++;
  for (let i = end - 1, m = n; i >= at; i--, m = Math.floor(m / 10)) buf[i] = 0x30 + (m % 10);
  return end;
}

/**
 * A duration in milliseconds with three decimals, as toFixed(3) writes it, without making
 * the string (toFixed was a string and ~100 ns a line). Rounded from ms × 1000, which may
 * differ from toFixed's exact decimal rounding in the last digit of a half-way value.
 */
function putMillis(buf: Buffer, at: number, ms: number): number {
  if (!(ms >= 0 && ms < 1e12)) return putAscii(buf, at, ms.toFixed(3));
  const thousandths = Math.round(ms * 1000);
  at = putCount(buf, at, Math.floor(thousandths / 1000));
  const frac = thousandths % 1000;
  buf[at] = 0x2e; // .
  buf[at + 1] = 0x30 + Math.floor(frac / 100);
  buf[at + 2] = 0x30 + (Math.floor(frac / 10) % 10);
  buf[at + 3] = 0x30 + (frac % 10);
  return at + 4;
}

/** The most bytes putLine writes for `e`: 4 a char of the request's fields, and room for the rest (the duration's text: at most 26). */
function lineBound(e: AccessEntry): number {
  return 4 * (e.remoteAddr.length + (e.user?.length ?? 0) + e.method.length + e.uri.length + e.protocol.length) + 160;
}

/**
 * One access line into `b` at `at`, escaped on the way (no string of the line: a template of
 * a dozen parts, flattened by the write, was ~700 bytes a request to allocate): where it ends.
 */
function putLine(b: Buffer, at: number, e: AccessEntry): number {
  const start = at;
  at = putField(b, at, e.remoteAddr);
  if (at === start) b[at++] = 0x2d; // -
  at = putAscii(b, at, " - ");
  at = e.user ? putField(b, at, e.user) : putAscii(b, at, "-");
  at = putAscii(b, at, " [");
  at = putAscii(b, at, clfTime());
  at = putAscii(b, at, '] "');
  at = putField(b, at, e.method);
  b[at++] = 0x20;
  at = putField(b, at, e.uri);
  b[at++] = 0x20;
  at = putField(b, at, e.protocol);
  at = putAscii(b, at, '" ');
  at = putCount(b, at, e.status);
  b[at++] = 0x20;
  at = e.bytes ? putCount(b, at, e.bytes) : putAscii(b, at, "-");
  b[at++] = 0x20;
  at = putMillis(b, at, e.durationMs);
  return putAscii(b, at, "ms\n");
}

/** Longest an access line waits in memory before it is written (a crash loses at most this much). */
const ACCESS_FLUSH_MS = 50;
const ACCESS_BUFFER_BYTES = 64 * 1024;

export function createLogger(site: string, streams: LogStreams = { error: process.stderr, access: process.stdout }): Logger {
  const line = (level: string, message: string) =>
    streams.error.write(`${new Date().toISOString()} [${level}] [${site}] ${message}\n`);
  // Access lines are gathered and written at most every ACCESS_FLUSH_MS (nginx's `buffer=`
  // and `flush=` do the same): under load a write per request, or per event-loop turn, costs
  // as much as a hello request itself. At rest the first line goes out at once. They gather
  // in a Buffer, not a string: a string of a few thousand lines would live through several
  // young-generation collections, each copying all of it (measured: 3 ms scavenges and a
  // doubled W1 p99). The line's chars are the request's bytes (latin1), written as such.
  let buffer = Buffer.allocUnsafe(ACCESS_BUFFER_BYTES);
  let used = 0;
  let scheduled = false;
  let lastFlush = 0;
  const flush = () => {
    scheduled = false;
    lastFlush = Date.now();
    if (used === 0) return;
    const sink = streams.access;
    sink?.write(buffer.subarray(0, used));
    used = 0;
    // A sink that wrote the bytes at once (a LogFile; stdout as a file or a pipe on Linux)
    // holds nothing of them, and the buffer serves again. One that may have queued them (a
    // socket, a sink we do not know) keeps this buffer and a new one is made. A new 64 KiB
    // buffer a flush lived past young collections, was freed only by a full one, and grew
    // a busy worker's RSS by ~1.5 MiB a second until it came (W1: 55 -> 97 MiB in 15 s).
    if (!(sink instanceof LogFile || (sink && (sink as { writableLength?: unknown }).writableLength === 0))) {
      buffer = Buffer.allocUnsafe(ACCESS_BUFFER_BYTES);
    }
  };
  const schedule = () => {
    scheduled = true;
    const wait = lastFlush + ACCESS_FLUSH_MS - Date.now();
    if (wait <= 0) setImmediate(flush);
    else setTimeout(flush, wait).unref();
  };
  // A line is written into the buffer where it fits; one that might not (its bound is over
  // the buffer's size) goes out on its own, after the lines before it.
  const append = (e: AccessEntry) => {
    const most = lineBound(e);
    if (used + most > buffer.length) flush();
    if (most > buffer.length) {
      const line = Buffer.allocUnsafe(most);
      streams.access?.write(line.subarray(0, putLine(line, 0, e)));
      return;
    }
    used = putLine(buffer, used, e);
    if (!scheduled) schedule();
  };
  process.once("exit", flush);
  return {
    error: (message, err) => line("error", err === undefined ? message : `${message}: ${describeError(err)}`),
    warn: (message) => line("warn", message),
    info: (message) => line("info", message),
    access: (e) => {
      if (streams.access) append(e);
    },
  };
}

// systemd units as the tests read them, and the one piece of systemd a service needs to run
// without systemd as PID 1: the unit file parsed into sections and keys (systemd.syntax(7):
// `#`/`;` comments, `[Section]`, `Key=value`, a key repeated for a list), an Exec*= line split
// into the argv systemd would exec, time spans in seconds, and a NOTIFY_SOCKET reader (a unix
// datagram socket bound by a small python3 program: Node has no unix datagram sockets).

import { spawn, type ChildProcess } from "node:child_process";

export type Unit = Map<string, [string, string][]>;

/** The unit's sections, each its `Key=value` pairs in order. Continuation lines are refused: the examples use none. */
export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: [string, string][] | null = null;
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.endsWith("\\")) throw new Error(`line ${i + 1}: a continuation line, which parseUnit does not read`);
    const head = /^\[([^\]]+)\]$/.exec(line);
    if (head) {
      section = [];
      unit.set(head[1]!, section);
      continue;
    }
    const eq = line.indexOf("=");
    if (section === null || eq <= 0) throw new Error(`line ${i + 1}: neither a [Section] nor Key=value in one: ${raw}`);
    section.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** Every value of `key` in `section`, in order. */
export function unitValues(unit: Unit, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

/** The one value of `key` in `section`; throws when it is missing or repeated. */
export function unitValue(unit: Unit, section: string, key: string): string {
  const all = unitValues(unit, section, key);
  if (all.length !== 1) throw new Error(`[${section}] ${key}= is set ${all.length} times, not once`);
  return all[0]!;
}

/**
 * The argv of an Exec*= value, with `$NAME` replaced from `vars` (ExecReload's $MAINPID).
 * Only what the examples use: words split at spaces, no quoting, no `-`/`@`/`+` prefixes, no
 * `%` specifiers; anything else throws rather than being run differently from systemd.
 */
export function execArgv(value: string, vars: Record<string, string> = {}): string[] {
  if (/["'\\%]/.test(value) || /^[-@+!:|]/.test(value)) throw new Error(`execArgv reads plain words only: ${value}`);
  return value
    .split(/\s+/)
    .filter(Boolean)
    .map((w) =>
      w.replace(/\$\{?([A-Z_]+)\}?/g, (_, name: string) => {
        if (!(name in vars)) throw new Error(`no value for $${name} in ${value}`);
        return vars[name]!;
      }),
    );
}

/** A systemd time span ("45s", "45", "1min 30s", "500ms") in seconds (systemd.time(7)). */
export function timeSpanSeconds(value: string): number {
  const units: Record<string, number> = { "": 1, us: 1e-6, ms: 1e-3, s: 1, sec: 1, m: 60, min: 60, h: 3600, hr: 3600 };
  let total = 0;
  const rest = value.replace(/(\d+(?:\.\d+)?)\s*([a-z]*)/g, (_, n: string, u: string) => {
    if (!(u in units)) throw new Error(`unknown time unit ${u} in ${value}`);
    total += Number(n) * units[u]!;
    return "";
  });
  if (rest.trim() !== "") throw new Error(`not a time span: ${value}`);
  return total;
}

// Prints every datagram received on the path it binds, as one JSON string a line.
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

export interface NotifyReceiver {
  /** The socket's path: NOTIFY_SOCKET's value. */
  path: string;
  proc: ChildProcess;
  /** The datagrams received so far, in order. */
  datagrams(): string[];
  stop(): void;
}

/** A NOTIFY_SOCKET at `path`, bound before this resolves. */
export async function notifyReceiver(path: string): Promise<NotifyReceiver> {
  const proc = spawn("python3", ["-u", "-c", RECEIVER, path], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const until = Date.now() + 10_000;
  while (!out.includes('"bound"')) {
    if (proc.exitCode !== null || Date.now() > until) {
      proc.kill("SIGKILL");
      throw new Error(`the NOTIFY_SOCKET reader did not bind ${path}: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const datagrams = () =>
    out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string)
      .filter((d) => d !== "bound");
  return { path, proc, datagrams, stop: () => proc.exitCode === null && proc.signalCode === null && proc.kill("SIGTERM") };
}

/** Whether datagram `d` sets `line` (e.g. "READY=1") among its newline-separated assignments. */
export const sets = (d: string, line: string) => d.split("\n").includes(line);

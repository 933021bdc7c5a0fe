// The master under systemd (DESIGN §4). Socket activation (sd_listen_fds(3)): the service
// manager binds the sockets, starts the master with them open from descriptor 3 on, and says
// so in LISTEN_FDS (how many), LISTEN_PID (for which process: a variable inherited by
// someone else's child is not ours) and LISTEN_FDNAMES (their FileDescriptorName=, colon
// separated). The registry (sockets.ts) gives a `listen` entry the inherited socket bound to
// the same address instead of binding one. The notify protocol (sd_notify(3)): with
// NOTIFY_SOCKET set, the master sends newline-separated VARIABLE=VALUE datagrams there —
// READY=1 once every site serves (or failed), RELOADING=1 and READY=1 around a reload,
// STOPPING=1, and STATUS= lines for `systemctl status`. Both sets of variables are removed
// from the environment once read: they are the master's, and no child of it should act on
// them (process-group.ts strips them from the workers' environment as well).

import { isIPv6 } from "node:net";
import { resolve } from "node:path";
import type { Logger } from "../log.ts";
import { binding } from "../native.ts";
import type { ListenSpec } from "./listen.ts";

/** sd_listen_fds(3)'s SD_LISTEN_FDS_START: the first inherited descriptor after stdin, stdout, stderr. */
const LISTEN_FDS_START = 3;
/** More than any unit passes; a LISTEN_FDS beyond it is a mistake, not a list to walk. */
const LISTEN_FDS_MAX = 4096;

export interface InheritedSocket {
  fd: number;
  /** Its FileDescriptorName= (LISTEN_FDNAMES), or "unknown" when none was given. */
  name: string;
  /** The address it is bound to: a unix path, or host and port (the host as inet_ntop writes it). */
  address: { path: string } | { host: string; port: number };
}

/** How an inherited socket is named in the logs: "fd 3 (blog.socket, unix:/run/tsgi/blog.sock)". */
export function describeInherited(s: InheritedSocket): string {
  const a = "path" in s.address ? `unix:${s.address.path}` : `${isIPv6(s.address.host) ? `[${s.address.host}]` : s.address.host}:${s.address.port}`;
  return `fd ${s.fd} (${s.name}, ${a})`;
}

/** Whether the inherited socket is bound where `spec` asks (same unix path; same numeric host and port). */
export function sameAddress(s: InheritedSocket, spec: ListenSpec): boolean {
  if ("path" in spec) return "path" in s.address && s.address.path === resolve(spec.path);
  if ("path" in s.address || spec.port === 0 || spec.port !== s.address.port) return false;
  return canonicalHost(spec.host) === s.address.host;
}

/** An IPv6 literal as inet_ntop writes it (compressed, lower case); other hosts as they are. */
function canonicalHost(host: string): string {
  if (!isIPv6(host)) return host;
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

/**
 * The sockets systemd passed to this process (none when LISTEN_PID names another one), each
 * marked close-on-exec. A descriptor that is not a listening stream socket is closed with a
 * warning: nothing could serve on it. LISTEN_* are removed from the environment.
 */
export function listenFds(log: Logger, env: NodeJS.ProcessEnv = process.env): InheritedSocket[] {
  const { LISTEN_PID: pid, LISTEN_FDS: count, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (count === undefined || pid !== String(process.pid)) return [];
  const n = /^\d+$/.test(count) ? Number(count) : NaN;
  if (!(n <= LISTEN_FDS_MAX)) {
    log.warn(`LISTEN_FDS=${JSON.stringify(count)} is not a count of descriptors; no socket taken from systemd`);
    return [];
  }
  const named = names === undefined ? [] : names.split(":");
  const sockets: InheritedSocket[] = [];
  for (let i = 0; i < n; i++) {
    const fd = LISTEN_FDS_START + i;
    const name = named[i] || "unknown";
    const info = binding.socketAddress(fd);
    if ("error" in info) {
      log.warn(`systemd passed fd ${fd} (${name}), which is not a socket (${info.error}); closed`);
      binding.closeFd(fd);
      continue;
    }
    if (!info.stream || !info.listening || info.family === "other") {
      log.warn(`systemd passed fd ${fd} (${name}), which is not a listening stream socket (unix or TCP); closed`);
      binding.closeFd(fd);
      continue;
    }
    sockets.push({ fd, name, address: info.family === "unix" ? { path: info.path } : { host: info.host, port: info.port } });
  }
  return sockets;
}

/** The sites as systemd's STATUS= line shows them: "2 sites running, 0 failed", with what else is going on. */
export function statusLine(sites: { name: string; group: { state: string } }[]): string {
  const count = (state: string) => sites.filter((s) => s.group.state === state);
  const failed = count("failed");
  const parts = [`${count("running").length} site${count("running").length === 1 ? "" : "s"} running`, `${failed.length} failed${failed.length > 0 ? ` (${failed.map((s) => s.name).join(", ")})` : ""}`];
  for (const state of ["idle", "starting", "reloading", "stopping"]) {
    const n = count(state).length;
    if (n > 0) parts.push(`${n} ${state}`);
  }
  return parts.join(", ");
}

export interface Notifier {
  /** Whether there is a NOTIFY_SOCKET to tell. */
  readonly enabled: boolean;
  /** READY=1 (with STATUS=), once each time the master turns ready: at start, and after a reload. */
  ready(status: string): void;
  /** RELOADING=1 with MONOTONIC_USEC= (Type=notify-reload wants it; older systemd ignores it). */
  reloading(status: string): void;
  stopping(status: string): void;
  /** STATUS=, when it changed. */
  status(text: string): void;
}

/** The master's notifier: a no-op without NOTIFY_SOCKET (removed from the environment once read). */
export function notifier(log: Logger, env: NodeJS.ProcessEnv = process.env): Notifier {
  const path = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  let state: "starting" | "ready" | "reloading" | "stopping" = "starting";
  let lastStatus = "";
  let failing = false;
  const send = (lines: string[]) => {
    if (!path) return;
    const reason = binding.notify(path, lines.join("\n"));
    if (reason !== null && !failing) log.warn(`NOTIFY_SOCKET=${path}: ${reason}; systemd is not told how the daemon is doing`);
    failing = reason !== null;
  };
  const withStatus = (lines: string[], text: string) => {
    lastStatus = text;
    send([...lines, `STATUS=${oneLine(text)}`]);
  };
  return {
    enabled: Boolean(path),
    ready(text) {
      if (state === "ready" || state === "stopping") return;
      state = "ready";
      withStatus(["READY=1"], text);
    },
    reloading(text) {
      if (state === "stopping") return;
      state = "reloading";
      withStatus(["RELOADING=1", `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`], `reloading: ${text}`);
    },
    stopping(text) {
      if (state === "stopping") return;
      state = "stopping";
      withStatus(["STOPPING=1"], `stopping: ${text}`);
    },
    status(text) {
      const shown = state === "reloading" || state === "stopping" ? `${state}: ${text}` : text;
      if (shown !== lastStatus) withStatus([], shown);
    },
  };
}

/** A STATUS= value is one line: a newline would start another variable. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}

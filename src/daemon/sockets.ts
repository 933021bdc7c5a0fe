// The master's listening sockets, shared by its sites (native socket/bind/listen: the master
// binds and never accepts; the workers inherit the descriptors). Keyed by address, counted
// by the sites that use one, so a reload that keeps a `listen` entry keeps its socket (no
// connection refused in between), one that moves it between sites hands the same socket on,
// and one that drops it closes it when the last user lets go.
//
// A unix socket path another process answers on is refused (two servers on one path take
// turns at random, and the second's stop would unlink the first's socket); a socket file
// nothing answers on is stale (a crash left it) and replaced; at the end only the file this
// master created (same device and inode) is removed.
//
// Under systemd socket activation (systemd.ts) a `listen` entry bound to the same address as
// a socket systemd passed takes that socket instead of binding one. systemd owns those: their
// files are neither chmod-ed nor removed (the socket unit's SocketMode= and its stop do that),
// and one a reload lets go of is kept for a later reload rather than closed.

import { chmodSync, chownSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { tsgiError } from "../errors.ts";
import { summarize, type Logger } from "../log.ts";
import { binding } from "../native.ts";
import type { ListenSpec } from "./listen.ts";
import { describeInherited, sameAddress, type InheritedSocket } from "./systemd.ts";

const BACKLOG = 511;

export interface Ownership {
  mode: number;
  /** chown the socket file to these (null: leave it the master's). */
  ids: { uid: number; gid: number } | null;
}

export interface BoundSocket {
  key: string;
  fd: number;
  /** The TCP port bound (the one asked for, or the kernel's choice for port 0). */
  port?: number;
  users: number;
  file: { path: string; dev: number; ino: number } | null;
  /** Passed by systemd (socket activation): never unlinked, never closed before the end. */
  inherited?: InheritedSocket;
}

/** Whether something accepts connections on the unix socket `path` (a stale file refuses them). */
export function answers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path });
    const timer = setTimeout(() => {
      // A connect that hangs is a listener with a full queue: alive.
      sock.destroy();
      resolve(true);
    }, 1000);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") resolve(false);
      else reject(err);
    });
  });
}

/** The address a spec binds, as one key: "unix:/run/a.sock", "tcp:127.0.0.1:9000". Port 0 is never shared. */
export function socketKey(spec: ListenSpec, serial = 0): string {
  if ("path" in spec) return `unix:${spec.path}`;
  return spec.port === 0 ? `tcp:${spec.host}:0#${serial}` : `tcp:${spec.host}:${spec.port}`;
}

export class SocketRegistry {
  #sockets = new Map<string, BoundSocket>();
  #serial = 0;
  /** Sockets systemd passed that no `listen` entry holds now. */
  #inherited: InheritedSocket[] = [];
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** The socket for `spec`, bound now unless this master holds it already; one more user. */
  async acquire(spec: ListenSpec, own: Ownership): Promise<BoundSocket> {
    const key = socketKey(spec, ++this.#serial);
    const held = this.#sockets.get(key);
    if (held) {
      held.users++;
      if (held.file) this.#own(held.file.path, own);
      return held;
    }
    const inherited = this.#takeInherited(key, spec);
    if (inherited) {
      this.#sockets.set(key, inherited);
      return inherited;
    }
    const bound = "path" in spec ? await this.#bindUnix(key, spec.path, own) : this.#bindTcp(key, spec.host, spec.port);
    this.#sockets.set(key, bound);
    return bound;
  }

  /** One user fewer; the last one closes the socket and removes its file. */
  release(socket: BoundSocket): void {
    if (--socket.users > 0) return;
    this.#sockets.delete(socket.key);
    if (socket.inherited) {
      this.#inherited.push(socket.inherited);
      return;
    }
    binding.closeFd(socket.fd);
    if (socket.file) this.#unlink(socket.file);
  }

  /** Every socket closed and its file removed (stop, or SIGINT twice). */
  closeAll(): void {
    for (const s of this.#sockets.values()) {
      binding.closeFd(s.fd);
      if (s.file) this.#unlink(s.file);
    }
    this.#sockets.clear();
    for (const s of this.#inherited) binding.closeFd(s.fd);
    this.#inherited = [];
  }

  /** The sockets systemd passed (systemd.ts listenFds), for the `listen` entries to take. */
  inherit(sockets: InheritedSocket[]): void {
    this.#inherited.push(...sockets);
  }

  /** Once every site opened: an inherited socket no `listen` entry took is a unit that disagrees with the file. */
  closeUnclaimed(): void {
    for (const s of this.#inherited) {
      this.#log.warn(`systemd passed ${describeInherited(s)}, which no site's listen entry names; closed`);
      binding.closeFd(s.fd);
    }
    this.#inherited = [];
  }

  #takeInherited(key: string, spec: ListenSpec): BoundSocket | null {
    const i = this.#inherited.findIndex((s) => sameAddress(s, spec));
    if (i < 0) return null;
    const [s] = this.#inherited.splice(i, 1);
    this.#log.info(`${spec.text}: the socket systemd passed, ${describeInherited(s!)}`);
    return { key, fd: s!.fd, port: "port" in s!.address ? s!.address.port : undefined, users: 1, file: null, inherited: s };
  }

  async #bindUnix(key: string, path: string, own: Ownership): Promise<BoundSocket> {
    let existing;
    try {
      existing = lstatSync(path);
    } catch {
      existing = null;
    }
    if (existing) {
      if (!existing.isSocket()) throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: "the path exists and is not a socket" });
      let alive: boolean;
      try {
        alive = await answers(path);
      } catch (err) {
        throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: `cannot tell whether another process serves on it (${summarize(err)})` });
      }
      if (alive) throw tsgiError("TSGI_ERR_MASTER_SOCKET_IN_USE", { path, reason: "another process answers on it" });
      unlinkSync(path);
    }
    let fd: number;
    try {
      fd = binding.bindUnix(path, BACKLOG).fd;
    } catch (err) {
      throw tsgiError("TSGI_ERR_MASTER_LISTEN", { address: `unix:${path}`, reason: (err as Error).message });
    }
    const st = statSync(path);
    const file = { path, dev: st.dev, ino: st.ino };
    try {
      this.#own(path, own);
    } catch (err) {
      binding.closeFd(fd);
      this.#unlink(file);
      throw err;
    }
    return { key, fd, users: 1, file };
  }

  #own(path: string, own: Ownership): void {
    chmodSync(path, own.mode);
    if (own.ids) chownSync(path, own.ids.uid, own.ids.gid);
  }

  #bindTcp(key: string, host: string, port: number): BoundSocket {
    try {
      const b = binding.bindTcp(host, port, BACKLOG);
      return { key, fd: b.fd, port: b.port, users: 1, file: null };
    } catch (err) {
      throw tsgiError("TSGI_ERR_MASTER_LISTEN", { address: `${host.includes(":") ? `[${host}]` : host}:${port}`, reason: (err as Error).message });
    }
  }

  #unlink({ path, dev, ino }: { path: string; dev: number; ino: number }): void {
    try {
      const st = lstatSync(path);
      if (st.dev === dev && st.ino === ino) unlinkSync(path);
      else this.#log.warn(`${path} is no longer the socket this site created; left in place`);
    } catch {
      // already gone
    }
  }
}

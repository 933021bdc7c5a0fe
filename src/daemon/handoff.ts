// Handing a FastCGI persistent connection from a draining worker to another worker of its site
// (reload, max-requests, a stuck worker replaced), so that no connection a front server may be
// reusing is ever closed under it. nginx caches idle upstream connections (keepalive) and
// sends the next request on one without knowing the worker is leaving; a close at that instant
// loses the request — a POST is not retried. The worker's native listener stops reading at a
// request boundary and gives up a duplicate of the socket (native/binding/stream_server.h,
// hand_off); it travels worker → master → worker over Node's IPC channel as a handle (its
// unread bytes still in the kernel), and the adopting worker's listener serves it
// (adopt). The master picks the worker (process-group.ts); where none can take it, it is
// closed, as before.

import { closeSync } from "node:fs";
import net from "node:net";
import type { Logger } from "../log.ts";
import type { NativeListener } from "../protocol/native-listener.ts";

/** The sockets of the connections this worker hands off while it drains, on their way to the master. */
export class Handoffs {
  pending = 0;
  /** Connections passed on (the worker's last log line says how many). */
  sent = 0;
  constructor(
    readonly log: Logger,
    readonly index: number,
  ) {}

  send(listen: string, fd: number): void {
    // A net.Socket only to carry the descriptor: not readable, so it never reads a byte of
    // what the front server sends next (that stays in the kernel for the adopting worker).
    let socket: net.Socket;
    try {
      socket = new net.Socket({ fd, readable: false, writable: false });
    } catch (err) {
      this.log.error(`worker ${this.index}: cannot hand off a connection`, err);
      closeSync(fd);
      return;
    }
    this.pass(listen, socket);
  }

  pass(listen: string, socket: net.Socket): void {
    if (!process.connected) {
      socket.destroy();
      return;
    }
    this.pending++;
    const msg = { type: "handoff", listen };
    try {
      process.send!(msg, socket, {}, (err) => {
        this.pending--;
        if (err) socket.destroy();
        else this.sent++;
      });
    } catch (err) {
      this.pending--;
      this.log.error(`worker ${this.index}: cannot hand off a connection`, err);
      socket.destroy();
    }
  }
}

type RawHandle = { fd?: number; readStop?: () => void };
const rawHandle = (socket: net.Socket | undefined) => (socket as unknown as { _handle?: RawHandle } | undefined)?._handle;

/** The descriptor under a socket Node made from a handle it received (-1 when there is none). */
export function socketFd(socket: net.Socket | undefined): number {
  return rawHandle(socket)?.fd ?? -1;
}

/**
 * Node starts reading a socket it receives over IPC (the net.Socket it makes is readable):
 * stopped before the loop polls it, so no byte the front server sent is read here.
 */
export function stopReading(socket: net.Socket | undefined): void {
  rawHandle(socket)?.readStop?.();
}

/** Serves a connection another worker handed off, or closes it when this worker cannot. */
export function adopt(native: NativeListener | undefined, handle: net.Socket | undefined, log: Logger, index: number): void {
  const fd = socketFd(handle);
  if (fd >= 0 && native && !native.adopt(fd)) log.warn(`worker ${index}: a connection handed off could not be adopted (listener full or closed); closing it`);
  handle?.destroy();
}

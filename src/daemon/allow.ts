// The `allow` setting (DESIGN §4): the peers that may connect to a site's TCP listeners and
// see its status page, as addresses or CIDR networks of either family. Parsed once into
// binary networks — 16 bytes and a prefix length, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d,
// prefix + 96), so that an IPv4 client reaching a dual-stack `::` listener matches the IPv4
// entry that names it. The same bytes go to the native listeners (stream_server.h's
// AllowList reads them: the cross-language contract is NETWORK_BYTES and that layout), which
// check each accepted peer without calling JavaScript. Also here: which listen hosts are
// loopback (a listener on any other needs an explicit `allow`).

import { isIPv4, isIPv6 } from "node:net";
import type { ListenSpec } from "./listen.ts";

/** One network as the native side reads it: 16 address bytes, then the prefix length (0–128). */
export const NETWORK_BYTES = 17;

/**
 * The default: loopback, all of it. 127.0.0.0/8 rather than 127.0.0.1 alone: a listener on
 * 127.0.0.2 needs no explicit `allow` (it is loopback), and its clients connect from 127.0.0.2.
 */
export const LOOPBACK_ALLOW = ["127.0.0.0/8", "::1"];

/** An IP address as 16 bytes (IPv4 mapped into ::ffff:0:0/96), or null when it is not one (zone ids included). */
export function addressBytes(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  if (isIPv4(text)) {
    out[10] = 0xff;
    out[11] = 0xff;
    text.split(".").forEach((part, i) => (out[12 + i] = Number(part)));
    return out;
  }
  if (!isIPv6(text) || text.includes("%")) return null;
  // An IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  let groups = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split(".").map(Number);
    groups = `${text.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = groups.includes("::") ? groups.split("::") : [groups, null];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const all = tail === null ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  if (all.length !== 8) return null;
  all.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

interface Network {
  bytes: Uint8Array;
  prefix: number;
}

/** One `allow` entry ("10.0.0.5", "10.0.0.0/8", "fd00::/8"), or the reason it is not one. */
export function parseNetwork(entry: string): Network | { error: string } {
  const slash = entry.indexOf("/");
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const bytes = addressBytes(address);
  if (!bytes) return { error: `${JSON.stringify(entry)} is not an IPv4 or IPv6 address or network` };
  const v4 = isIPv4(address);
  const max = v4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return { error: `${JSON.stringify(entry)} has a prefix length out of 0–${max}` };
    prefix = Number(p);
  }
  if (v4) prefix += 96;
  // Host bits set (10.0.0.5/8) would be a typo as often as not: the network is what counts.
  for (let bit = prefix; bit < 128; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { bytes, prefix };
}

/** The check of the setting's value (the settings table's `check`): what is wrong with the first bad entry, or null. */
export function allowProblem(entries: string[]): string | null {
  for (const e of entries) {
    const n = parseNetwork(e);
    if ("error" in n) return `must list IPv4 or IPv6 addresses or networks (such as "10.0.0.5", "10.0.0.0/8", "fd00::/8"): ${n.error}`;
  }
  return null;
}

/** A parsed `allow` list: matches addresses as text (REMOTE_ADDR, a node:net peer) and packs itself for the native listeners. */
export class AllowList {
  readonly #networks: Network[];
  /** Some entry matches every address of both families: nothing to check. */
  readonly everyone: boolean;

  constructor(entries: string[]) {
    this.#networks = entries.map((e) => {
      const n = parseNetwork(e);
      if ("error" in n) throw new Error(`allow: ${n.error}`);
      return n;
    });
    // ::/0 (0.0.0.0/0 is ::ffff:0:0/96: every IPv4 peer, not every peer).
    this.everyone = this.#networks.some((n) => n.prefix === 0);
  }

  /** Whether `address` (IPv4, IPv6, IPv4-mapped IPv6) is in the list; anything that is not an address is not. */
  has(address: string | undefined): boolean {
    if (this.everyone) return true;
    if (!address) return false;
    const bytes = addressBytes(address);
    if (!bytes) return false;
    return this.#networks.some((n) => matches(n, bytes));
  }

  /** The networks as NETWORK_BYTES each, for the native listeners; null: everyone is allowed. */
  packed(): Uint8Array | null {
    if (this.everyone) return null;
    const out = new Uint8Array(this.#networks.length * NETWORK_BYTES);
    this.#networks.forEach((n, i) => {
      out.set(n.bytes, i * NETWORK_BYTES);
      out[i * NETWORK_BYTES + 16] = n.prefix;
    });
    return out;
  }
}

function matches(n: Network, bytes: Uint8Array): boolean {
  const full = n.prefix >> 3;
  for (let i = 0; i < full; i++) if (n.bytes[i] !== bytes[i]) return false;
  const rest = n.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (n.bytes[full]! & mask) === (bytes[full]! & mask);
}

const LOOPBACK = new AllowList(LOOPBACK_ALLOW);

/** Whether a listen host only ever receives connections from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  return addressBytes(host) !== null && LOOPBACK.has(host);
}

/** The first TCP listener of `listen` on a host that is not loopback (0.0.0.0 and :: are not), as `HOST:PORT`, or null. */
export function exposedListener(specs: ListenSpec[]): string | null {
  for (const s of specs) {
    if ("path" in s || isLoopbackHost(s.host)) continue;
    return `${s.host.includes(":") ? `[${s.host}]` : s.host}:${s.port}`;
  }
  return null;
}

/** What to say when a site listens beyond loopback without an `allow` of its own (`how`: as a file or the command line writes it). */
export function exposedProblem(address: string, how: { key: string; example: string; everyone: string }): string {
  return (
    `the site listens on ${address} (not a loopback address) without ${how.key}; ` +
    `list the peers that may connect (the front servers), e.g. ${how.example}, or ${how.everyone} for every peer`
  );
}

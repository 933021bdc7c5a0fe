// One wrk run and its text output parsed: requests completed, requests/s, the --latency
// distribution (p50, p99, in ms), non-2xx/3xx responses and socket errors. wrk is started as
// a tracked child with a hard deadline (its own -d plus a margin), so a stuck run cannot
// outlast its bound.

import { spawnTracked, stopTracked, type Started } from "./procs.ts";

export interface WrkOptions {
  url: string;
  seconds: number;
  connections: number;
  threads: number;
  script?: string;
  timeoutSeconds?: number;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  non2xx: number;
  socketErrors: number;
  /** wrk's own words for the errors ("Socket errors: connect 0, read 12, …; Non-2xx …"), "" when none. */
  errorDetail: string;
  raw: string;
}

let current: Started | null = null;

/** Stops the wrk run in progress, if any (Ctrl-C). */
export async function abortWrk(): Promise<void> {
  if (current) await stopTracked(current, 1000);
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  switch (unit) {
    case "us":
      return v / 1000;
    case "ms":
      return v;
    case "s":
      return v * 1000;
    case "m":
      return v * 60_000;
    default:
      return NaN;
  }
}

export function parseWrk(raw: string): WrkResult {
  const reqs = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(raw);
  if (!reqs) throw new Error(`wrk output not understood:\n${raw}`);
  const requests = Number(reqs[1]);
  const seconds = toMs(reqs[2]!, reqs[3]!) / 1000;
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(raw);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(raw)?.[1] ?? "0");
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  const socketErrors = sock ? sock.slice(1, 5).reduce((a, b) => a + Number(b), 0) : 0;
  const errorDetail = [sock?.[0], /Non-2xx or 3xx responses: \d+/.exec(raw)?.[0]].filter(Boolean).join("; ");
  return { requests, seconds, rps: requests / seconds, p50ms: pct("50"), p99ms: pct("99"), non2xx, socketErrors, errorDetail, raw };
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = ["-t", String(Math.min(o.threads, o.connections)), "-c", String(o.connections), "-d", `${o.seconds}s`, "--latency", "--timeout", `${o.timeoutSeconds ?? 10}s`];
  if (o.script) args.push("-s", o.script);
  args.push(o.url);
  const wrk = spawnTracked("wrk", "wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
  current = wrk;
  let out = "";
  wrk.child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  wrk.child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => void stopTracked(wrk, 1000), (o.seconds + 30) * 1000);
  try {
    await wrk.exited;
  } finally {
    clearTimeout(timer);
    current = null;
  }
  await stopTracked(wrk);
  if (wrk.exitInfo?.code !== 0) throw new Error(`wrk ${args.join(" ")} failed (${JSON.stringify(wrk.exitInfo)}):\n${out}`);
  return parseWrk(out);
}

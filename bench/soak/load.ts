// The soak's load generator: an open-loop, steady request rate through nginx with node:http
// (not wrk: every request's outcome is checked, and some are aborted on purpose). Requests are
// drawn from a fixed mix with a seeded PRNG (the same sequence every run); each workload
// alternates between the FastCGI and the uwsgi location. Concurrency is bounded: a request due
// while `concurrency` are in flight is skipped (counted), so a slow backend cannot make the
// generator's memory or socket count grow.

import http from "node:http";

export type KindId = "W1" | "W2" | "W3" | "W4" | "abort";

export interface Kind {
  id: KindId;
  what: string;
  /** Share of requests, per thousand. */
  weight: number;
  method: "GET" | "POST";
  path: string;
  body?: Buffer;
  /** Expected body size. */
  bytes: number;
  /** Exact body expected (small bodies only). */
  text?: string;
}

const MIB = 1024 * 1024;
export const UPLOAD = Buffer.alloc(MIB, 0x78);

export const KINDS: Kind[] = [
  { id: "W1", what: "GET /hello (14 bytes)", weight: 825, method: "GET", path: "hello", bytes: 14, text: "Hello, world!\n" },
  { id: "W2", what: "GET /large (100 KiB)", weight: 100, method: "GET", path: "large", bytes: 102400 },
  { id: "W3", what: "POST /upload, 1 MiB read fully", weight: 50, method: "POST", path: "upload", body: UPLOAD, bytes: 17, text: '{"size":1048576}\n' },
  { id: "W4", what: "GET /stream?mib=20 (20 MiB streamed)", weight: 5, method: "GET", path: "stream?mib=20", bytes: 20 * MIB },
  { id: "abort", what: "GET /stream?mib=20, the client closes its socket after the first bytes", weight: 20, method: "GET", path: "stream?mib=20", bytes: 20 * MIB },
];

/** The nginx locations, alternated per workload. */
export const LOCATIONS = ["fcgi", "uwsgi"] as const;
export type Location = (typeof LOCATIONS)[number];

export interface KindStats {
  sent: number;
  ok: number;
  aborted: number;
  failed: number;
  /** Due while the generator was at its concurrency bound: not sent. */
  skipped: number;
  /** Per location: sent, failed. */
  byLocation: Record<Location, { sent: number; failed: number }>;
  /** Milliseconds, completed (ok) requests only. */
  latencies: number[];
}

export interface Failure {
  /** Seconds since the load started. */
  t: number;
  kind: KindId;
  location: Location;
  reason: string;
}

export interface LoadOptions {
  port: number;
  /** Requests per second. */
  rate: number;
  /** Requests in flight at most. */
  concurrency: number;
  /** A request with no progress for this long fails (ms). */
  idleTimeoutMs: number;
  seed?: number;
}

/** mulberry32: a small seeded PRNG, so every soak sends the same sequence. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Load {
  readonly stats: Record<KindId, KindStats>;
  readonly failures: Failure[] = [];
  /** Failure reasons (kind, location and reason) with their counts. */
  readonly reasons = new Map<string, number>();
  inFlight = 0;
  maxInFlight = 0;
  private readonly agent: http.Agent;
  private readonly random: () => number;
  private readonly totalWeight: number;
  private readonly turn: Record<KindId, number>;
  private readonly live = new Set<http.ClientRequest>();
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private issued = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: LoadOptions) {
    // keepAlive with as many sockets as requests in flight at most; a free socket idle 60 s is
    // closed by the client, long before nginx's keepalive_timeout (300 s), so a request never
    // races nginx closing the socket it reuses.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency, timeout: 60_000 });
    this.random = prng(o.seed ?? 0x7e57);
    this.totalWeight = KINDS.reduce((a, k) => a + k.weight, 0);
    const empty = (): KindStats => ({ sent: 0, ok: 0, aborted: 0, failed: 0, skipped: 0, byLocation: { fcgi: { sent: 0, failed: 0 }, uwsgi: { sent: 0, failed: 0 } }, latencies: [] });
    this.stats = { W1: empty(), W2: empty(), W3: empty(), W4: empty(), abort: empty() };
    this.turn = { W1: 0, W2: 0, W3: 0, W4: 0, abort: 0 };
  }

  /** Seconds since start(). */
  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** Starts sending at the steady rate; stop() ends it. */
  start(): void {
    this.t0 = performance.now();
    // Every 10 ms, send what is due by now: at 300 req/s, 3 requests a tick.
    this.timer = setInterval(() => this.tick(), 10);
  }

  private tick(): void {
    if (this.stopped) return;
    const due = Math.floor((this.elapsed() * this.o.rate));
    while (this.issued < due) {
      this.issued++;
      this.send(this.pick());
    }
  }

  private pick(): Kind {
    let r = this.random() * this.totalWeight;
    for (const k of KINDS) {
      if (r < k.weight) return k;
      r -= k.weight;
    }
    return KINDS[0]!;
  }

  private fail(kind: Kind, location: Location, reason: string): void {
    const s = this.stats[kind.id];
    s.failed++;
    s.byLocation[location].failed++;
    const key = `${kind.id} ${location}: ${reason}`;
    this.reasons.set(key, (this.reasons.get(key) ?? 0) + 1);
    if (this.failures.length < 200) this.failures.push({ t: Math.round(this.elapsed() * 10) / 10, kind: kind.id, location, reason });
  }

  private send(kind: Kind): void {
    const s = this.stats[kind.id];
    if (this.inFlight >= this.o.concurrency) {
      s.skipped++;
      return;
    }
    const location = LOCATIONS[this.turn[kind.id]++ % LOCATIONS.length]!;
    s.sent++;
    s.byLocation[location].sent++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const begun = performance.now();
    let done = false;
    const finish = (outcome: "ok" | "aborted" | { reason: string }) => {
      if (done) return;
      done = true;
      this.inFlight--;
      this.live.delete(req);
      if (outcome === "ok") {
        s.ok++;
        s.latencies.push(performance.now() - begun);
      } else if (outcome === "aborted") s.aborted++;
      else this.fail(kind, location, outcome.reason);
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    const headers: Record<string, string> = kind.body ? { "Content-Type": "application/octet-stream", "Content-Length": String(kind.body.length) } : {};
    const req = http.request({ host: "127.0.0.1", port: this.o.port, path: `/${location}/${kind.path}`, method: kind.method, agent: this.agent, headers }, (res) => {
      let bytes = 0;
      let text = "";
      res.on("data", (d: Buffer) => {
        bytes += d.length;
        if (kind.text !== undefined && text.length <= kind.text.length) text += d.toString("latin1");
        if (kind.id === "abort" && !done) {
          if (res.statusCode === 200) finish("aborted");
          else finish({ reason: `status ${res.statusCode} before the abort` });
          // The abort: the socket is closed with the response mostly unread.
          req.destroy();
        }
      });
      res.on("end", () => {
        if (res.statusCode !== 200) return finish({ reason: `status ${res.statusCode}` });
        if (bytes !== kind.bytes) return finish({ reason: `${bytes} bytes of ${kind.bytes}` });
        if (kind.text !== undefined && text !== kind.text) return finish({ reason: `body ${JSON.stringify(text.slice(0, 40))}` });
        finish("ok");
      });
      res.on("error", (err: NodeJS.ErrnoException) => finish({ reason: `response: ${err.code ?? err.message}` }));
      res.on("close", () => {
        if (!done) finish({ reason: `response closed after ${bytes} of ${kind.bytes} bytes (status ${res.statusCode})` });
      });
    });
    this.live.add(req);
    req.setTimeout(this.o.idleTimeoutMs, () => req.destroy(new Error(`no progress for ${this.o.idleTimeoutMs / 1000} s`)));
    req.on("error", (err: NodeJS.ErrnoException) => finish({ reason: err.code ?? err.message }));
    req.end(kind.body);
  }

  /** Stops sending; resolves when the requests in flight have ended (or after `drainMs`, destroying them). */
  async stop(drainMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.inFlight > 0) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), new Promise<void>((r) => (t = setTimeout(r, drainMs)))]);
      clearTimeout(t);
    }
    for (const req of this.live) req.destroy(new Error("still in flight when the soak ended"));
    this.agent.destroy();
  }

  totals(): { sent: number; ok: number; aborted: number; failed: number; skipped: number } {
    const t = { sent: 0, ok: 0, aborted: 0, failed: 0, skipped: 0 };
    for (const s of Object.values(this.stats)) {
      t.sent += s.sent;
      t.ok += s.ok;
      t.aborted += s.aborted;
      t.failed += s.failed;
      t.skipped += s.skipped;
    }
    return t;
  }
}

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

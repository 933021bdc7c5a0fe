// The reload benchmark's load generator: an open-loop, constant request rate through nginx with
// node:http (wrk keeps a fixed number of connections busy instead, so a stall lowers its rate
// and hides the requests a reload would have received). Every 5 ms it starts the requests due
// by then, alternating GET /hello and a 256-byte POST /upload in the configured share, and
// records each one: when it started, how long it took, and its outcome (the status, or the
// socket error, or a timeout). Requests in flight are bounded: one due beyond the bound is not
// sent and is counted as skipped (the backend, or this process, fell behind the rate).

import http from "node:http";

export const POST_BODY = Buffer.alloc(256, 0x70);
const HELLO = "Hello, world!\n";
const POSTED = '{"size":256}\n';

export interface Sample {
  /** Milliseconds since the load started. */
  start: number;
  /** Milliseconds from start to the end of the response (or to the error). */
  ms: number;
  post: boolean;
  /** "ok", or why it failed: "status 502", "ECONNRESET", "timeout", "body …". */
  outcome: string;
}

export interface LoadOptions {
  port: number;
  /** Path prefix of the contender's nginx location, e.g. "/tsgi/". */
  prefix: string;
  /** Requests started per second. */
  rate: number;
  /** Share of POSTs, 0..1 (alternated deterministically: 0.5 = every other request). */
  postShare: number;
  /** Requests in flight at most. */
  concurrency: number;
  /** A request not complete after this long fails as "timeout" (ms). */
  timeoutMs: number;
}

export class Load {
  readonly samples: Sample[] = [];
  skipped = 0;
  inFlight = 0;
  maxInFlight = 0;
  private readonly agent: http.Agent;
  private readonly live = new Set<http.ClientRequest>();
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private issued = 0;
  private idleWaiters: (() => void)[] = [];
  private recording = true;

  constructor(private readonly o: LoadOptions) {
    // Keep-alive to nginx; a free socket idle 60 s is closed by the client first (nginx keeps
    // client connections 300 s), so a request never races nginx closing the socket it reuses.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency, timeout: 60_000 });
  }

  /** Milliseconds since start(). */
  now(): number {
    return performance.now() - this.t0;
  }

  /** Starts sending; `record` false sends the same load without keeping samples (warm-up). */
  start(record = true): void {
    this.recording = record;
    this.t0 = performance.now();
    this.issued = 0;
    this.timer = setInterval(() => this.tick(), 5);
  }

  private tick(): void {
    const due = Math.floor((this.now() / 1000) * this.o.rate);
    while (this.issued < due) {
      const i = this.issued++;
      const post = Math.floor((i + 1) * this.o.postShare) > Math.floor(i * this.o.postShare);
      this.send(post);
    }
  }

  /** Sends one request now (also used alone, to check a contender before the load). */
  send(post: boolean): void {
    if (this.inFlight >= this.o.concurrency) {
      if (this.recording) this.skipped++;
      return;
    }
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const recording = this.recording;
    const start = this.now();
    let done = false;
    const finish = (outcome: string) => {
      if (done) return;
      done = true;
      this.inFlight--;
      this.live.delete(req);
      if (recording) this.samples.push({ start, ms: this.now() - start, post, outcome });
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    const headers: Record<string, string> = post ? { "Content-Type": "application/octet-stream", "Content-Length": String(POST_BODY.length) } : {};
    const req = http.request({ host: "127.0.0.1", port: this.o.port, path: `${this.o.prefix}${post ? "upload" : "hello"}`, method: post ? "POST" : "GET", agent: this.agent, headers }, (res) => {
      let body = "";
      res.setEncoding("latin1");
      res.on("data", (d: string) => {
        if (body.length < 64) body += d;
      });
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) return finish(`status ${status}`);
        const want = post ? POSTED : HELLO;
        finish(body === want ? "ok" : `body ${JSON.stringify(body.slice(0, 30))}`);
      });
      res.on("error", (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
      res.on("close", () => finish(`response cut (status ${res.statusCode})`));
    });
    this.live.add(req);
    const timer = setTimeout(() => {
      finish("timeout");
      req.destroy();
    }, this.o.timeoutMs);
    req.on("close", () => clearTimeout(timer));
    req.on("error", (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    req.end(post ? POST_BODY : undefined);
  }

  /** Stops sending; resolves when the requests in flight have ended (or after `drainMs`, as timeouts). */
  async stop(drainMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.inFlight > 0) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), new Promise<void>((r) => (t = setTimeout(r, drainMs)))]);
      clearTimeout(t);
    }
    for (const req of this.live) req.destroy(new Error("timeout"));
  }

  /** Ends the client's sockets (after the last stop()). */
  close(): void {
    this.agent.destroy();
  }
}

/** The value at percentile p (0..100) of xs, nearest rank; NaN when empty. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// `npm run bench:reload` (issue 9): graceful reload side by side, under the same open-loop load
// through the same nginx. tsgi's daemon (SIGHUP), PM2 in cluster mode (`pm2 reload`) and
// Debian's gunicorn (HUP), 2 workers each, in turn: a warm-up, then `--seconds` of a constant
// rate of mixed GET and 256-byte POST with `--reloads` reloads spread over it. Every request is
// recorded (start, latency, outcome) and counted as "during a reload" when it overlaps the time
// from the reload signal to `--settle` seconds after the contender says the reload is done, else
// "steady". nginx's own view is counted too: its error-log lines (resets, premature closes) and
// the requests it retried on another connection ("502, 200" in $upstream_status, a custom
// access log). Then memory: tsgi's master and workers at rest (with PM2's and gunicorn's for
// comparison), a daemon of 20 `ondemand` sites none visited, and the first request to one of
// them through nginx (its cold start). Prints the tables and issue 9's targets, writes
// bench/results/reload.{json,md}. Flags: bench/README.md, `--help`.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort, startNginx, type FrontServer } from "../../test/support/front-servers.ts";
import { ROOT, nginxServer } from "../lib/contenders.ts";
import { machineInfo } from "../lib/machine.ts";
import { group, killAllTrackedSync, readStat, rssKiB, stopTracked, type Stat } from "../lib/procs.ts";
import { fmt } from "../lib/report.ts";
import { CONTENDERS, killPm2Sync, startTsgiDaemon, tsgiToml, type Contender, type Ctx, type Running } from "./contenders.ts";
import { Load, percentile, type Sample } from "./load.ts";

// ---- settings ----

const env = process.env;
const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: env.RELOAD_SECONDS ?? "60" },
    reloads: { type: "string", default: env.RELOAD_RELOADS ?? "10" },
    rate: { type: "string", default: env.RELOAD_RATE ?? "400" },
    "post-share": { type: "string", default: "0.5" },
    warmup: { type: "string", default: "3" },
    settle: { type: "string", default: "2" },
    sites: { type: "string", default: "20" },
    contenders: { type: "string", default: env.RELOAD_CONTENDERS },
    out: { type: "string", default: env.RELOAD_OUT ?? "reload" },
    quick: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (flags.help) {
  console.log("npm run bench:reload -- [--quick] [--seconds S] [--reloads N] [--rate R] [--post-share F] [--warmup S] [--settle S]");
  console.log("                        [--sites N] [--contenders tsgi,pm2,gunicorn] [--out NAME] [--keep]   (see bench/README.md)");
  console.log("  defaults: 60 s, 10 reloads, 400 req/s, half POSTs, 3 s warm-up, 2 s settle, 20 ondemand sites, results/reload.{md,json}");
  console.log("  --quick: 15 s and 3 reloads, 1 s warm-up");
  process.exit(0);
}

const number = (name: string, v: string | undefined, min: number, max = Infinity): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`bench:reload: --${name} must be a number from ${min}${max < Infinity ? ` to ${max}` : ""}, not ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const quick = flags.quick;
const seconds = number("seconds", quick ? "15" : flags.seconds, 5);
const reloads = Math.round(number("reloads", quick ? "3" : flags.reloads, 1));
const rate = number("rate", flags.rate, 1, 5000);
const postShare = number("post-share", flags["post-share"], 0, 1);
const warmupS = number("warmup", quick ? "1" : flags.warmup, 0);
const settleS = number("settle", flags.settle, 0);
const odSites = Math.round(number("sites", flags.sites, 1, 500));
const WORKERS = 2;
/** A request with no complete response after this long fails as a timeout. */
const TIMEOUT_MS = 10_000;
/**
 * Requests in flight at most (a request due beyond it is not sent, and counted). nginx has 256
 * worker_connections (test/support/front-servers.ts): the client's connections, one upstream
 * connection per request in flight and the 32 idle kept must stay under it, else nginx closes
 * idle client keep-alive connections ("worker_connections are not enough, reusing
 * connections") and the client sees resets that are the harness's, not the contender's.
 */
const CONCURRENCY = 96;
/** The issue's targets for tsgi. */
const P99_RATIO_MAX = 2;
const COLD_START_MAX_MS = 300;
/** Ondemand sites whose first request is timed (each its own nginx location). */
const COLD_SITES = 3;

let contenders = CONTENDERS;
if (flags.contenders) {
  const ids = flags.contenders.split(",").map((s) => s.trim()).filter(Boolean);
  for (const id of ids) if (!CONTENDERS.some((c) => c.id === id)) {
    console.error(`bench:reload: unknown contender "${id}" (known: ${CONTENDERS.map((c) => c.id).join(", ")})`);
    process.exit(2);
  }
  contenders = CONTENDERS.filter((c) => ids.includes(c.id));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- interruption: everything started is stopped by PID ----

let interrupted = false;
let nginx: FrontServer | null = null;
const onSignal = (sig: NodeJS.Signals) => {
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error(`\nbench:reload: ${sig}: stopping every process it started (again to force)…`);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
process.on("exit", () => {
  killAllTrackedSync();
  killPm2Sync();
  if (nginx) {
    try {
      process.kill(nginx.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});
const check = () => {
  if (interrupted) throw new Error("interrupted");
};

// ---- what it needs ----

if (spawnSync("nginx", ["-v"]).error) {
  console.error("bench:reload: nginx is missing. Install it with:\n  apt-get update && apt-get install -y nginx");
  process.exit(2);
}
// tsgi runs from its bundle, as an installed package does (`prepare` builds it when stale).
spawnSync(process.execPath, [join(ROOT, "scripts", "build-js.mjs"), "--if-stale"], { stdio: "inherit" });
const fromBundle = existsSync(join(ROOT, "dist", "tsgi.mjs")) && env.TSGI_FROM_SOURCE !== "1";

// ---- one contender's run ----

interface Reload {
  /** ms since the timed load started. */
  sent: number;
  /** When the contender said it was done (null: it failed). */
  done: number | null;
  error: string | null;
  /** When every worker there was at the signal had exited (null: some still alive at the end). */
  oldGone: number | null;
  /** Workers alive at the signal (old ones still draining included). */
  aliveAtSignal: number;
}

interface Stats {
  requests: number;
  failed: number;
  failedGet: number;
  failedPost: number;
  p50ms: number;
  p99ms: number;
}

interface Result {
  id: string;
  what: string;
  version: string;
  reloadWith: string;
  skipped: string | null;
  rest: { masterKiB: number; workersKiB: number[] } | null;
  reloads: Reload[];
  sent: number;
  skippedLoad: number;
  steady: Stats | null;
  during: Stats | null;
  all: Stats | null;
  failures: Record<string, number>;
  firstFailures: { t: number; method: string; outcome: string; during: boolean }[];
  p99Ratio: number | null;
  nginx: { lines: number; non2xx: number; retried: number; retriedGet: number; retriedPost: number; upstreamStatus: Record<string, number>; errorLog: Record<string, number>; errorLines: number } | null;
  timeline: { t: number; sent: number; failed: number; p99ms: number }[];
  error: string | null;
}

function stats(xs: Sample[]): Stats {
  const bad = xs.filter((s) => s.outcome !== "ok");
  const ms = xs.map((s) => s.ms);
  return { requests: xs.length, failed: bad.length, failedGet: bad.filter((s) => !s.post).length, failedPost: bad.filter((s) => s.post).length, p50ms: percentile(ms, 50), p99ms: percentile(ms, 99) };
}

/** A failure's kind: the status, or reset, or timeout. */
function kind(outcome: string): string {
  if (/^status /.test(outcome)) return outcome;
  if (/ECONNRESET|EPIPE|socket hang up|response cut/.test(outcome)) return "reset";
  if (/timeout/i.test(outcome)) return "timeout";
  return outcome;
}

/** nginx's error-log lines, numbers and addresses folded, by message. */
function errorMessages(text: string): { byMessage: Record<string, number>; lines: number } {
  const byMessage: Record<string, number> = {};
  let lines = 0;
  for (const line of text.split("\n")) {
    const m = /^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$/.exec(line);
    if (!m || m[1] === "notice") continue;
    // Client-side closes and keep-alive bookkeeping are logged at info; the upstream's are not.
    if (m[1] === "info" && !/upstream/.test(m[2]!)) continue;
    lines++;
    const msg = `[${m[1]}] ${m[2]!.replace(/, client: .*$/, "").replace(/\d+/g, "N")}`;
    byMessage[msg] = (byMessage[msg] ?? 0) + 1;
  }
  return { byMessage, lines };
}

/** The contender's access log (log_format `reload`) from `sinceEpochMs` on. */
function accessCounts(path: string, sinceEpochMs: number): NonNullable<Result["nginx"]> {
  const out = { lines: 0, non2xx: 0, retried: 0, retriedGet: 0, retriedPost: 0, upstreamStatus: {} as Record<string, number>, errorLog: {}, errorLines: 0 };
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const m = /^(\d+\.\d+) (\S+) (\S+) (\d+) "([^"]*)"/.exec(line);
    if (!m || Number(m[1]) * 1000 < sinceEpochMs) continue;
    out.lines++;
    const status = Number(m[4]);
    if (status < 200 || status > 299) out.non2xx++;
    const up = m[5]!;
    out.upstreamStatus[up] = (out.upstreamStatus[up] ?? 0) + 1;
    // "502, 200": the first upstream attempt failed and nginx tried again (another connection).
    if (up.includes(",")) {
      out.retried++;
      if (m[2] === "POST") out.retriedPost++;
      else out.retriedGet++;
    }
  }
  return out;
}

function rest(r: Running): { masterKiB: number; workersKiB: number[] } {
  return { masterKiB: rssKiB(r.masterPid), workersKiB: r.workers().map(rssKiB) };
}

async function verify(port: number, prefix: string): Promise<void> {
  for (const post of [false, true]) {
    const load = new Load({ port, prefix, rate: 1, postShare: post ? 1 : 0, concurrency: 1, timeoutMs: TIMEOUT_MS });
    // One request by hand, through the generator's own checks.
    load.send(post);
    await load.stop(TIMEOUT_MS + 1000);
    load.close();
    const s = load.samples[0];
    if (!s || s.outcome !== "ok") throw new Error(`${prefix}${post ? "upload (POST)" : "hello"} through nginx: ${s?.outcome ?? "no answer"}\n--- nginx error log (tail) ---\n${nginx!.errorLog().split("\n").slice(-10).join("\n")}`);
  }
}

async function runOne(c: Contender, ctx: Ctx, skipped: string | null): Promise<Result> {
  const res: Result = { id: c.id, what: c.what, version: skipped ? "" : c.version(), reloadWith: c.reloadWith, skipped, rest: null, reloads: [], sent: 0, skippedLoad: 0, steady: null, during: null, all: null, failures: {}, firstFailures: [], p99Ratio: null, nginx: null, timeline: [], error: null };
  if (skipped) return res;
  console.log(`\n== ${c.id} (${res.version}): ${c.what}`);
  let running: Running | null = null;
  const load = new Load({ port: nginx!.port, prefix: `/${c.id}/`, rate, postShare, concurrency: CONCURRENCY, timeoutMs: TIMEOUT_MS });
  try {
    running = await c.start(ctx);
    await sleep(1000);
    res.rest = rest(running);
    console.log(`  started: master ${running.masterPid} (${fmt(res.rest.masterKiB / 1024, 1)} MiB), workers ${running.workers().join(", ")} (${res.rest.workersKiB.map((k) => fmt(k / 1024, 1)).join(", ")} MiB) at rest`);
    await verify(nginx!.port, `/${c.id}/`);
    check();
    if (warmupS > 0) {
      load.start(false);
      await sleep(warmupS * 1000);
      await load.stop(TIMEOUT_MS);
    }
    const errStart = statSize(nginx!.errorLogPath);
    const epoch0 = Date.now();
    load.start(true);
    // Reloads evenly spread, steady time before the first and after the last; one at a time.
    const edge = Math.min(5, seconds / 6);
    const spacing = (seconds - 2 * edge) / reloads;
    const pending = new Set<{ reload: Reload; old: Stat[] }>();
    const watch = setInterval(() => {
      for (const r of pending) {
        if (r.old.every((s) => readStat(s.pid)?.start !== s.start)) {
          r.reload.oldGone = load.now();
          pending.delete(r);
        }
      }
    }, 50);
    for (let i = 0; i < reloads && !interrupted; i++) {
      const at = (edge + i * spacing) * 1000;
      if (load.now() < at) await sleep(at - load.now());
      check();
      const old = running.workers().map((p) => readStat(p)).filter((s): s is Stat => s !== null);
      const reload: Reload = { sent: load.now(), done: null, error: null, oldGone: null, aliveAtSignal: old.length };
      // Workers still draining from an earlier reload are children too: they are "old" as well.
      pending.add({ reload, old });
      try {
        await running.reload();
        reload.done = load.now();
      } catch (e) {
        reload.error = (e as Error).message.split("\n")[0]!;
        console.warn(`  ! reload ${i + 1}: ${(e as Error).message}`);
      }
      res.reloads.push(reload);
      console.log(`  reload ${i + 1}/${reloads} at ${(reload.sent / 1000).toFixed(1)} s: ${reload.done !== null ? `done in ${fmt(reload.done - reload.sent)} ms` : "FAILED"} (${old.length} workers before)`);
    }
    const remaining = seconds * 1000 - load.now();
    if (remaining > 0) await sleep(remaining);
    check();
    await load.stop(TIMEOUT_MS + 2000);
    clearInterval(watch);
    // Old workers still alive at the end stay oldGone: null.
    await sleep(300);
    res.nginx = { ...accessCounts(join(nginx!.dir, "logs", `${c.id}.access.log`), epoch0 - 5), errorLog: {}, errorLines: 0 };
    const errs = errorMessages(readFileSync(nginx!.errorLogPath, "utf8").slice(errStart));
    res.nginx.errorLog = errs.byMessage;
    res.nginx.errorLines = errs.lines;
  } catch (e) {
    res.error = (e as Error).message;
    console.error(`  ! ${c.id}: ${(e as Error).message}`);
    await load.stop(1000);
  } finally {
    load.close();
    if (running) {
      await running.stop();
      if (flags.keep) writeFileSync(join(ctx.dir, `${c.id}.log`), running.log());
    }
  }
  analyze(res, load);
  return res;
}

function statSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function analyze(res: Result, load: Load): void {
  const windows = res.reloads.map((r) => [r.sent, (r.done ?? r.sent + 60_000) + settleS * 1000] as const);
  const during = (s: Sample) => windows.some(([a, b]) => s.start <= b && s.start + s.ms >= a);
  const samples = load.samples;
  res.sent = samples.length;
  res.skippedLoad = load.skipped;
  if (!samples.length) return;
  const d = samples.filter(during);
  const st = samples.filter((s) => !during(s));
  res.all = stats(samples);
  res.during = stats(d);
  res.steady = stats(st);
  res.p99Ratio = res.steady.p99ms > 0 ? res.during.p99ms / res.steady.p99ms : null;
  for (const s of samples) {
    if (s.outcome === "ok") continue;
    const k = `${s.post ? "POST" : "GET"} ${kind(s.outcome)}`;
    res.failures[k] = (res.failures[k] ?? 0) + 1;
    if (res.firstFailures.length < 30) res.firstFailures.push({ t: Math.round(s.start) / 1000, method: s.post ? "POST" : "GET", outcome: s.outcome, during: during(s) });
  }
  const secs = Math.ceil(Math.max(...samples.map((s) => s.start)) / 1000);
  for (let t = 0; t < secs; t++) {
    const xs = samples.filter((s) => s.start >= t * 1000 && s.start < (t + 1) * 1000);
    res.timeline.push({ t, sent: xs.length, failed: xs.filter((s) => s.outcome !== "ok").length, p99ms: Math.round(percentile(xs.map((s) => s.ms), 99) * 100) / 100 });
  }
}

// ---- ondemand: 20 sites, none visited; the first request to one ----

interface OnDemand {
  built: boolean;
  note: string;
  sites: number;
  processes: number | null;
  rssKiB: number | null;
  /** The first request to each of the first COLD_SITES sites, one after the other. */
  coldMs: number[];
  coldMaxMs: number | null;
  warmMs: number | null;
  workersAfter: number | null;
  error: string | null;
}

function timedGet(port: number, path: string): Promise<{ ms: number; status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error("timeout after 30 s")));
    req.on("error", reject);
  });
}

const siteName = (i: number) => `site${String(i + 1).padStart(2, "0")}`;

async function onDemand(ctx: Ctx): Promise<OnDemand> {
  const od: OnDemand = { built: false, note: "", sites: odSites, processes: null, rssKiB: null, coldMs: [], coldMaxMs: null, warmMs: null, workersAfter: null, error: null };
  const dir = join(ctx.dir, "ondemand");
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const file = join(dir, "tsgi.toml");
  const sites = Array.from({ length: odSites }, (_, i) => ({ name: siteName(i), sock: join(dir, `${siteName(i)}.sock`), extra: `processes = ${WORKERS}\nondemand = true` }));
  writeFileSync(file, tsgiToml(sites));
  const chk = spawnSync(process.execPath, [join(ROOT, "bin", "tsgi.js"), "check", "-c", file], { encoding: "utf8", timeout: 30_000 });
  if (chk.status !== 0) {
    const text = `${chk.stdout}${chk.stderr}`;
    if (/ondemand: unknown key/.test(text)) {
      od.note = "ondemand: not built in this checkout";
      return od;
    }
    od.error = `tsgi check refused the ondemand file: ${text.trim().split("\n").slice(0, 3).join(" ")}`;
    return od;
  }
  od.built = true;
  const { proc, log } = startTsgiDaemon("tsgi-ondemand", file, dir);
  try {
    const deadline = Date.now() + 30_000;
    while (!/ready: /.test(log()) || !sites.every((s) => existsSync(s.sock))) {
      if (proc.exitInfo) throw new Error(`the daemon exited at start:\n${log().split("\n").slice(-10).join("\n")}`);
      if (Date.now() > deadline) throw new Error(`the daemon was not ready within 30 s:\n${log().split("\n").slice(-10).join("\n")}`);
      await sleep(50);
    }
    await sleep(1000);
    const g = group(proc.pid);
    od.processes = g.all.length;
    od.rssKiB = g.all.reduce((a, s) => a + rssKiB(s.pid), 0);
    for (let i = 1; i <= Math.min(COLD_SITES, odSites); i++) {
      const first = await timedGet(nginx!.port, `/ondemand/${i}/hello`);
      if (first.status !== 200 || first.body !== "Hello, world!\n") throw new Error(`first request to ondemand site ${i}: status ${first.status}, ${JSON.stringify(first.body.slice(0, 60))}`);
      od.coldMs.push(first.ms);
    }
    od.coldMaxMs = Math.max(...od.coldMs);
    od.warmMs = (await timedGet(nginx!.port, "/ondemand/1/hello")).ms;
    od.workersAfter = group(proc.pid).children.length;
  } catch (e) {
    od.error = (e as Error).message;
  } finally {
    await stopTracked(proc, 35_000);
    if (flags.keep) writeFileSync(join(dir, "daemon.log"), log());
  }
  return od;
}

// ---- tables ----

function table(head: string[], rows: string[][], md = false): string {
  const right = head.map((_, i) => i > 0);
  if (md) return [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (right[i] ? "---:" : "---")).join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (right[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

const mib = (kib: number | null | undefined) => (kib === null || kib === undefined ? "–" : `${fmt(kib / 1024, 1)} MiB`);
const ms = (x: number | null | undefined) => fmt(x, 2);
const median = (xs: number[]) => (xs.length ? percentile(xs, 50) : NaN);

function contenderTable(r: Result, md: boolean): string {
  const row = (name: string, s: Stats | null) => [name, fmt(s?.requests), fmt(s?.failed), fmt(s?.failedGet), fmt(s?.failedPost), ms(s?.p50ms), ms(s?.p99ms)];
  return table(["phase", "requests", "failed", "GET failed", "POST failed", "p50 ms", "p99 ms"], [row("steady", r.steady), row("during reloads", r.during), row("all", r.all)], md);
}

function contenderLines(r: Result): string[] {
  const done = r.reloads.filter((x) => x.done !== null).map((x) => x.done! - x.sent);
  const gone = r.reloads.filter((x) => x.oldGone !== null).map((x) => x.oldGone! - x.sent);
  const still = r.reloads.filter((x) => x.oldGone === null).length;
  const n = r.nginx;
  const lines = [
    `reloads: ${r.reloads.length} by ${r.reloadWith}, ${r.reloads.filter((x) => x.error).length} failed; done (by its own account) after ${fmt(median(done))} ms median, ${fmt(Math.max(...done, 0))} ms max; the old workers gone after ${gone.length ? `${fmt(median(gone))} ms median, ${fmt(Math.max(...gone))} ms max` : "–"}${still ? ` (${still} reload${still > 1 ? "s'" : "'s"} old workers still alive when the load ended)` : ""}; workers alive at a signal: up to ${Math.max(0, ...r.reloads.map((x) => x.aliveAtSignal))}`,
    `p99 during reloads / steady: ${r.p99Ratio === null ? "–" : `${fmt(r.p99Ratio, 2)}x`}; sent ${fmt(r.sent)} (${r.skippedLoad ? `${fmt(r.skippedLoad)} not sent: ${CONCURRENCY} in flight` : "none skipped"})`,
    `failed by kind: ${Object.keys(r.failures).length ? Object.entries(r.failures).map(([k, v]) => `${k} × ${v}`).join(", ") : "none"}`,
  ];
  if (n) {
    lines.push(`nginx: ${fmt(n.lines)} requests logged, ${fmt(n.non2xx)} non-2xx, ${fmt(n.retried)} retried on another upstream connection (GET ${n.retriedGet}, POST ${n.retriedPost})${n.retried ? `; $upstream_status: ${Object.entries(n.upstreamStatus).filter(([k]) => k.includes(",") || !/^2\d\d$/.test(k)).map(([k, v]) => `"${k}" × ${v}`).join(", ")}` : ""}`);
    lines.push(`nginx error log: ${n.errorLines ? Object.entries(n.errorLog).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} × ${k}`).join("; ") : "no upstream errors"}`);
  }
  return lines;
}

interface Target {
  target: string;
  met: boolean | null;
  figure: string;
}

function targets(tsgiRes: Result | undefined, od: OnDemand | null): Target[] {
  const out: Target[] = [];
  if (tsgiRes && !tsgiRes.skipped && !tsgiRes.error && tsgiRes.all) {
    const nginxFailed = tsgiRes.nginx?.non2xx ?? 0;
    out.push({ target: "tsgi: 0 failed requests during the reloads (client and nginx)", met: tsgiRes.all.failed === 0 && nginxFailed === 0 && tsgiRes.skippedLoad === 0, figure: `${tsgiRes.all.failed} failed at the client (${Object.entries(tsgiRes.failures).map(([k, v]) => `${k} × ${v}`).join(", ") || "none"}), ${nginxFailed} non-2xx in nginx's log, ${tsgiRes.nginx?.retried ?? 0} retried by nginx, ${tsgiRes.skippedLoad} not sent (${CONCURRENCY} in flight)` });
    out.push({ target: `tsgi: p99 during reloads <= ${P99_RATIO_MAX}x steady`, met: tsgiRes.p99Ratio !== null && tsgiRes.p99Ratio <= P99_RATIO_MAX, figure: `${ms(tsgiRes.during?.p99ms)} ms vs ${ms(tsgiRes.steady?.p99ms)} ms = ${fmt(tsgiRes.p99Ratio, 2)}x` });
  } else out.push({ target: "tsgi: 0 failed, p99 during reloads <= 2x steady", met: null, figure: tsgiRes?.error ?? tsgiRes?.skipped ?? "not run" });
  if (od?.built && od.coldMaxMs !== null) out.push({ target: `tsgi: cold start of an ondemand site < ${COLD_START_MAX_MS} ms`, met: od.coldMaxMs < COLD_START_MAX_MS, figure: `${od.coldMs.map((x) => ms(x)).join(", ")} ms for the first request to ${od.coldMs.length} sites (the next request ${ms(od.warmMs)} ms)` });
  else out.push({ target: `tsgi: cold start of an ondemand site < ${COLD_START_MAX_MS} ms`, met: null, figure: od?.note || od?.error || "not run" });
  return out;
}

const verdict = (t: Target) => (t.met === null ? "not measured" : t.met ? "met" : "MISSED");

// ---- main ----

async function main(): Promise<number> {
  const machine = machineInfo(ROOT);
  console.log(`bench:reload: ${seconds} s of ${rate} req/s (${fmt(postShare * 100)} % POST of 256 bytes), ${reloads} reloads, ${WORKERS} workers per contender, ${warmupS} s warm-up; ${machine.nproc} CPUs, load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  console.log(`  tsgi runs from ${fromBundle ? "its bundle (dist/tsgi.mjs)" : "src/ through tsx"}`);
  const skipped = new Map<string, string | null>();
  for (const c of contenders) {
    const why = await c.prepare();
    skipped.set(c.id, why);
    console.log(`  ${c.id.padEnd(9)} ${why ? `SKIPPED: ${why}` : c.version()}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "tsgi-reload-"));
  if (process.getuid?.() === 0) chmodSync(dir, 0o755);
  const ctx: Ctx = { dir, workers: WORKERS, port: freePort };
  const results: Result[] = [];
  let od: OnDemand | null = null;
  try {
    const blocks = [];
    for (const c of contenders) if (!skipped.get(c.id)) blocks.push(await c.nginx(ctx));

    // $upstream_status lists every upstream attempt: "502, 200" is a request nginx retried.
    const head = ["log_format reload '$msec $request_method $uri $status \"$upstream_status\" $request_time';", ...blocks.map((b) => b.upstream)];
    const odLocations = Array.from({ length: Math.min(COLD_SITES, odSites) }, (_, i) => `location /ondemand/${i + 1}/ { access_log {{DIR}}/logs/ondemand.access.log reload; fastcgi_pass unix:${join(dir, "ondemand", `${siteName(i)}.sock`)}; include /etc/nginx/fastcgi_params; }`);
    const locations = [...blocks.map((b) => b.location), ...odLocations];
    nginx = await startNginx({ conf: nginxServer(head, locations) });
    console.log(`  nginx ${nginx.version} on 127.0.0.1:${nginx.port} (temp folder ${dir})`);
    for (const c of contenders) {
      check();
      results.push(await runOne(c, ctx, skipped.get(c.id) ?? null));
      const r = results[results.length - 1]!;
      if (!r.skipped && !r.error) {
        console.log(contenderTable(r, false).replace(/^/gm, "  "));
        for (const l of contenderLines(r)) console.log(`  ${l}`);
      }
      await sleep(1000);
    }
    check();
    console.log(`\n== memory: ${odSites} ondemand sites, none visited; then the first request to one through nginx`);
    od = await onDemand(ctx);
    console.log(`  ${od.note || od.error || `${od.processes} process(es), ${mib(od.rssKiB)}; first request to ${COLD_SITES} sites ${od.coldMs.map((x) => ms(x)).join(", ")} ms, the next ${ms(od.warmMs)} ms; workers after: ${od.workersAfter}`}`);
  } finally {
    if (nginx) await nginx.stop({ keep: flags.keep });
    nginx = null;
    if (!flags.keep) rmSync(dir, { recursive: true, force: true });
    else console.log(`  kept ${dir}`);
  }
  if (interrupted) return 130;

  const ts = targets(results.find((r) => r.id === "tsgi"), od);
  const summaryHead = ["contender", "requests", "not sent", "failed", "failed in reloads", "p50 steady", "p99 steady", "p50 reloads", "p99 reloads", "p99 ×", "nginx retried", "nginx errors", "reload done ms", "old gone ms"];
  const summaryRows = results.filter((r) => !r.skipped && r.all).map((r) => {
    const done = r.reloads.filter((x) => x.done !== null).map((x) => x.done! - x.sent);
    const gone = r.reloads.filter((x) => x.oldGone !== null).map((x) => x.oldGone! - x.sent);
    return [r.id, fmt(r.all!.requests), fmt(r.skippedLoad), fmt(r.all!.failed), fmt(r.during!.failed), ms(r.steady!.p50ms), ms(r.steady!.p99ms), ms(r.during!.p50ms), ms(r.during!.p99ms), `${fmt(r.p99Ratio, 2)}x`, fmt(r.nginx?.retried), fmt(r.nginx?.errorLines), fmt(median(done)), gone.length ? fmt(median(gone)) : "–"];
  });
  const memHead = ["contender", "master RSS", "per-worker RSS at rest", "total"];
  const memRows = results.filter((r) => r.rest).map((r) => [r.id, mib(r.rest!.masterKiB), r.rest!.workersKiB.map((k) => mib(k)).join(", "), mib(r.rest!.masterKiB + r.rest!.workersKiB.reduce((a, b) => a + b, 0))]);
  const odLine = od ? (od.note || od.error || `${od.sites} ondemand sites (${WORKERS} processes each at most), none visited: ${od.processes} process${od.processes === 1 ? "" : "es"}, ${mib(od.rssKiB)} in all; the first request through nginx (cold start) to ${od.coldMs.length} of them in turn: ${od.coldMs.map((x) => ms(x)).join(", ")} ms; the next request ${ms(od.warmMs)} ms`) : "not run";

  console.log(`\n== summary (latencies in ms; "reloads" = requests overlapping a reload: from its signal to ${settleS} s after it was done)`);
  console.log(table(summaryHead, summaryRows));
  for (const r of results) if (r.skipped || r.error) console.log(`${r.id}: ${r.skipped ? `skipped: ${r.skipped}` : `error: ${r.error!.split("\n")[0]}`}`);
  console.log(`\n${table(memHead, memRows)}\n${odLine}\n`);
  for (const t of ts) console.log(`target ${verdict(t).padEnd(12)} ${t.target}: ${t.figure}`);

  // ---- results ----
  const settings = { seconds, reloads, rate, postShare, postBytes: 256, warmupSeconds: warmupS, settleSeconds: settleS, workers: WORKERS, timeoutMs: TIMEOUT_MS, concurrency: CONCURRENCY, ondemandSites: odSites, quick, tsgiFrom: fromBundle ? "dist/tsgi.mjs" : "src (tsx)" };
  const versions = Object.fromEntries(results.filter((r) => !r.skipped).map((r) => [r.id, r.version]));
  const outDir = join(ROOT, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${flags.out}.json`), JSON.stringify({ machine, versions, settings, results, ondemand: od, targets: ts }, null, 2) + "\n");
  const md = [
    `# bench:reload — ${machine.date}`,
    "",
    `tsgi ${machine.git} (from ${settings.tsgiFrom}), ${machine.nproc} CPUs (${machine.cpu}), Linux ${machine.kernel}, Node ${machine.node}, ${machine.nginx}; ${Object.values(versions).join(", ")}.`,
    "",
    `${seconds} s at ${rate} req/s (open loop, ${fmt(postShare * 100)} % POST of 256 bytes, the rest GET), ${reloads} reloads, ${WORKERS} workers per contender, through one nginx. "reloads" = requests overlapping a reload (from its signal to ${settleS} s after the contender said it was done); "steady" = the others. Latencies in ms, of every request (failed ones included).`,
    "",
    table(summaryHead, summaryRows, true),
    "",
    ...results.flatMap((r) =>
      r.skipped || r.error
        ? [`## ${r.id}`, "", r.skipped ? `Skipped: ${r.skipped}` : `Error: ${r.error}`, ""]
        : [`## ${r.id} — ${r.version}`, "", r.what, "", contenderTable(r, true), "", ...contenderLines(r).map((l) => `- ${l}`), ""],
    ),
    "## Memory",
    "",
    table(memHead, memRows, true),
    "",
    odLine,
    "",
    "## Targets (issue 9)",
    "",
    ...ts.map((t) => `- **${verdict(t)}** ${t.target}: ${t.figure}`),
    "",
  ].join("\n");
  writeFileSync(join(outDir, `${flags.out}.md`), md);
  console.log(`\nwrote bench/results/${flags.out}.json and .md`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`bench:reload: ${interrupted ? "interrupted" : e.stack ?? e.message}`);
    process.exit(interrupted ? 130 : 1);
  },
);

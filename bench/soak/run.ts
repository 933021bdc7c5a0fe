// `npm run bench:soak` (issue 4, deliverable 3 "Endurance"): one `tsgi serve --processes 2`
// with a FastCGI and a uwsgi unix socket behind one real nginx (FastCGI with keep-conn and
// upstream keepalive, uwsgi a connection per request), a steady request rate mixing W1–W4 with
// client aborts for a bounded time, and every worker's RSS and open file descriptors sampled
// from /proc. PASS when no request failed (the aborted ones aside) and, per worker, the last
// minute's averages are within 5 fds of the first minute's, and its RSS within 16 MiB of the
// minute that ends halfway through the run (a leak keeps growing in the second half; a heap
// warming up does not) and 64 MiB of the first minute's. Writes
// bench/results/soak-latest.{md,json}. Everything it starts is stopped by PID on exit, error
// or Ctrl-C. Flags and what it checks: bench/soak/README.md.

import { spawnSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startNginx, type FrontServer } from "../../test/support/front-servers.ts";
import { CLK_TCK, group, killAllTrackedSync, rssKiB, spawnTracked, stopTracked, type Started } from "../lib/procs.ts";
import { KINDS, LOCATIONS, Load, percentile, type KindId } from "./load.ts";
import { machineInfo } from "../lib/machine.ts";
import { ROOT, nginxServer } from "../lib/contenders.ts";
import { fmt } from "../lib/report.ts";

const env = process.env;

// ---- settings ----

const { values: flags } = parseArgs({
  options: {
    minutes: { type: "string", default: env.SOAK_MINUTES ?? "10" },
    seconds: { type: "string", default: env.SOAK_SECONDS },
    rate: { type: "string", default: env.SOAK_RATE ?? "300" },
    concurrency: { type: "string", default: env.SOAK_CONCURRENCY ?? "64" },
    interval: { type: "string", default: "10" },
    processes: { type: "string", default: "2" },
    out: { type: "string", default: env.SOAK_OUT ?? "soak-latest" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (flags.help) {
  console.log("npm run bench:soak -- [--minutes M | --seconds S] [--rate R] [--concurrency C] [--interval S] [--processes N] [--out NAME] [--keep]");
  console.log("  defaults: 10 minutes, 300 req/s, 64 requests in flight at most, a sample every 10 s, 2 workers, results/soak-latest.{md,json}");
  console.log("  env: SOAK_MINUTES, SOAK_SECONDS, SOAK_RATE, SOAK_CONCURRENCY, SOAK_OUT (see bench/soak/README.md)");
  process.exit(0);
}

const positive = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`soak: --${name} must be a positive number, not ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const durationS = flags.seconds !== undefined ? positive("seconds", flags.seconds) : positive("minutes", flags.minutes) * 60;
const rate = positive("rate", flags.rate);
const concurrency = Math.round(positive("concurrency", flags.concurrency));
const intervalS = positive("interval", flags.interval);
const processes = Math.round(positive("processes", flags.processes));

// Thresholds of the verdict (issue 4: "RSS and open file descriptors of every worker flat").
const FD_DRIFT_MAX = 5;
/** RSS growth allowed from the middle window to the last (after warm-up: a leak shows here). */
const RSS_DRIFT_MAX_MIB = 16;
/** RSS growth allowed from the first window to the last, warm-up included (issue 4's 64 MiB). */
const RSS_GROWTH_MAX_MIB = 64;
/** Runs this long or longer compare the first and last minute; shorter ones the first and last 20 % of samples. */
const MINUTE_WINDOWS_FROM_S = 120;
/** nginx's upstream keepalive_timeout for the FastCGI pool: idle connections close after it. */
const UPSTREAM_IDLE_S = 10;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

if (spawnSync("nginx", ["-v"]).error) {
  console.error("soak: nginx is missing. Install it with:\n  apt-get update && apt-get install -y nginx");
  process.exit(2);
}
if (!existsSync(join(ROOT, "build", "Release", "tsgi.node"))) {
  console.error("soak: the native bridge is not built (build/Release/tsgi.node): run `npm ci` first");
  process.exit(2);
}

const machine = machineInfo(ROOT);
const settings = { seconds: durationS, rate, concurrency, intervalSeconds: intervalS, processes, fdDriftMax: FD_DRIFT_MAX, rssDriftMaxMiB: RSS_DRIFT_MAX_MIB, rssGrowthMaxMiB: RSS_GROWTH_MAX_MIB, mix: KINDS.map((k) => ({ id: k.id, what: k.what, perMille: k.weight })) };

// ---- interruption ----

let interrupted = false;
const wake = new AbortController();
let nginx: FrontServer | null = null;
let nginxStopped = false;
const onSignal = (sig: NodeJS.Signals) => {
  if (interrupted) {
    killAllTrackedSync();
    if (nginx && !nginxStopped) killPid(nginx.pid);
    process.exit(130);
  }
  interrupted = true;
  console.error(`\nsoak: ${sig}: stopping the load and every process it started (again to force)…`);
  wake.abort();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
process.on("exit", () => {
  killAllTrackedSync();
  if (nginx && !nginxStopped) killPid(nginx.pid);
});

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Sleeps until `ms` have passed or the run is interrupted. */
function pause(ms: number): Promise<void> {
  if (interrupted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      wake.signal.removeEventListener("abort", done);
      resolve();
    }
    wake.signal.addEventListener("abort", done);
  });
}

// ---- processes and samples ----

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

function loadAvg(): number {
  return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
}

interface WorkerSample {
  pid: number;
  rssKiB: number;
  fds: number;
  /** CPU use since the previous sample, % of one CPU. */
  cpuPct: number | null;
}

interface Sample {
  /** Seconds since the load started (negative: before it). */
  t: number;
  phase: "rest-before" | "load" | "rest-after";
  sent: number;
  ok: number;
  aborted: number;
  failed: number;
  skipped: number;
  inFlight: number;
  load1: number;
  master: { pid: number; rssKiB: number; fds: number };
  workers: WorkerSample[];
}

interface WorkerId {
  pid: number;
  start: number;
}

const samples: Sample[] = [];
const events: string[] = [];
let known: WorkerId[] | null = null;
const lastTicks = new Map<number, { ticks: number; at: number }>();

function sample(master: Started, phase: Sample["phase"], t: number, load: Load | null): Sample {
  const now = group(master.pid).children;
  // The first sample learns the workers; later ones report any that ended or appeared.
  if (known) {
    for (const k of known) if (!now.some((w) => w.pid === k.pid && w.start === k.start)) events.push(`t=${t.toFixed(0)} s: worker ${k.pid} is gone`);
    for (const w of now) if (!known.some((k) => k.pid === w.pid && k.start === w.start)) events.push(`t=${t.toFixed(0)} s: new worker ${w.pid}`);
  }
  known = now.map((w) => ({ pid: w.pid, start: w.start }));
  const at = performance.now();
  const workers = now.map((w): WorkerSample => {
    const ticks = w.ticks;
    const prev = lastTicks.get(w.pid);
    lastTicks.set(w.pid, { ticks, at });
    const cpuPct = prev ? (((ticks - prev.ticks) / CLK_TCK) * 100) / ((at - prev.at) / 1000) : null;
    return { pid: w.pid, rssKiB: rssKiB(w.pid), fds: fdCount(w.pid), cpuPct };
  });
  const tot = load?.totals() ?? { sent: 0, ok: 0, aborted: 0, failed: 0, skipped: 0 };
  const s: Sample = { t, phase, ...tot, inFlight: load?.inFlight ?? 0, load1: loadAvg(), master: { pid: master.pid, rssKiB: rssKiB(master.pid), fds: fdCount(master.pid) }, workers };
  samples.push(s);
  console.log(sampleLine(s));
  return s;
}

const mib = (kib: number) => kib / 1024;
const f = fmt;

function sampleLine(s: Sample): string {
  const head = s.phase === "load" ? `t=${f(s.t).padStart(4)}s` : s.phase.padEnd(11);
  const counts = `sent ${f(s.sent).padStart(7)} ok ${f(s.ok).padStart(7)} aborted ${f(s.aborted).padStart(5)} failed ${f(s.failed).padStart(3)}` + (s.skipped ? ` skipped ${s.skipped}` : "") + ` in-flight ${String(s.inFlight).padStart(2)} load ${s.load1.toFixed(2)}`;
  const ws = s.workers.map((w) => `${w.pid}: RSS ${f(mib(w.rssKiB), 1).padStart(5)} MiB, ${String(w.fds).padStart(3)} fds${w.cpuPct === null ? "" : `, CPU ${f(w.cpuPct).padStart(3)}%`}`).join(" | ");
  return `soak ${head} ${counts} | ${ws}`;
}

// ---- requests before the load ----

function once(port: number, path: string, body?: Buffer): Promise<{ status: number; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: body ? "POST" : "GET", agent: false, headers: body ? { "Content-Length": String(body.length) } : {} }, (res) => {
      let bytes = 0;
      let text = "";
      res.on("data", (d: Buffer) => {
        bytes += d.length;
        if (text.length < 200) text += d.subarray(0, 200).toString("latin1");
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, text }));
      res.on("error", reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on("error", reject);
    req.end(body);
  });
}

// ---- summary ----

interface WorkerSummary {
  pid: number;
  firstRssMiB: number;
  midRssMiB: number;
  lastRssMiB: number;
  /** Last window minus the middle one (the verdict's). */
  rssDriftMiB: number;
  /** Last window minus the first one, warm-up included. */
  rssGrowthMiB: number;
  firstFds: number;
  lastFds: number;
  fdDrift: number;
  minRssMiB: number;
  maxRssMiB: number;
  restBefore: { rssMiB: number; fds: number } | null;
  restAfter: { rssMiB: number; fds: number } | null;
}

const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

function windows(): { first: Sample[]; mid: Sample[]; last: Sample[]; label: string } {
  const load = samples.filter((s) => s.phase === "load");
  const T = Math.max(0, ...load.map((s) => s.t));
  if (durationS >= MINUTE_WINDOWS_FROM_S && T >= MINUTE_WINDOWS_FROM_S) {
    return {
      first: load.filter((s) => s.t <= 60.5),
      mid: load.filter((s) => s.t > T / 2 - 59.5 && s.t <= T / 2 + 0.5),
      last: load.filter((s) => s.t > T - 59.5),
      label: "first minute, the minute ending halfway, last minute",
    };
  }
  const k = Math.max(1, Math.ceil(load.length * 0.2));
  const half = Math.ceil(load.length / 2);
  return {
    first: load.slice(0, k),
    mid: load.slice(Math.max(0, half - k), half),
    last: load.slice(-k),
    label: `first ${k} sample${k > 1 ? "s" : ""}, the ${k} ending halfway, last ${k} (20 % of ${load.length} each)`,
  };
}

function summarizeWorkers(): WorkerSummary[] {
  const { first, mid, last } = windows();
  const load = samples.filter((s) => s.phase === "load");
  const pids = [...new Set(load.flatMap((s) => s.workers.map((w) => w.pid)))];
  const of = (ss: Sample[], pid: number) => ss.flatMap((s) => s.workers.filter((w) => w.pid === pid));
  const rest = (phase: Sample["phase"], pid: number) => {
    const w = of(samples.filter((s) => s.phase === phase), pid)[0];
    return w ? { rssMiB: mib(w.rssKiB), fds: w.fds } : null;
  };
  return pids.map((pid) => {
    const fw = of(first, pid);
    const lw = of(last, pid);
    const all = of(load, pid);
    const firstRssMiB = mib(avg(fw.map((w) => w.rssKiB)));
    const midRssMiB = mib(avg(of(mid, pid).map((w) => w.rssKiB)));
    const lastRssMiB = mib(avg(lw.map((w) => w.rssKiB)));
    const firstFds = avg(fw.map((w) => w.fds));
    const lastFds = avg(lw.map((w) => w.fds));
    return {
      pid,
      firstRssMiB,
      midRssMiB,
      lastRssMiB,
      rssDriftMiB: lastRssMiB - midRssMiB,
      rssGrowthMiB: lastRssMiB - firstRssMiB,
      firstFds,
      lastFds,
      fdDrift: lastFds - firstFds,
      minRssMiB: mib(Math.min(...all.map((w) => w.rssKiB))),
      maxRssMiB: mib(Math.max(...all.map((w) => w.rssKiB))),
      restBefore: rest("rest-before", pid),
      restAfter: rest("rest-after", pid),
    };
  });
}

/** Log lines counted by level, and the most frequent messages of the levels that matter (numbers folded). */
function logDigest(text: string, levelRe: RegExp, worthy: (level: string) => boolean): { levels: Record<string, number>; top: [string, number][] } {
  const levels: Record<string, number> = {};
  const msgs = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const level = levelRe.exec(line)?.[1] ?? "other";
    levels[level] = (levels[level] ?? 0) + 1;
    if (!worthy(level)) continue;
    const msg = line
      .replace(/^\S+ \S+ /, "")
      .replace(/\d+/g, "N")
      .slice(0, 220);
    msgs.set(msg, (msgs.get(msg) ?? 0) + 1);
  }
  return { levels, top: [...msgs.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8) };
}

// ---- main ----

const dir = mkdtempSync(join(tmpdir(), "tsgi-soak-"));
// nginx's workers run as www-data when started as root: they must reach the sockets.
if (process.getuid?.() === 0) chmodSync(dir, 0o755);
const fcgiSock = join(dir, "fastcgi.sock");
const uwsgiSock = join(dir, "uwsgi.sock");
const tsgiLog = join(dir, "tsgi.log");
let tsgi: Started | null = null;
let load: Load | null = null;
let setupError: unknown = null;
let tsgiLogText = "";
let nginxLogText = "";
let loadSeconds = 0;
const t0 = Date.now();

console.log(`soak: tsgi ${machine.git}, ${machine.date}, ${machine.nproc} CPUs (${machine.cpu}), node ${machine.node}, ${machine.nginx}`);
console.log(`soak: ${f(durationS)} s at ${rate} req/s (${concurrency} in flight at most), ${processes} workers, a sample every ${intervalS} s; sockets and logs in ${dir}`);
console.log(`soak: mix ${KINDS.map((k) => `${k.id} ${f(k.weight / 10, 1)} %`).join(", ")}; each alternates ${LOCATIONS.join(" and ")}`);

try {
  const out = openSync("/dev/null", "w");
  const err = openSync(tsgiLog, "w");
  try {
    tsgi = spawnTracked(
      "tsgi",
      process.execPath,
      [
        join(ROOT, "bin", "tsgi.js"),
        "serve",
        join(ROOT, "bench", "apps", "tsgi-app.mjs"),
        "--name", "soak",
        "--listen", `fastcgi:unix:${fcgiSock}`,
        "--listen", `uwsgi:unix:${uwsgiSock}`,
        "--processes", String(processes),
        "--socket-mode", "0666",
        ...(process.getuid?.() === 0 ? ["--run-as-root"] : []),
      ],
      // The access log (stdout) goes to /dev/null, formatted and written as in production.
      { cwd: ROOT, stdio: ["ignore", out, err] },
    );
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (interrupted) throw new Error("interrupted");
    if (tsgi.exitInfo) throw new Error(`tsgi serve exited at start (${JSON.stringify(tsgi.exitInfo)}):\n${readFileSync(tsgiLog, "utf8")}`);
    if ((await answers(fcgiSock)) && (await answers(uwsgiSock)) && group(tsgi.pid).children.length >= processes) break;
    if (Date.now() > deadline) throw new Error(`tsgi serve did not answer within 30 s:\n${readFileSync(tsgiLog, "utf8")}`);
    await sleep(50);
  }

  nginx = await startNginx({
    conf: nginxServer(
      [`upstream soak_fcgi { server unix:${fcgiSock}; keepalive 16; keepalive_requests 1000000; keepalive_timeout ${UPSTREAM_IDLE_S}s; }`],
      [
        "location /fcgi/ { fastcgi_pass soak_fcgi; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }",
        `location /uwsgi/ { uwsgi_pass unix:${uwsgiSock}; include /etc/nginx/uwsgi_params; }`,
      ],
    ),
  });

  // Every route once through each location, checked, before the load.
  for (const loc of LOCATIONS) {
    for (const k of KINDS) {
      if (k.id === "abort") continue;
      const g = await once(nginx.port, `/${loc}/${k.path}`, k.body);
      if (g.status !== 200 || g.bytes !== k.bytes || (k.text !== undefined && g.text !== k.text)) {
        throw new Error(`/${loc}/${k.path} answered ${g.status} with ${g.bytes} bytes (${JSON.stringify(g.text.slice(0, 60))}), expected 200 and ${k.bytes}\n--- nginx error log (tail) ---\n${nginx.errorLog().split("\n").slice(-10).join("\n")}\n--- tsgi log (tail) ---\n${readFileSync(tsgiLog, "utf8").split("\n").slice(-10).join("\n")}`);
      }
    }
  }
  console.log(`soak: every route answered through /fcgi/ and /uwsgi/ (nginx on 127.0.0.1:${nginx.port}, tsgi master ${tsgi.pid})`);
  await sleep(1000);
  sample(tsgi, "rest-before", 0, null);

  load = new Load({ port: nginx.port, rate, concurrency, idleTimeoutMs: 30_000 });
  load.start();
  for (let k = 1; k * intervalS <= durationS + 1e-9 && !interrupted; k++) {
    await pause(k * intervalS * 1000 - load.elapsed() * 1000);
    if (interrupted) break;
    sample(tsgi, "load", k * intervalS, load);
  }
  if (!interrupted && durationS - Math.floor(durationS / intervalS) * intervalS > 1e-9) await pause(durationS * 1000 - load.elapsed() * 1000);
  loadSeconds = load.elapsed();
  await load.stop(interrupted ? 0 : 60_000);
  if (!interrupted) {
    // nginx closes its idle FastCGI connections after the upstream keepalive_timeout: then the
    // workers hold only what they hold at rest.
    console.log(`soak: load stopped after ${f(loadSeconds, 1)} s; waiting ${UPSTREAM_IDLE_S + 3} s for idle upstream connections to close`);
    await pause((UPSTREAM_IDLE_S + 3) * 1000);
    if (!interrupted) sample(tsgi, "rest-after", loadSeconds, load);
  }
} catch (e) {
  setupError = e;
} finally {
  if (load) await load.stop(0).catch(() => {});
  if (nginx) {
    nginxLogText = nginx.errorLog();
    await nginx.stop({ keep: flags.keep }).catch((e: unknown) => console.error(`soak: stopping nginx: ${String(e)}`));
    nginxStopped = true;
  }
  if (tsgi) await stopTracked(tsgi);
  tsgiLogText = existsSync(tsgiLog) ? readFileSync(tsgiLog, "utf8") : "";
  if (!flags.keep) rmSync(dir, { recursive: true, force: true });
}

if (setupError && !load) {
  console.error(`soak: could not start: ${setupError instanceof Error ? setupError.message : String(setupError)}`);
  process.exit(interrupted ? 130 : 2);
}

// ---- verdict ----

const totals = load!.totals();
const win = windows();
const workers = summarizeWorkers();
const reasons: string[] = [];
const notes: string[] = [];
if (setupError) reasons.push(`stopped by an error: ${setupError instanceof Error ? setupError.message : String(setupError)}`);
if (interrupted) reasons.push("interrupted before the end");
if (totals.failed > 0) reasons.push(`${totals.failed} failed request${totals.failed > 1 ? "s" : ""}: ${[...load!.reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([r, n]) => `${n}× ${r}`).join("; ")}`);
for (const e of events) reasons.push(`worker set changed (${e})`);
if (!win.first.length || !win.last.length) reasons.push("no samples under load (the run is shorter than one sample interval)");
for (const w of workers) {
  if (w.fdDrift > FD_DRIFT_MAX) reasons.push(`worker ${w.pid}: open fds ${f(w.firstFds, 1)} → ${f(w.lastFds, 1)} (+${f(w.fdDrift, 1)} > ${FD_DRIFT_MAX})`);
  if (w.rssDriftMiB > RSS_DRIFT_MAX_MIB) reasons.push(`worker ${w.pid}: RSS ${f(w.midRssMiB, 1)} → ${f(w.lastRssMiB, 1)} MiB over the second half (+${f(w.rssDriftMiB, 1)} > ${RSS_DRIFT_MAX_MIB} MiB)`);
  if (w.rssGrowthMiB > RSS_GROWTH_MAX_MIB) reasons.push(`worker ${w.pid}: RSS ${f(w.firstRssMiB, 1)} → ${f(w.lastRssMiB, 1)} MiB from the first window (+${f(w.rssGrowthMiB, 1)} > ${RSS_GROWTH_MAX_MIB} MiB)`);
  if (w.restBefore && w.restAfter && w.restAfter.fds > w.restBefore.fds) notes.push(`worker ${w.pid}: ${w.restAfter.fds} fds at rest after the load, ${w.restBefore.fds} before it`);
}
const due = totals.sent + totals.skipped;
if (totals.skipped) notes.push(`${totals.skipped} requests (${f((100 * totals.skipped) / Math.max(due, 1), 2)} %) were due while ${concurrency} were in flight and not sent: the backend fell behind the rate`);
const achieved = loadSeconds > 0 ? totals.sent / loadSeconds : 0;
const pass = reasons.length === 0;

// nginx logs each client abort at info ("client prematurely closed connection …", "… while
// sending to client"): listed too, they show where the aborts met the response.
const tsgiDigest = logDigest(tsgiLogText, /\[(\w+)\]/, () => true);
const nginxDigest = logDigest(nginxLogText, /\[(\w+)\]/, (l) => !["notice", "debug"].includes(l));

// ---- report ----

const kindRows = KINDS.map((k) => {
  const s = load!.stats[k.id as KindId];
  return { id: k.id, what: k.what, sent: s.sent, ok: s.ok, aborted: s.aborted, failed: s.failed, skipped: s.skipped, fcgi: s.byLocation.fcgi, uwsgi: s.byLocation.uwsgi, p50ms: percentile(s.latencies, 50), p99ms: percentile(s.latencies, 99) };
});
const minutes = (Date.now() - t0) / 60_000;

console.log("");
console.log(`soak: ${f(loadSeconds, 1)} s of load, ${f(achieved, 1)} req/s sent (target ${rate}), at most ${load!.maxInFlight} in flight; took ${f(minutes, 1)} min`);
console.log(`${"workload".padEnd(8)} ${"sent".padStart(8)} ${"ok".padStart(8)} ${"aborted".padStart(8)} ${"failed".padStart(7)} ${"skipped".padStart(8)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}  fcgi/uwsgi sent`);
for (const r of kindRows) console.log(`${r.id.padEnd(8)} ${f(r.sent).padStart(8)} ${f(r.ok).padStart(8)} ${f(r.aborted).padStart(8)} ${f(r.failed).padStart(7)} ${f(r.skipped).padStart(8)} ${f(r.p50ms, 2).padStart(8)} ${f(r.p99ms, 2).padStart(8)}  ${r.fcgi.sent}/${r.uwsgi.sent}`);
console.log(`${"total".padEnd(8)} ${f(totals.sent).padStart(8)} ${f(totals.ok).padStart(8)} ${f(totals.aborted).padStart(8)} ${f(totals.failed).padStart(7)} ${f(totals.skipped).padStart(8)}`);
console.log(`\nper worker, ${win.label} (averages):`);
for (const w of workers) {
  console.log(
    `  worker ${w.pid}: RSS ${f(w.firstRssMiB, 1)} → ${f(w.midRssMiB, 1)} → ${f(w.lastRssMiB, 1)} MiB (second half ${w.rssDriftMiB >= 0 ? "+" : ""}${f(w.rssDriftMiB, 1)}, whole run ${w.rssGrowthMiB >= 0 ? "+" : ""}${f(w.rssGrowthMiB, 1)}, range ${f(w.minRssMiB, 1)}–${f(w.maxRssMiB, 1)}), ` +
      `fds ${f(w.firstFds, 1)} → ${f(w.lastFds, 1)} (drift ${w.fdDrift >= 0 ? "+" : ""}${f(w.fdDrift, 1)}); at rest before/after: ${w.restBefore ? `${f(w.restBefore.rssMiB, 1)} MiB ${w.restBefore.fds} fds` : "–"} / ${w.restAfter ? `${f(w.restAfter.rssMiB, 1)} MiB ${w.restAfter.fds} fds` : "–"}`,
  );
}
if (load!.reasons.size) {
  console.log("\nfailures by reason:");
  for (const [r, n] of [...load!.reasons.entries()].sort((a, b) => b[1] - a[1])) console.log(`  ${n}× ${r}`);
}
console.log(`\ntsgi log lines: ${JSON.stringify(tsgiDigest.levels)}${tsgiDigest.top.length ? "\n" + tsgiDigest.top.map(([m, n]) => `  ${n}× ${m}`).join("\n") : ""}`);
console.log(`nginx error log lines: ${JSON.stringify(nginxDigest.levels)}${nginxDigest.top.length ? "\n" + nginxDigest.top.map(([m, n]) => `  ${n}× ${m}`).join("\n") : ""}`);
for (const n of notes) console.log(`note: ${n}`);
console.log(pass ? "soak: PASS" : `soak: FAIL\n${reasons.map((r) => `  - ${r}`).join("\n")}`);

const resultsDir = join(ROOT, "bench", "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  join(resultsDir, `${flags.out}.json`),
  JSON.stringify({ machine, settings, loadSeconds, achievedRate: achieved, maxInFlight: load!.maxInFlight, pass, reasons, notes, windows: win.label, totals, workloads: kindRows, workers, events, failureReasons: Object.fromEntries(load!.reasons), failures: load!.failures, logs: { tsgi: tsgiDigest, nginx: nginxDigest }, samples }, null, 2) + "\n",
);
const md = [
  `# npm run bench:soak — ${machine.date}`,
  "",
  `tsgi ${machine.git}; ${machine.nproc} CPUs (${machine.cpu}), Linux ${machine.kernel}; node ${machine.node}, ${machine.nginx}.`,
  `\`tsgi serve bench/apps/tsgi-app.mjs --processes ${processes}\` on a FastCGI and a uwsgi unix socket behind one nginx (FastCGI: \`fastcgi_keep_conn on\`, upstream keepalive 16; uwsgi: a connection per request); ` +
    `${f(loadSeconds, 1)} s at ${rate} req/s (${f(achieved, 1)} sent/s, at most ${concurrency} in flight, ${load!.maxInFlight} seen), each workload alternating the two locations; took ${f(minutes, 1)} min.`,
  "",
  `**${pass ? "soak: PASS" : "soak: FAIL"}**${pass ? "" : "\n\n" + reasons.map((r) => `- ${r}`).join("\n")}`,
  ...(notes.length ? ["", ...notes.map((n) => `- note: ${n}`)] : []),
  "",
  "## Requests",
  "",
  "| workload | what | sent | ok | aborted | failed | skipped | p50 ms | p99 ms | sent fcgi / uwsgi |",
  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...kindRows.map((r) => `| ${r.id} | ${r.what} | ${f(r.sent)} | ${f(r.ok)} | ${f(r.aborted)} | ${f(r.failed)} | ${f(r.skipped)} | ${f(r.p50ms, 2)} | ${f(r.p99ms, 2)} | ${f(r.fcgi.sent)} / ${f(r.uwsgi.sent)} |`),
  `| total | | ${f(totals.sent)} | ${f(totals.ok)} | ${f(totals.aborted)} | ${f(totals.failed)} | ${f(totals.skipped)} | | | |`,
  "",
  ...(load!.reasons.size ? ["Failures by reason:", "", ...[...load!.reasons.entries()].sort((a, b) => b[1] - a[1]).map(([r, n]) => `- ${n}× ${r}`), ""] : []),
  `## Workers (${win.label}, averages)`,
  "",
  "| worker | RSS first MiB | RSS halfway MiB | RSS last MiB | RSS drift, second half | RSS growth, whole run | RSS range | fds first | fds last | fd drift | at rest before | at rest after |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...workers.map(
    (w) =>
      `| ${w.pid} | ${f(w.firstRssMiB, 1)} | ${f(w.midRssMiB, 1)} | ${f(w.lastRssMiB, 1)} | ${w.rssDriftMiB >= 0 ? "+" : ""}${f(w.rssDriftMiB, 1)} | ${w.rssGrowthMiB >= 0 ? "+" : ""}${f(w.rssGrowthMiB, 1)} | ${f(w.minRssMiB, 1)}–${f(w.maxRssMiB, 1)} | ${f(w.firstFds, 1)} | ${f(w.lastFds, 1)} | ${w.fdDrift >= 0 ? "+" : ""}${f(w.fdDrift, 1)} | ` +
      `${w.restBefore ? `${f(w.restBefore.rssMiB, 1)} MiB, ${w.restBefore.fds} fds` : "–"} | ${w.restAfter ? `${f(w.restAfter.rssMiB, 1)} MiB, ${w.restAfter.fds} fds` : "–"} |`,
  ),
  "",
  `Thresholds: fd drift <= ${FD_DRIFT_MAX} (last window's average minus the first's); RSS drift over the second half <= ${RSS_DRIFT_MAX_MIB} MiB (last window minus the one ending halfway: a leak keeps growing there, a heap warming up does not); RSS growth over the whole run <= ${RSS_GROWTH_MAX_MIB} MiB. "At rest after" is sampled ${UPSTREAM_IDLE_S + 3} s after the load, once nginx has closed its idle FastCGI connections.`,
  "",
  "## Logs",
  "",
  `tsgi (stderr) lines by level: ${JSON.stringify(tsgiDigest.levels)}`,
  ...tsgiDigest.top.map(([m, n]) => `- ${n}× \`${m.replace(/`/g, "'")}\``),
  "",
  `nginx error log lines by level: ${JSON.stringify(nginxDigest.levels)} (client aborts log at info)`,
  ...nginxDigest.top.map(([m, n]) => `- ${n}× \`${m.replace(/`/g, "'")}\``),
  "",
  "## Samples",
  "",
  `| t s | phase | sent | ok | aborted | failed | in flight | load avg | ${samples[0]?.workers.map((_, i) => `w${i + 1} RSS MiB | w${i + 1} fds | w${i + 1} CPU %`).join(" | ") ?? ""} |`,
  `|---:|---|---:|---:|---:|---:|---:|---:|${samples[0]?.workers.map(() => "---:|---:|---:").join("|") ?? ""}|`,
  ...samples.map((s) => `| ${f(s.t)} | ${s.phase} | ${f(s.sent)} | ${f(s.ok)} | ${f(s.aborted)} | ${f(s.failed)} | ${s.inFlight} | ${s.load1.toFixed(2)} | ${s.workers.map((w) => `${f(mib(w.rssKiB), 1)} | ${w.fds} | ${f(w.cpuPct)}`).join(" | ")} |`),
  "",
].join("\n");
writeFileSync(join(resultsDir, `${flags.out}.md`), md);
console.log(`wrote bench/results/${flags.out}.json and bench/results/${flags.out}.md`);
process.exit(interrupted ? 130 : pass ? 0 : 1);

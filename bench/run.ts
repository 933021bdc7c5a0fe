// `npm run bench` (issue 4): the end-to-end benchmark. Starts every contender of
// lib/contenders.ts with one worker (two for W5) behind one nginx (worker_processes 1, one
// `location` each) or one Apache, checks each route once, then runs wrk interleaved
// (A B C A B C …) for each workload and round, reading the backends' CPU time and RSS from
// /proc around every run. Prints the median table and writes bench/results/latest.{json,md}.
// Everything it starts is stopped by PID on exit, error or Ctrl-C. Flags: see bench/README.md.

import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { apacheVersion, freePort, startApache, startNginx, type FrontServer } from "../test/support/front-servers.ts";
import { APACHE_BASELINE, APACHE_MODULES, BASELINE, CONTENDERS, EXPRESS_BASELINE, ROOT, apacheConf, nginxConf, type Contender, type Plan } from "./lib/contenders.ts";
import { cpuMicros, group, killAllTrackedSync, spawnTracked, stopTracked, sumRssKiB, type Group, type Started } from "./lib/procs.ts";
import { checkTargets, fmt, markdownTable, summarize, targetsMarkdown, targetsText, textTable, type Row, type Run } from "./lib/report.ts";
import { abortWrk, runWrk } from "./lib/wrk.ts";
import { firstLine, machineInfo } from "./lib/machine.ts";

// ---- settings ----

interface Workload {
  id: string;
  what: string;
  path: string;
  connections: number;
  workers: number;
  script?: string;
  /** The only contenders that take part (default: every one whose `only` allows it). */
  contenders?: string[];
  /** The contender its ratios are taken against (default: BASELINE). */
  baseline?: string;
}

const WORKLOADS: Workload[] = [
  { id: "W1", what: "GET /hello (14 bytes)", path: "hello", connections: 64, workers: 1 },
  { id: "W2", what: "GET /large (100 KiB)", path: "large", connections: 64, workers: 1 },
  { id: "W3", what: "POST /upload, 1 MiB read fully", path: "upload", connections: 64, workers: 1, script: join(ROOT, "bench", "wrk", "post-1mib.lua") },
  { id: "W4", what: "GET /stream?mib=20 (20 MiB streamed in 64 KiB chunks)", path: "stream?mib=20", connections: 8, workers: 1 },
  { id: "W5", what: "W1 with 2 worker processes per contender", path: "hello", connections: 64, workers: 2 },
  // Issue 10: what fromNodeHandler costs an Express app, against the same app on node:http.
  { id: "W6", what: "GET /json from one Express app (res.json), under tsgi and on node:http", path: "json", connections: 64, workers: 1, contenders: ["express-node-http", "express-tsgi-fcgi-keep-unix"], baseline: EXPRESS_BASELINE },
];

/** Whether contender `c` runs workload `w`. */
const takesPart = (c: Contender, w: Workload) => (!c.only || c.only.includes(w.id)) && (!w.contenders || w.contenders.includes(c.id));

const env = process.env;
const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: env.BENCH_ROUNDS ?? "3" },
    seconds: { type: "string", default: env.BENCH_SECONDS ?? "5" },
    warmup: { type: "string", default: env.BENCH_WARMUP ?? "1" },
    connections: { type: "string", default: env.BENCH_CONNECTIONS },
    threads: { type: "string", default: env.BENCH_THREADS ?? "2" },
    contenders: { type: "string", default: env.BENCH_CONTENDERS },
    workloads: { type: "string", default: env.BENCH_WORKLOADS },
    // A smoke run (--quick) never overwrites the tracked results the README quotes.
    out: { type: "string", default: env.BENCH_OUT },
    quick: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    list: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (flags.help || flags.list) {
  console.log("npm run bench -- [--quick] [--rounds N] [--seconds S] [--warmup S] [--connections C] [--threads T]");
  console.log("                 [--contenders a,b] [--workloads W1,W3] [--out NAME] [--keep]   (see bench/README.md)\n");
  for (const c of CONTENDERS) console.log(`  ${c.id.padEnd(20)} ${c.what}`);
  console.log();
  for (const w of WORKLOADS) console.log(`  ${w.id}  ${w.what}, ${w.connections} connections`);
  process.exit(0);
}

// tsgi as users run it: from dist/ (bin/tsgi.js falls back to src/ through tsx when dist/ is
// older than a file of src/, which would measure tsx's transforms, not tsgi). Built here when stale.
{
  const built = spawnSync(process.execPath, [join(ROOT, "scripts", "build-js.mjs"), "--if-stale"], { stdio: "inherit" });
  if (built.status !== 0) {
    console.error("bench: npm run build:js failed: tsgi would run from src/ through tsx");
    process.exit(1);
  }
}

const quick = flags.quick;
flags.out ??= quick ? "quick" : "latest";
const rounds = Number(quick ? "1" : flags.rounds);
const seconds = Number(quick ? "2" : flags.seconds);
const warmup = Number(quick ? "1" : flags.warmup);
const threads = Number(flags.threads);
const connectionsOverride = flags.connections ? Number(flags.connections) : null;
const pick = <T extends { id: string }>(all: T[], list: string | undefined, what: string): T[] => {
  if (!list) return all;
  const ids = list.split(",").map((s) => s.trim()).filter(Boolean);
  for (const id of ids) if (!all.some((x) => x.id === id)) throw new Error(`unknown ${what} "${id}" (known: ${all.map((x) => x.id).join(", ")})`);
  return all.filter((x) => ids.includes(x.id));
};
const contenders = pick(CONTENDERS, flags.contenders, "contender");
const workloads = pick(WORKLOADS, flags.workloads ?? (quick ? "W1" : undefined), "workload");
for (const [name, v] of Object.entries({ rounds, seconds, warmup, threads })) {
  // wrk takes whole seconds.
  if (!Number.isInteger(v) || v < 0 || (name !== "warmup" && v === 0)) throw new Error(`--${name} must be a positive whole number`);
}

// ---- what it needs ----

/** What the chosen contenders of the chosen workloads need and this machine lacks. */
function missing(): string[] {
  const out: string[] = [];
  const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
  const running = contenders.filter((c) => workloads.some((w) => takesPart(c, w)));
  const apache = running.some((c) => c.front === "apache");
  for (const cmd of ["nginx", "wrk", ...(apache ? ["apache2"] : [])]) if (!has(cmd)) out.push(cmd);
  if (running.some((c) => c.id === "uwsgi-python")) {
    if (!existsSync("/usr/bin/uwsgi")) out.push("/usr/bin/uwsgi (uwsgi-core)");
    if (!existsSync("/usr/lib/uwsgi/plugins/python3_plugin.so")) out.push("uWSGI python3 plugin (uwsgi-plugin-python3)");
  }
  if (apache) for (const m of APACHE_MODULES) if (!existsSync(`/usr/lib/apache2/modules/mod_${m}.so`)) out.push(`mod_${m}`);
  return out;
}

const absent = missing();
if (absent.length) {
  console.error(`bench: missing ${absent.join(", ")}. Install them with:\n  apt-get update && apt-get install -y nginx wrk apache2 uwsgi-core uwsgi-plugin-python3`);
  process.exit(1);
}
if (!existsSync(join(ROOT, "build", "Release", "tsgi.node"))) {
  console.error("bench: the native bridge is not built (build/Release/tsgi.node): run `npm ci` first");
  process.exit(1);
}
if (!existsSync(join(ROOT, "node_modules", "node-fastcgi"))) {
  console.error("bench: node-fastcgi is not installed: run `npm ci` first");
  process.exit(1);
}

const machine = {
  ...machineInfo(ROOT),
  apache: apacheVersion(),
  uwsgi: firstLine("/usr/bin/uwsgi", ["--version"]),
  wrk: firstLine("wrk", ["-v"], /wrk \S+/),
};
const settings = {
  rounds,
  seconds,
  warmup,
  threads,
  connections: connectionsOverride,
  contenders: contenders.map((c) => c.id),
  workloads: workloads.map((w) => w.id),
  quick,
};

// ---- interruption ----

let interrupted = false;
/** Aborts the correctness requests in flight on Ctrl-C. */
const abort = new AbortController();
const onSignal = (sig: NodeJS.Signals) => {
  if (interrupted) {
    killAllTrackedSync();
    process.exit(130);
  }
  interrupted = true;
  console.error(`\nbench: ${sig}: stopping every process it started (again to force)…`);
  abort.abort();
  void abortWrk();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
process.on("exit", killAllTrackedSync);
const check = () => {
  if (interrupted) throw new Error("interrupted");
};

// ---- backends and fronts ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function answers(ready: { path: string } | { port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = "path" in ready ? connect(ready.path) : connect(ready.port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

interface Live {
  c: Contender;
  p: Plan;
  proc?: Started;
  logPath?: string;
  front?: FrontServer;
}

async function startBackend(l: Live, dir: string): Promise<void> {
  const b = l.p.backend;
  if (!b) return;
  l.logPath = join(dir, `${l.c.id}.log`);
  // tsgi's access log (stdout) and uWSGI's request log (--req-logger) go to /dev/null: both
  // still format and write every line; the harness spends no CPU reading them. stderr is kept.
  const out = openSync("/dev/null", "w");
  const err = openSync(l.logPath, "w");
  try {
    l.proc = spawnTracked(l.c.id, b.cmd, b.args, { cwd: ROOT, stdio: ["ignore", out, err] });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    check();
    if (l.proc.exitInfo) throw new Error(`${l.c.id} exited at start (${JSON.stringify(l.proc.exitInfo)}):\n${readFileSync(l.logPath, "utf8")}`);
    if ((await answers(b.ready)) && (b.children === 0 || group(l.proc.pid).children.length >= b.children)) break;
    if (Date.now() > deadline) throw new Error(`${l.c.id} did not answer within 30 s:\n${readFileSync(l.logPath, "utf8")}`);
    await sleep(50);
  }
}

interface Got {
  status: number;
  bytes: number;
  body: string;
}

function request(port: number, path: string, body?: Buffer): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: body ? "POST" : "GET", agent: false, signal: abort.signal, headers: body ? { "Content-Length": String(body.length), "Content-Type": "application/octet-stream" } : {} }, (res) => {
      let bytes = 0;
      let head = "";
      res.on("data", (d: Buffer) => {
        bytes += d.length;
        if (head.length < 200) head += d.subarray(0, 200).toString("latin1");
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, body: head }));
      res.on("error", reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on("error", reject);
    req.end(body);
  });
}

const MIB = Buffer.alloc(1024 * 1024, 0x78);

async function correctness(l: Live): Promise<void> {
  const port = l.front!.port;
  const base = `/c/${l.c.id}/`;
  const checks: [string, () => Promise<Got>, (g: Got) => boolean, string][] = [
    ["hello", () => request(port, `${base}hello`), (g) => g.bytes === 14 && g.body === "Hello, world!\n", "14 bytes"],
    ["large", () => request(port, `${base}large`), (g) => g.bytes === 102400, "102400 bytes"],
    ["upload", () => request(port, `${base}upload`, MIB), (g) => g.body.trim() === '{"size":1048576}', '{"size":1048576}'],
    ["stream", () => request(port, `${base}stream?mib=20`), (g) => g.bytes === 20 * 1024 * 1024, "20 MiB"],
    ["json", () => request(port, `${base}json`), (g) => g.body === '{"message":"Hello, world!"}', '{"message":"Hello, world!"}'],
  ];
  for (const [name, run, ok, expected] of checks) {
    // Each route is checked for the contenders of the workloads that request it.
    if (!WORKLOADS.some((w) => w.path.startsWith(name) && takesPart(l.c, w))) continue;
    const g = await run();
    if (g.status !== 200 || !ok(g)) {
      throw new Error(`${l.c.id}: /${name} answered ${g.status} with ${g.bytes} bytes (${JSON.stringify(g.body.slice(0, 80))}), expected 200 and ${expected}\n` + `--- front error log (tail) ---\n${l.front!.errorLog().split("\n").slice(-15).join("\n")}\n` + (l.logPath ? `--- backend log (tail) ---\n${readFileSync(l.logPath, "utf8").split("\n").slice(-15).join("\n")}` : ""));
    }
  }
}

// ---- one timed run ----

async function measure(l: Live, w: Workload, round: number, secs: number): Promise<Run> {
  const g: Group | null = l.proc ? group(l.proc.pid) : null;
  const restAll = g ? sumRssKiB(g.all) : null;
  const restWorkers = g ? sumRssKiB(g.workers) : null;
  let peakAll = restAll;
  let peakWorkers = restWorkers;
  const sample = () => {
    if (!g) return;
    peakAll = Math.max(peakAll!, sumRssKiB(g.all));
    peakWorkers = Math.max(peakWorkers!, sumRssKiB(g.workers));
  };
  const cpu0 = g ? cpuMicros(g.all) : 0;
  const wcpu0 = g ? cpuMicros(g.workers) : 0;
  const timer = setInterval(sample, 100);
  let r;
  try {
    r = await runWrk({
      url: `http://127.0.0.1:${l.front!.port}/c/${l.c.id}/${w.path}`,
      seconds: secs,
      connections: connectionsOverride ?? w.connections,
      threads,
      script: w.script,
    });
  } finally {
    clearInterval(timer);
  }
  sample();
  const cpu1 = g ? cpuMicros(g.all) : 0;
  const wcpu1 = g ? cpuMicros(g.workers) : 0;
  if (g && l.proc) {
    const now = group(l.proc.pid);
    if (now.all.map((s) => s.pid).join() !== g.all.map((s) => s.pid).join()) console.warn(`  ! ${l.c.id}: its processes changed during the run (a worker restarted?): CPU may be undercounted`);
  }
  const n = Math.max(r.requests, 1);
  return {
    workload: w.id,
    round,
    contender: l.c.id,
    rps: r.rps,
    requests: r.requests,
    seconds: r.seconds,
    p50ms: r.p50ms,
    p99ms: r.p99ms,
    errors: r.non2xx + r.socketErrors,
    errorDetail: r.errorDetail,
    cpuUsPerReq: g ? (cpu1 - cpu0) / n : null,
    workerCpuUsPerReq: g ? (wcpu1 - wcpu0) / n : null,
    rssPeakKiB: peakAll,
    workerRssPeakKiB: peakWorkers,
    rssRestKiB: restAll,
    workerRssRestKiB: restWorkers,
  };
}


// ---- a phase: one worker count, its backends and fronts, its workloads ----

async function phase(workers: number, phaseWorkloads: Workload[], runs: Run[]): Promise<void> {
  const members = contenders.filter((c) => phaseWorkloads.some((w) => takesPart(c, w)));
  if (!members.length) return;
  const dir = mkdtempSync(join(tmpdir(), "tsgi-bench-"));
  if (process.getuid?.() === 0) chmodSync(dir, 0o755);
  const live: Live[] = [];
  const fronts: FrontServer[] = [];
  try {
    console.log(`\n== ${workers} worker${workers > 1 ? "s" : ""} per contender: starting ${members.length} contenders (sockets and logs in ${dir})`);
    const ctx = { dir, workers, port: freePort };
    for (const c of members) live.push({ c, p: await c.plan(ctx) });
    for (const l of live) await startBackend(l, dir);
    // RSS at rest: started and ready, before any request (issue 4's memory target).
    await sleep(500);
    for (const l of live) {
      if (l.proc && !idleMiB.has(l.c.id) && workers === 1) idleMiB.set(l.c.id, sumRssKiB(group(l.proc.pid).workers) / 1024);
    }
    const ng = live.filter((l) => l.c.front === "nginx");
    const ap = live.filter((l) => l.c.front === "apache");
    if (ng.length) {
      const f = await startNginx({ conf: nginxConf(ng) });
      fronts.push(f);
      for (const l of ng) l.front = f;
    }
    if (ap.length) {
      const f = await startApache({ conf: apacheConf(ap), modules: APACHE_MODULES });
      fronts.push(f);
      for (const l of ap) l.front = f;
    }
    for (const l of live) {
      check();
      await correctness(l);
      const g = l.proc ? group(l.proc.pid) : null;
      console.log(`  ok ${l.c.id.padEnd(20)} ${g ? `${g.all.length} process${g.all.length > 1 ? "es" : ""}, workers ${g.workers.map((s) => s.pid).join(",")}, RSS ${fmt(sumRssKiB(g.all) / 1024, 1)} MiB` : "(no backend)"}`);
    }

    for (const w of phaseWorkloads) {
      const inW = live.filter((l) => takesPart(l.c, w));
      console.log(`\n-- ${w.id}: ${w.what}, ${connectionsOverride ?? w.connections} connections, ${rounds} round${rounds > 1 ? "s" : ""} of ${seconds} s`);
      if (warmup > 0) {
        for (const l of inW) {
          check();
          await measure(l, w, 0, warmup);
        }
      }
      for (let round = 1; round <= rounds; round++) {
        for (const l of inW) {
          check();
          await sleep(500); // lets nginx close the previous contender's idle upstream connections
          const r = await measure(l, w, round, seconds);
          runs.push(r);
          console.log(
            `  ${w.id} r${round} ${l.c.id.padEnd(20)} ${fmt(r.rps).padStart(7)} req/s  p50 ${fmt(r.p50ms, 2).padStart(6)} ms  p99 ${fmt(r.p99ms, 2).padStart(7)} ms  CPU ${fmt(r.cpuUsPerReq, 1).padStart(6)} µs/req` +
              (r.errors ? `  ERRORS ${r.errors} (${r.errorDetail})` : ""),
          );
        }
      }
    }
  } finally {
    for (const f of fronts) await f.stop({ keep: flags.keep }).catch((e: unknown) => console.error(`bench: stopping ${f.kind}: ${String(e)}`));
    for (const l of live) if (l.proc) await stopTracked(l.proc);
    if (!flags.keep) rmSync(dir, { recursive: true, force: true });
  }
}

// ---- main ----

const runs: Run[] = [];
/** Workers' RSS of each contender once started, before any request (one-worker phase). */
const idleMiB = new Map<string, number>();
const t0 = Date.now();
console.log(`bench: tsgi ${machine.git}, ${machine.date}, ${machine.nproc} CPUs (${machine.cpu}), node ${machine.node}, ${machine.nginx}, ${machine.apache}, uWSGI ${machine.uwsgi}, ${machine.wrk}`);
console.log(`bench: ${rounds} round(s) of ${seconds} s, warm-up ${warmup} s, wrk ${threads} thread(s); contenders ${settings.contenders.join(", ")}; workloads ${settings.workloads.join(", ")}`);
let failure: unknown = null;
try {
  const one = workloads.filter((w) => w.workers === 1);
  const two = workloads.filter((w) => w.workers === 2);
  if (one.length) await phase(1, one, runs);
  if (two.length) await phase(2, two, runs);
} catch (e) {
  failure = e;
}

// Each workload's ratios against its own baseline (W6: the same Express app on node:http).
// The contenders behind Apache against node:http behind the same Apache (when it ran).
const apacheIds = new Set(CONTENDERS.filter((c) => c.front === "apache").map((c) => c.id));
const rows: Row[] = WORKLOADS.flatMap((w) => {
  const mine = runs.filter((r) => r.workload === w.id);
  const behindApache = mine.filter((r) => apacheIds.has(r.contender));
  if (w.baseline || !behindApache.some((r) => r.contender === APACHE_BASELINE)) return summarize(mine, w.baseline ?? BASELINE);
  const nginxRows = summarize(mine.filter((r) => !apacheIds.has(r.contender)), BASELINE);
  return [...nginxRows, ...summarize(behindApache, APACHE_BASELINE)];
});
const minutes = ((Date.now() - t0) / 60_000).toFixed(1);
const byWorkload = (id: string) => rows.filter((r) => r.workload === id);
console.log(`\nmedians over ${rounds} round(s); × node = ratio to ${BASELINE} (Apache's contenders: to ${APACHE_BASELINE}; W6: ${EXPRESS_BASELINE}) in the same round (median of the per-round ratios); CPU = utime+stime of all the backend's processes per request; worker = the worker process(es) alone; took ${minutes} min`);
for (const w of WORKLOADS) {
  const rs = byWorkload(w.id);
  if (!rs.length) continue;
  console.log(`\n${w.id}: ${w.what}, ${connectionsOverride ?? w.connections} connections`);
  console.log(textTable(rs));
}

const targets = checkTargets(rows, runs, BASELINE, APACHE_BASELINE, idleMiB);
if (idleMiB.size) {
  console.log(`\nworker RSS at rest (started, before any request), MiB: ${[...idleMiB].map(([c, m]) => `${c} ${fmt(m, 1)}`).join(", ")}`);
}
const w6 = rows.find((r) => r.workload === "W6" && r.contender === "express-tsgi-fcgi-keep-unix");
if (w6?.rpsRatio != null) {
  console.log(`\nW6: Express under tsgi ${fmt(w6.rpsRatio, 2)}x the req/s of Express on node:http (CPU/request ${w6.cpuRatio === null ? "–" : `${fmt(w6.cpuRatio, 2)}x`}); target ≥ 1.0x: ${w6.rpsRatio >= 1 ? "met" : "MISSED"}`);
}
if (targets.length) console.log(`\ntargets (issues 4 and 11; W6: issue 10):\n${targetsText(targets)}`);

if (runs.length) {
  const resultsDir = join(ROOT, "bench", "results");
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${flags.out}.json`), JSON.stringify({ machine, settings, minutes: Number(minutes), complete: !failure, idleWorkerRssMiB: Object.fromEntries(idleMiB), targets, contenders: CONTENDERS.filter((c) => settings.contenders.includes(c.id)).map((c) => ({ id: c.id, what: c.what })), rows, runs }, null, 2) + "\n");
  const md = [
    `# npm run bench — ${machine.date}`,
    "",
    `tsgi ${machine.git}; ${machine.nproc} CPUs (${machine.cpu}), Linux ${machine.kernel}; node ${machine.node}, ${machine.nginx}, ${machine.apache}, uWSGI ${machine.uwsgi}, ${machine.wrk}.`,
    `${rounds} interleaved round(s) of ${seconds} s per contender and workload (warm-up ${warmup} s), wrk ${threads} thread(s), one nginx worker process; took ${minutes} min${failure ? " — INCOMPLETE (stopped by an error)" : ""}.`,
    `Medians over rounds; × node = ratio to \`${BASELINE}\` (the contenders behind Apache: to \`${APACHE_BASELINE}\`; W6: \`${EXPRESS_BASELINE}\`) in the same round; CPU = utime+stime of all the backend's processes (tsgi: master + workers) per completed request; worker = the worker process(es) alone.`,
    "",
    ...CONTENDERS.filter((c) => settings.contenders.includes(c.id)).map((c) => `- \`${c.id}\`: ${c.what}`),
    "",
    ...WORKLOADS.filter((w) => byWorkload(w.id).length).flatMap((w) => [`## ${w.id}: ${w.what}, ${connectionsOverride ?? w.connections} connections`, "", markdownTable(byWorkload(w.id)), ""]),
    ...(idleMiB.size ? ["## Worker RSS at rest (started, before any request)", "", "| contender | MiB |", "|---|---:|", ...[...idleMiB].map(([c, m]) => `| ${c} | ${fmt(m, 1)} |`), ""] : []),
    ...(targets.length ? ["## Targets (issues 4 and 11; W6: issue 10)", "", targetsMarkdown(targets), ""] : []),
  ].join("\n");
  writeFileSync(join(resultsDir, `${flags.out}.md`), md);
  console.log(`\nwrote bench/results/${flags.out}.json and bench/results/${flags.out}.md`);
}

if (failure) {
  console.error(`\nbench: ${failure instanceof Error ? (failure.stack ?? failure.message) : String(failure)}`);
  process.exitCode = 1;
}

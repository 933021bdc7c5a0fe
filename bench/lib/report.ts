// Results of `npm run bench`: one record per timed run, the per-contender medians over rounds
// (with each round's ratio to the baseline taken before the median), and the same table as
// console text, Markdown (bench/results/latest.md) and JSON (bench/results/latest.json).

export interface Run {
  workload: string;
  round: number;
  contender: string;
  rps: number;
  requests: number;
  seconds: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  errorDetail: string;
  /** Backend CPU (utime+stime) per completed request, all its processes / its workers only. */
  cpuUsPerReq: number | null;
  workerCpuUsPerReq: number | null;
  /** RSS, KiB: peak during the run and just before it, all processes / workers only. */
  rssPeakKiB: number | null;
  workerRssPeakKiB: number | null;
  rssRestKiB: number | null;
  workerRssRestKiB: number | null;
}

export interface Row {
  workload: string;
  contender: string;
  rounds: number;
  rps: number;
  rpsRatio: number | null;
  p50ms: number;
  p99ms: number;
  cpuUsPerReq: number | null;
  cpuRatio: number | null;
  workerCpuUsPerReq: number | null;
  rssPeakMiB: number | null;
  workerRssPeakMiB: number | null;
  workerRssRestMiB: number | null;
  /** The largest growth of the workers' RSS within one run (peak − just before it). */
  workerRssGrowthMiB: number | null;
  errors: number;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const medOrNull = (xs: (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? median(v) : null;
};
const maxOrNull = (xs: (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? Math.max(...v) : null;
};

export function summarize(runs: Run[], baseline: string): Row[] {
  const rows: Row[] = [];
  const keys = [...new Set(runs.map((r) => `${r.workload}\u0000${r.contender}`))];
  for (const key of keys) {
    const [workload, contender] = key.split("\u0000") as [string, string];
    const mine = runs.filter((r) => r.workload === workload && r.contender === contender);
    const base = (round: number) => runs.find((r) => r.workload === workload && r.contender === baseline && r.round === round);
    const rpsRatios: number[] = [];
    const cpuRatios: number[] = [];
    for (const r of mine) {
      const b = base(r.round);
      if (!b) continue;
      rpsRatios.push(r.rps / b.rps);
      if (r.cpuUsPerReq !== null && b.cpuUsPerReq) cpuRatios.push(r.cpuUsPerReq / b.cpuUsPerReq);
    }
    const mib = (k: number | null) => (k === null ? null : k / 1024);
    rows.push({
      workload,
      contender,
      rounds: mine.length,
      rps: median(mine.map((r) => r.rps)),
      rpsRatio: rpsRatios.length ? median(rpsRatios) : null,
      p50ms: median(mine.map((r) => r.p50ms)),
      p99ms: median(mine.map((r) => r.p99ms)),
      cpuUsPerReq: medOrNull(mine.map((r) => r.cpuUsPerReq)),
      cpuRatio: cpuRatios.length ? median(cpuRatios) : null,
      workerCpuUsPerReq: medOrNull(mine.map((r) => r.workerCpuUsPerReq)),
      rssPeakMiB: mib(maxOrNull(mine.map((r) => r.rssPeakKiB))),
      workerRssPeakMiB: mib(maxOrNull(mine.map((r) => r.workerRssPeakKiB))),
      workerRssRestMiB: mib(medOrNull(mine.map((r) => r.workerRssRestKiB))),
      workerRssGrowthMiB: mib(maxOrNull(mine.map((r) => (r.workerRssPeakKiB === null || r.workerRssRestKiB === null ? null : r.workerRssPeakKiB - r.workerRssRestKiB)))),
      errors: mine.reduce((a, r) => a + r.errors, 0),
    });
  }
  return rows;
}

const HEAD = ["contender", "req/s", "× node", "p50 ms", "p99 ms", "CPU µs/req", "× node", "worker CPU µs/req", "RSS peak MiB", "worker RSS rest→peak MiB", "errors"];
const RIGHT = HEAD.map((_, i) => i > 0);

/** A number for a table ("–" when there is none), `digits` decimals. */
export function fmt(n: number | null | undefined, digits = 0): string {
  return n === null || n === undefined || !Number.isFinite(n) ? "–" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cells(r: Row): string[] {
  return [
    r.contender,
    fmt(r.rps, 0),
    r.rpsRatio === null ? "–" : `${fmt(r.rpsRatio, 2)}x`,
    fmt(r.p50ms, 2),
    fmt(r.p99ms, 2),
    fmt(r.cpuUsPerReq, 1),
    r.cpuRatio === null ? "–" : `${fmt(r.cpuRatio, 2)}x`,
    fmt(r.workerCpuUsPerReq, 1),
    fmt(r.rssPeakMiB, 1),
    r.workerRssRestMiB === null ? "–" : `${fmt(r.workerRssRestMiB, 1)} → ${fmt(r.workerRssPeakMiB, 1)}`,
    String(r.errors),
  ];
}

export function textTable(rows: Row[]): string {
  const all = [HEAD, ...rows.map(cells)];
  const widths = HEAD.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r, ri) => r.map((c, i) => (RIGHT[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ") + (ri === 0 ? "\n" + widths.map((w) => "-".repeat(w)).join("  ") : "")).join("\n");
}

export function markdownTable(rows: Row[]): string {
  const lines = [`| ${HEAD.join(" | ")} |`, `|${HEAD.map((_, i) => (RIGHT[i] ? "---:" : "---")).join("|")}|`];
  for (const r of rows) lines.push(`| ${cells(r).join(" | ")} |`);
  return lines.join("\n");
}

// ---- the targets (issues 4, 10 and 11), checked against this run's own medians ----
// Every target is a ratio between contenders measured in the same run (absolute microseconds
// do not carry between machines): each round's ratio first, then the median over rounds.

/** The tsgi contenders behind nginx the targets name: FastCGI with keep-conn (unix, TCP), uwsgi over a unix socket. */
export const TARGETED = ["tsgi-fcgi-keep-unix", "tsgi-fcgi-keep-tcp", "tsgi-uwsgi-unix"];
/** The tsgi contenders behind Apache, held to the Apache baseline. */
export const APACHE_TARGETED = ["apache-fcgi-tsgi", "apache-fcgi-tsgi-tcp", "apache-uwsgi-tsgi"];
const FCGI_KEEP = ["tsgi-fcgi-keep-unix", "tsgi-fcgi-keep-tcp"];
const UWSGI_C = "uwsgi-python";

export interface TargetCheck {
  target: string;
  contender: string;
  measured: string;
  met: boolean;
}

type Measure = (r: Run) => number | null;
const rpsOf: Measure = (r) => r.rps;
const cpuOf: Measure = (r) => r.cpuUsPerReq;
const workerCpuOf: Measure = (r) => r.workerCpuUsPerReq;

/** The median over rounds of `mine(c's run) / theirs(other's run)` in workload `w` (null when a round lacks either). */
export function roundRatio(runs: Run[], w: string, c: string, other: string, mine: Measure, theirs: Measure = mine): number | null {
  const ratios: number[] = [];
  for (const r of runs) {
    if (r.workload !== w || r.contender !== c) continue;
    const o = runs.find((x) => x.workload === w && x.contender === other && x.round === r.round);
    const a = mine(r);
    const b = o ? theirs(o) : null;
    if (a !== null && b !== null && b > 0) ratios.push(a / b);
  }
  return ratios.length ? median(ratios) : null;
}

/**
 * Every target this run measured. `baseline`: nginx → node:http; `apacheBaseline`: Apache →
 * node:http; `idleMiB`: the workers' RSS of each contender once started, before any request.
 */
export function checkTargets(rows: Row[], runs: Run[], baseline: string, apacheBaseline: string, idleMiB: Map<string, number>): TargetCheck[] {
  const out: TargetCheck[] = [];
  const row = (w: string, c: string) => rows.find((r) => r.workload === w && r.contender === c);
  const add = (target: string, contender: string, measured: string, met: boolean) => out.push({ target, contender, measured, met });
  const x = (v: number) => `${fmt(v, 2)}×`;
  for (const c of TARGETED) {
    const w1 = row("W1", c);
    const b1 = row("W1", baseline);
    if (FCGI_KEEP.includes(c)) {
      // Issue 11: W1 through nginx, FastCGI keep-conn.
      if (w1?.cpuRatio != null) add(`W1 CPU/request ≤ 0.6× ${baseline}`, c, `${x(w1.cpuRatio)} (${fmt(w1.cpuUsPerReq, 1)} µs)`, w1.cpuRatio <= 0.6);
      if (w1?.rpsRatio != null) add(`W1 req/s ≥ 1.25× ${baseline}`, c, x(w1.rpsRatio), w1.rpsRatio >= 1.25);
      if (w1 && b1) add(`W1 p99 ≤ ${baseline}'s`, c, `${fmt(w1.p99ms, 2)} ms against ${fmt(b1.p99ms, 2)} ms`, w1.p99ms <= b1.p99ms);
    } else {
      // Issue 11: W1 through nginx, uwsgi over a unix socket, against uWSGI's C worker.
      const cpu = roundRatio(runs, "W1", c, UWSGI_C, cpuOf, workerCpuOf);
      const rps = roundRatio(runs, "W1", c, UWSGI_C, rpsOf);
      if (cpu !== null) add(`W1 CPU/request ≤ ${UWSGI_C}'s worker`, c, x(cpu), cpu <= 1);
      if (rps !== null) add(`W1 req/s ≥ ${UWSGI_C}`, c, x(rps), rps >= 1);
    }
    for (const w of ["W2", "W3", "W4"]) {
      const r = row(w, c);
      if (!r) continue;
      if (r.rpsRatio != null) add(`${w} req/s ≥ ${baseline}`, c, x(r.rpsRatio), r.rpsRatio >= 1);
      if (r.cpuRatio != null) add(`${w} CPU/request ≤ 0.9× ${baseline}`, c, `${x(r.cpuRatio)} (${fmt(r.cpuUsPerReq, 1)} µs)`, r.cpuRatio <= 0.9);
    }
    // W5: two workers cost no more per request than one (no thundering herd, no lock), and
    // beat node:http's cluster.
    const w5 = row("W5", c);
    if (w5?.cpuUsPerReq != null && w1?.cpuUsPerReq != null) {
      const grow = w5.cpuUsPerReq / w1.cpuUsPerReq;
      add("W5 CPU/request ≤ 1.1× its own W1", c, `${x(grow)} (${fmt(w5.cpuUsPerReq, 1)} against ${fmt(w1.cpuUsPerReq, 1)} µs)`, grow <= 1.1);
    }
    if (w5?.rpsRatio != null) add(`W5 req/s ≥ ${baseline}'s cluster`, c, x(w5.rpsRatio), w5.rpsRatio >= 1);
    // Issue 4: five times the plain-Node FastCGI server.
    for (const w of ["W1", "W2", "W3", "W4"]) {
      const r = row(w, c);
      const f = row(w, "node-fastcgi");
      if (r && f) add(`${w} req/s ≥ 5× node-fastcgi`, c, `${fmt(r.rps / f.rps, 1)}×`, r.rps >= 5 * f.rps);
      // Through one nginx on two CPUs, W2–W4 req/s are bounded by what nginx and the kernel
      // move, whoever the backend is; the CPU each request costs the backend shows the 5×.
      if (r?.cpuUsPerReq != null && f?.cpuUsPerReq != null) {
        add(`${w} CPU/request ≤ node-fastcgi's / 5`, c, `${fmt(f.cpuUsPerReq / r.cpuUsPerReq, 1)}× less`, r.cpuUsPerReq * 5 <= f.cpuUsPerReq);
      }
    }
    // Memory.
    const idle = idleMiB.get(c);
    const idleBase = idleMiB.get(baseline);
    if (idle !== undefined && idleBase !== undefined) {
      add(`worker RSS at rest ≤ ${baseline}'s + 15 MiB`, c, `${fmt(idle, 1)} MiB against ${fmt(idleBase, 1)} MiB`, idle <= idleBase + 15);
    }
    if (w1?.workerRssPeakMiB != null && b1?.workerRssPeakMiB != null) {
      add(`W1 worker RSS peak ≤ ${baseline}'s + 15 MiB`, c, `${fmt(w1.workerRssPeakMiB, 1)} MiB against ${fmt(b1.workerRssPeakMiB, 1)} MiB`, w1.workerRssPeakMiB <= b1.workerRssPeakMiB + 15);
    }
    for (const w of ["W3", "W4"]) {
      const r = row(w, c);
      if (r?.workerRssGrowthMiB != null) add(`${w} worker RSS growth ≤ 64 MiB`, c, `${fmt(r.workerRssGrowthMiB, 1)} MiB`, r.workerRssGrowthMiB <= 64);
    }
  }
  // Issue 11: Apache as a front, against node:http behind the same Apache.
  for (const c of APACHE_TARGETED) {
    for (const w of ["W1", "W2", "W3"]) {
      const rps = roundRatio(runs, w, c, apacheBaseline, rpsOf);
      if (rps !== null) add(`${w} req/s ≥ ${apacheBaseline}`, c, x(rps), rps >= 1);
    }
  }
  // Issue 10: an Express app under tsgi (fromNodeHandler) against the same app on node:http.
  const w6 = row("W6", "express-tsgi-fcgi-keep-unix");
  if (w6?.rpsRatio != null) add("W6 req/s ≥ 1.0× express-node-http", w6.contender, x(w6.rpsRatio), w6.rpsRatio >= 1);
  if (w6?.cpuRatio != null) add("W6 CPU/request ≤ express-node-http", w6.contender, `${x(w6.cpuRatio)} (${fmt(w6.cpuUsPerReq, 1)} µs)`, w6.cpuRatio <= 1);
  return out;
}

export function targetsText(checks: TargetCheck[]): string {
  return checks.map((t) => `  ${t.met ? "met   " : "MISSED"}  ${t.target.padEnd(40)} ${t.contender.padEnd(20)} ${t.measured}`).join("\n");
}

export function targetsMarkdown(checks: TargetCheck[]): string {
  const lines = ["| target | contender | measured | |", "|---|---|---|---|"];
  for (const t of checks) lines.push(`| ${t.target} | ${t.contender} | ${t.measured} | ${t.met ? "met" : "**missed**"} |`);
  return lines.join("\n");
}

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
      errors: mine.reduce((a, r) => a + r.errors, 0),
    });
  }
  return rows;
}

const HEAD = ["contender", "req/s", "× node", "p50 ms", "p99 ms", "CPU µs/req", "× node", "worker CPU µs/req", "RSS peak MiB", "worker RSS rest→peak MiB", "errors"];
const RIGHT = HEAD.map((_, i) => i > 0);

function fmt(n: number | null, digits: number): string {
  return n === null || !Number.isFinite(n) ? "–" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
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

// A site's figures in the Prometheus text exposition format (version 0.0.4): what `tsgi
// status` shows, as metrics a scraper can graph — the site's state and workers by state, and
// per worker its requests, requests in flight, memory, uptime and why it was started. Workers
// are labelled by place (`worker`, 1…processes) and pid: during a reload or a recycle two
// workers share a place, and a pid is a worker's lifetime, so a counter that starts again from
// 0 is a new series (or a reset, which rate() handles).

import type { GroupState, RestartCause, WorkerState } from "./group.ts";
import type { MasterStatus } from "./master.ts";
import type { SiteStatus } from "./process-group.ts";

/** The Content-Type of the text format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

// Every state, so that a state with no worker is a 0 rather than a missing series (and a
// state added to group.ts without being listed here fails to compile).
const SITE_STATES = Object.keys({ idle: 1, starting: 1, running: 1, reloading: 1, failed: 1, stopping: 1, stopped: 1 } satisfies Record<GroupState, 1>);
const RESTART_CAUSES = Object.keys({ reload: 1, ondemand: 1, "max-requests": 1, "inactivity-timeout": 1, exception: 1, exit: 1 } satisfies Record<RestartCause, 1>) as RestartCause[];
const WORKER_STATES = Object.keys({ booting: 1, ready: 1, stopping: 1 } satisfies Record<WorkerState, 1>);

/** A label value: backslash, double quote and line feed escaped, as the format requires. */
function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string | number>): string {
  return `{${Object.entries(pairs)
    .map(([k, v]) => `${k}="${label(String(v))}"`)
    .join(",")}}`;
}

class Exposition {
  readonly lines: string[] = [];

  family(name: string, type: "gauge" | "counter", help: string, samples: [Record<string, string | number>, number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) this.lines.push(`${name}${labels(l)} ${Number.isFinite(v) ? v : 0}`);
  }
}

export function formatMetrics(master: MasterStatus, s: SiteStatus): string {
  const e = new Exposition();
  const site = s.name;
  const w = s.workers.map((x) => ({ x, l: { site, worker: x.index, pid: x.pid } }));
  e.family("tsgi_site_state", "gauge", "The site's state: 1 for the current one.", SITE_STATES.map((state) => [{ site, state }, s.state === state ? 1 : 0]));
  e.family("tsgi_site_processes", "gauge", "Workers the site runs (its processes setting).", [[{ site }, s.processes]]);
  e.family("tsgi_site_generation", "gauge", "The site's generation: one more on every reload.", [[{ site }, s.generation]]);
  e.family("tsgi_workers", "gauge", "The site's workers by state.", WORKER_STATES.map((state) => [{ site, state }, s.workers.filter((x) => x.state === state).length]));
  e.family("tsgi_requests_total", "counter", "Requests a worker served since it started.", w.map(({ x, l }) => [l, x.served]));
  e.family("tsgi_requests_in_flight", "gauge", "Requests a worker has in the application now.", w.map(({ x, l }) => [l, x.inFlight]));
  e.family("tsgi_worker_rss_bytes", "gauge", "A worker's resident memory, bytes.", w.map(({ x, l }) => [l, x.rssBytes]));
  e.family("tsgi_worker_uptime_seconds", "gauge", "Seconds since a worker was started.", w.map(({ x, l }) => [l, x.uptimeSeconds]));
  e.family(
    "tsgi_worker_info",
    "gauge",
    "A worker's state, generation and why it was started (last_restart: empty for the first worker of its place).",
    w.map(({ x, l }) => [{ ...l, state: x.state, generation: x.generation, last_restart: x.lastRestart ?? "" }, 1]),
  );
  e.family(
    "tsgi_worker_restarts_total",
    "counter",
    "Workers started in the place of another (or on demand) since the master started, by cause: reload, ondemand, max-requests, inactivity-timeout, exception, exit.",
    RESTART_CAUSES.map((cause) => [{ site, cause }, s.restarts[cause] ?? 0]),
  );
  e.family("tsgi_master_rss_bytes", "gauge", "The master's resident memory, bytes.", [[{ site }, master.rssBytes]]);
  e.family("tsgi_master_uptime_seconds", "gauge", "Seconds since the master started.", [[{ site }, master.uptimeSeconds]]);
  return `${e.lines.join("\n")}\n`;
}

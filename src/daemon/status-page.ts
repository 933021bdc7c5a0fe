// A site's status page and metrics (DESIGN §4, `status` and `metrics`), answered by the
// worker itself instead of the application. A worker knows only itself: the group's figures
// come from the master, which sends each worker the site's status in answer to its heartbeat
// (at most a heartbeat old); the worker answering puts its own live figures in.
//
// Which requests: PATH_INFO (the path after the site's `mount`, as the application would see
// it) equal to the setting, from a REMOTE_ADDR in `allow`. REMOTE_ADDR, not the socket's
// peer: behind nginx every request comes from nginx's own address, and checking that would
// show the page to anyone nginx serves; REMOTE_ADDR is the client the front server names.
// A request from anywhere else is the application's, as any other (the page is not there for
// it; no 403 tells that it exists).

import type { Environ } from "../gateway/environ.ts";
import type { BuiltinAnswer, BuiltinPages } from "../protocol/site.ts";
import type { AllowList } from "./allow.ts";
import type { MasterStatus } from "./master.ts";
import { METRICS_CONTENT_TYPE, formatMetrics } from "./metrics.ts";
import type { SiteStatus } from "./process-group.ts";
import { formatStatus } from "./status-text.ts";

/** What the master sends a worker of a site with a status page or metrics. */
export interface StatusSnapshot {
  master: MasterStatus;
  site: SiteStatus;
}

export interface StatusPagesOptions {
  /** Paths after the mount; "" is off. */
  status: string;
  metrics: string;
  allow: AllowList;
  /** The answering worker's own figures, now. */
  self: () => { served: number; inFlight: number; rssBytes: number };
}

export class StatusPages implements BuiltinPages {
  readonly #o: StatusPagesOptions;
  #snapshot: StatusSnapshot | null = null;

  constructor(o: StatusPagesOptions) {
    this.#o = o;
  }

  /** Whether a site with these settings has anything to answer. */
  static wanted(s: { status: string | null; metrics: string | null }): boolean {
    return Boolean(s.status) || Boolean(s.metrics);
  }

  update(snapshot: StatusSnapshot): void {
    this.#snapshot = snapshot;
  }

  answer(environ: Environ): BuiltinAnswer | null {
    const { status, metrics, allow } = this.#o;
    const path = environ.PATH_INFO;
    const isStatus = status !== "" && path === status;
    if (!isStatus && (metrics === "" || path !== metrics)) return null;
    if (!allow.has(environ.REMOTE_ADDR as string | undefined)) return null;
    const snap = this.#current();
    if (!snap) {
      return { code: 503, reason: "Service Unavailable", contentType: "text/plain; charset=utf-8", body: "the site's status is not known yet; try again in a second\n" };
    }
    if (!isStatus) return { code: 200, reason: "OK", contentType: METRICS_CONTENT_TYPE, body: formatMetrics(snap.master, snap.site) };
    const query = String(environ.QUERY_STRING ?? "");
    if (query.split("&").some((part) => part === "json" || part.startsWith("json="))) {
      // The shape of `tsgi status --json`, with this one site.
      return { code: 200, reason: "OK", contentType: "application/json", body: `${JSON.stringify({ master: snap.master, sites: [snap.site] }, null, 2)}\n` };
    }
    return { code: 200, reason: "OK", contentType: "text/plain; charset=utf-8", body: formatStatus(snap.master, [snap.site]) };
  }

  /** The latest snapshot, with this worker's own entry as it is now. */
  #current(): StatusSnapshot | null {
    const snap = this.#snapshot;
    if (!snap) return null;
    const me = this.#o.self();
    const workers = snap.site.workers.map((w) => (w.pid === process.pid ? { ...w, ...me } : w));
    return { master: snap.master, site: { ...snap.site, workers } };
  }
}

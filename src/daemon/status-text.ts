// `tsgi status` as people read it: per site its state and listeners, per worker its pid,
// state, requests served and in flight, memory, uptime and why it was (re)started.

import type { MasterStatus } from "./master.ts";
import type { SiteStatus } from "./process-group.ts";

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

function duration(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

export function formatStatus(master: MasterStatus, sites: SiteStatus[]): string {
  const out: string[] = [`master pid ${master.pid}, up ${duration(master.uptimeSeconds)}, ${mib(master.rssBytes)}${master.file ? `, ${master.file}` : ""}`];
  for (const s of sites) {
    out.push("");
    out.push(`site ${s.name}: ${s.state}${s.failure ? ` (${s.failure})` : ""}, ${s.processes} process${s.processes > 1 ? "es" : ""}, generation ${s.generation}`);
    for (const l of s.listen) out.push(`  listen ${l}`);
    if (s.state === "idle") out.push("  no worker: ondemand, the next connection starts one");
    if (s.heldConnections > 0) out.push(`  ${s.heldConnections} persistent connection${s.heldConnections > 1 ? "s" : ""} of the front server held for the next worker`);
    if (s.workers.length === 0) continue;
    out.push("  worker  pid      state     served  in-flight  memory     uptime  last restart");
    for (const w of s.workers) {
      out.push(
        `  ${String(w.index).padEnd(6)}  ${String(w.pid).padEnd(7)}  ${w.state.padEnd(8)}  ${String(w.served).padStart(6)}  ${String(w.inFlight).padStart(9)}  ${mib(w.rssBytes).padStart(9)}  ${duration(w.uptimeSeconds).padStart(6)}  ${w.lastRestart ?? "-"}`,
      );
    }
  }
  return `${out.join("\n")}\n`;
}

// `tsgi serve`: one site from the command line, without a file (DESIGN §4). The process is
// the master of that one site's process group (src/daemon/master.ts): SIGTERM stops
// gracefully, a second SIGTERM or SIGINT at once, SIGHUP reloads every worker, SIGUSR1 reopens
// the log files. A site that cannot start ends it with status 1. Every line it writes goes to
// the error log, in its format. Under systemd it behaves as `tsgi daemon` does: sockets passed
// by a socket unit (LISTEN_FDS) serve the --listen entries with the same address, and with
// NOTIFY_SOCKET set it says READY=1, RELOADING=1, STOPPING=1 (a unit may be Type=notify).

import { createLogger, logDestination } from "../log.ts";
import { Master, type SiteDefinition } from "./master.ts";
import { listenFds, notifier } from "./systemd.ts";

export async function serveSite(site: SiteDefinition): Promise<void> {
  const s = site.settings;
  const log = createLogger(site.name, { error: logDestination(s["error-log"] ?? "-", process.stderr, "error-log") ?? process.stderr, access: null });
  process.title = `tsgi: ${site.name} master`;
  if (process.getuid?.() === 0 && !s.user && !s["run-as-root"]) {
    log.warn("running as root without --user: the application can do anything root can (set --user, or --run-as-root to say it is meant)");
  }
  const master = new Master({
    log,
    notifier: notifier(log),
    siteLog: () => log,
    file: null,
    exitOnSiteFailure: true,
    onReady: (groups) => {
      const workers = `${s.ondemand ? "ondemand, up to " : ""}${s.processes} worker${s.processes > 1 ? "s" : ""}`;
      for (const g of groups) for (const a of g.addresses()) log.info(`listening on ${a} (${workers})`);
    },
  });
  master.sockets.inherit(listenFds(log));
  await master.start([site]);
  master.sockets.closeUnclaimed();
}

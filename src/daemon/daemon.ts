// `tsgi daemon -c tsgi.toml` (DESIGN §4): one master in the foreground (systemd, `php-fpm -F`)
// and a process group per `[site.NAME]`. Each site logs to its own error and access logs
// (inherited from the file's top level when it names none); the master to the top-level
// error log. SIGHUP (or `tsgi reload`) rereads the file: sites added, removed and changed
// take effect, and a file with problems is refused while the running sites go on.

import { createLogger, logDestination, type Logger } from "../log.ts";
import { checkConfig, loadConfig, type SiteConfig } from "./config.ts";
import { Master, type SiteDefinition } from "./master.ts";
import { listenFds, notifier } from "./systemd.ts";

/** Started as root, a site without a user is refused unless it says run-as-root. */
function rootProblems(file: string, sites: SiteConfig[]): string[] {
  if (process.getuid?.() !== 0) return [];
  return sites.filter((s) => !s.settings.user && !s.settings["run-as-root"]).map((s) => `${file}: site ${s.name} would run as root; set user, or run-as-root = true`);
}

export async function runDaemon(file: string, pidfile: string | null): Promise<void> {
  const config = loadConfig(file);
  process.title = "tsgi: master";
  const log = createLogger("master", { error: logDestination(config.errorLog, process.stderr, "error-log") ?? process.stderr, access: null });
  const refused = rootProblems(file, config.sites);
  if (refused.length > 0) {
    for (const p of refused) log.error(p);
    process.exit(1);
  }
  const siteLogs = new Map<string, Logger>();
  const siteLog = (def: SiteDefinition): Logger => {
    const where = def.settings["error-log"] ?? "-";
    const key = `${def.name}\0${where}`;
    let l = siteLogs.get(key);
    if (!l) {
      l = createLogger(def.name, { error: logDestination(where, process.stderr, "error-log") ?? process.stderr, access: null });
      siteLogs.set(key, l);
    }
    return l;
  };
  const master = new Master({
    log,
    notifier: notifier(log),
    siteLog,
    file: config.file,
    control: config.control,
    pidfile: pidfile ?? config.pidfile,
    reread: () => {
      const r = checkConfig(file);
      if (!r.config) return { problems: r.problems };
      const refused = rootProblems(file, r.config.sites);
      return refused.length > 0 ? { problems: refused } : { sites: r.config.sites };
    },
    onReady: (groups) => {
      for (const g of groups) {
        if (g.group.state === "failed") continue;
        const n = g.settings.processes;
        const workers = `${g.settings.ondemand ? "ondemand, up to " : ""}${n} worker${n > 1 ? "s" : ""}`;
        for (const a of g.addresses()) g.log.info(`listening on ${a} (${workers})`);
      }
      const idle = groups.filter((g) => g.group.state === "idle").length;
      const up = groups.filter((g) => g.group.state === "running").length + idle;
      log.info(`ready: ${up} of ${groups.length} sites running${idle ? ` (${idle} ondemand with no worker yet)` : ""}; control socket ${config.control}`);
    },
  });
  // Under socket activation the sites take the sockets systemd passed; a leftover is logged and closed.
  master.sockets.inherit(listenFds(log));
  await master.start(config.sites);
  master.sockets.closeUnclaimed();
}

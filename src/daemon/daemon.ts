// `tsgi daemon -c tsgi.toml` (DESIGN §4): one master in the foreground (systemd, `php-fpm -F`)
// and a process group per `[site.NAME]`. Each site logs to its own error and access logs
// (inherited from the file's top level when it names none); the master to the top-level
// error log. SIGHUP (or `tsgi reload`) rereads the file: sites added, removed and changed
// take effect, and a file with problems is refused while the running sites go on.

import { createLogger, logDestination, type Logger } from "../log.ts";
import { checkConfig, loadConfig } from "./config.ts";
import { Master, type SiteDefinition } from "./master.ts";

export async function runDaemon(file: string, pidfile: string | null): Promise<void> {
  const config = loadConfig(file);
  process.title = "tsgi: master";
  const log = createLogger("master", { error: logDestination(config.errorLog, process.stderr, "error-log") ?? process.stderr, access: null });
  const root = process.getuid?.() === 0;
  // As root, a site without a user is refused unless it says run-as-root.
  const asRoot = root ? config.sites.filter((s) => !s.settings.user && !s.settings["run-as-root"]) : [];
  if (asRoot.length > 0) {
    for (const s of asRoot) log.error(`${file}: site ${s.name} would run as root; set user, or run-as-root = true`);
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
    siteLog,
    file: config.file,
    control: config.control,
    pidfile: pidfile ?? config.pidfile,
    reread: () => {
      const r = checkConfig(file);
      if (!r.config) return { problems: r.problems };
      const bad = root ? r.config.sites.filter((s) => !s.settings.user && !s.settings["run-as-root"]) : [];
      if (bad.length > 0) return { problems: bad.map((s) => `${file}: site ${s.name} would run as root; set user, or run-as-root = true`) };
      return { sites: r.config.sites };
    },
    onReady: (groups) => {
      for (const g of groups) {
        if (g.group.state === "failed") continue;
        const n = g.settings.processes;
        for (const a of g.addresses()) g.log.info(`listening on ${a} (${n} worker${n > 1 ? "s" : ""})`);
      }
      log.info(`ready: ${groups.filter((g) => g.group.state === "running").length} of ${groups.length} sites running; control socket ${config.control}`);
    },
  });
  await master.start(config.sites);
}

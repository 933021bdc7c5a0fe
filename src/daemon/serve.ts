// `tsgi serve`: one site from the command line, without a file (DESIGN §4). The process is
// the master of one process group; signals only enqueue, one handler acts: SIGTERM stops
// gracefully, SIGINT once likewise and twice at once, SIGHUP reloads every worker, SIGUSR1
// reopens the log files. Every line it writes goes to the error log, in its format.

import { createLogger, logDestination } from "../log.ts";
import { Pool, type PoolConfig } from "./pool.ts";

export async function serveSite(cfg: PoolConfig): Promise<void> {
  const s = cfg.settings;
  const log = createLogger(cfg.site, { error: logDestination(s["error-log"] ?? "-", process.stderr, "error-log") ?? process.stderr, access: null });
  process.title = `tsgi: ${cfg.site} master`;
  if (process.getuid?.() === 0 && !s.user && !s["run-as-root"]) {
    log.warn("running as root without --user: the application can do anything root can (set --user, or --run-as-root to say it is meant)");
  }
  let pool: Pool;
  try {
    pool = new Pool(cfg, log);
  } catch (err) {
    log.error(`site ${cfg.site} cannot start`, err);
    process.exit(1);
  }

  type Job = "stop" | "interrupt" | "reload" | "reopen";
  let interrupts = 0;
  let stopping = false;
  const act = (job: Job) => {
    if (job === "interrupt") {
      if (++interrupts >= 2) {
        pool.kill();
        process.exit(130);
      }
      job = "stop"; // the first Ctrl-C stops gracefully
    }
    switch (job) {
      case "stop":
        if (stopping) return;
        stopping = true;
        void pool.stop().then(() => {
          log.info("stopped");
          process.exit(0);
        });
        return;
      case "reload":
        log.info("SIGHUP: reloading every worker");
        void pool.reload();
        return;
      case "reopen":
        pool.reopenLogs();
        return;
    }
  };
  // Signal handlers only enqueue; the loop acts on the next turn (gunicorn's arbiter).
  const enqueue = (job: Job) => () => setImmediate(act, job);
  process.on("SIGTERM", enqueue("stop"));
  process.on("SIGINT", enqueue("interrupt"));
  process.on("SIGHUP", enqueue("reload"));
  process.on("SIGUSR1", enqueue("reopen"));

  let addresses: string[];
  try {
    addresses = await pool.start();
  } catch (err) {
    log.error(`site ${cfg.site} cannot start`, err);
    await pool.stop().catch(() => undefined);
    process.exit(1);
  }
  const workers = `${s.processes} worker${s.processes > 1 ? "s" : ""}`;
  for (const a of addresses) log.info(`listening on ${a} (${workers})`);
}

// `tsgi serve`: one site from the command line, without a file (DESIGN §4). The process is
// the master of one process group; signals only enqueue, one handler acts: SIGTERM stops
// gracefully, SIGINT once likewise and twice at once, SIGHUP reloads every worker.

import { createLogger } from "../log.ts";
import { Pool, type PoolConfig } from "./pool.ts";

export async function serveSite(cfg: PoolConfig, out: { write(s: string): unknown } = process.stdout): Promise<void> {
  const log = createLogger(cfg.site);
  process.title = `tsgi: ${cfg.site} master`;
  if (process.getuid?.() === 0 && !cfg.user) {
    log.warn("running as root without --user: the application can do anything root can");
  }
  const pool = new Pool(cfg, log);
  let interrupts = 0;
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= pool.stop().then(() => {
      log.info("stopped");
      process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", () => {
    if (++interrupts >= 2) {
      pool.kill();
      process.exit(130);
    }
    stop();
  });
  process.on("SIGHUP", () => {
    log.info("SIGHUP: reloading every worker");
    void pool.reload();
  });

  let addresses: string[];
  try {
    addresses = await pool.start();
  } catch (err) {
    log.error(`site ${cfg.site} cannot start`, err instanceof Error ? err.message : err);
    await pool.stop().catch(() => undefined);
    process.exit(1);
  }
  for (const a of addresses) out.write(`tsgi: ${cfg.site} listening on ${a} (${cfg.processes} worker${cfg.processes > 1 ? "s" : ""})\n`);
}

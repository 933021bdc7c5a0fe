// The entry point bin/tsgi.js loads (from dist/ when built, else through tsx): the command
// line, or — in a process a master forked — a worker (a `tsgi runserver` standby: a worker
// whose configuration comes later). A failure that reaches here is one line
// on stderr with its code, never a raw stack.
import { describeError } from "./log.ts";

export async function start(): Promise<void> {
  try {
    const worker = process.env.TSGI_WORKER;
    if (process.env.TSGI_RUNSERVER_STANDBY && process.send) {
      delete process.env.TSGI_RUNSERVER_STANDBY;
      const { runStandby } = await import("./project/standby.ts");
      await runStandby();
    } else if (worker && process.send) {
      // The application's own child processes are not workers.
      delete process.env.TSGI_WORKER;
      const { runWorker } = await import("./daemon/worker.ts");
      await runWorker(JSON.parse(worker));
    } else {
      const { main } = await import("./cli.ts");
      await main(process.argv);
    }
  } catch (err) {
    process.stderr.write(`tsgi: ${describeError(err)}\n`);
    process.exit(1);
  }
}

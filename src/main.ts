// The entry point bin/tsgi.js loads (from dist/ when built, else through tsx): the command
// line, or — in a process a master forked — a worker. A failure that reaches here is one line
// on stderr with its code, never a raw stack.
import { describeError } from "./log.ts";

export async function start(): Promise<void> {
  try {
    const worker = process.env.TSGI_WORKER;
    if (worker && process.send) {
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

// The entry point bin/tsgi.js loads (from dist/ when built, else through tsx): the command
// line, or — in a process a master forked — a worker.
import { main } from "./cli.ts";
import { runWorker } from "./daemon/worker.ts";

export async function start(): Promise<void> {
  const worker = process.env.TSGI_WORKER;
  if (worker && process.send) {
    // The application's own child processes are not workers.
    delete process.env.TSGI_WORKER;
    await runWorker(JSON.parse(worker));
  } else {
    await main(process.argv);
  }
}

#!/usr/bin/env node
// The `tsgi` command: registers tsx (TypeScript without a build step, for tsgi itself and
// for the sites it loads), then runs the command line — or, in a worker forked by a master,
// the worker.
import { register } from "tsx/esm/api";

register();
if (process.env.TSGI_WORKER && process.send) {
  const { runWorker } = await import("../src/daemon/worker.ts");
  const config = JSON.parse(process.env.TSGI_WORKER);
  // The application's own child processes are not workers.
  delete process.env.TSGI_WORKER;
  await runWorker(config);
} else {
  const { main } = await import("../src/cli.ts");
  await main(process.argv);
}

#!/usr/bin/env node
// The `tsgi` command: registers tsx (TypeScript without a build step, for tsgi itself and
// for the sites it loads), then runs the command line — or, in a worker forked by a master,
// the worker.
import cluster from "node:cluster";
import { register } from "tsx/esm/api";

register();
if (cluster.isWorker && process.env.TSGI_WORKER) {
  const { runWorker } = await import("../src/daemon/worker.ts");
  await runWorker(JSON.parse(process.env.TSGI_WORKER));
} else {
  const { main } = await import("../src/cli.ts");
  await main(process.argv);
}

// A `tsgi runserver` server process started ahead of the change that needs it: tsgi's own
// modules and tsx loaded (most of a process's start-up), none of the project's. On the
// supervisor's "start" it becomes a worker as any other (src/daemon/worker.ts), and imports
// the project as it is on disk at that moment — so a restart costs the project's own import,
// not a Node and tsgi start-up.

import type { WorkerConfig } from "../daemon/worker.ts";

/** Supervisor → standby, once: serve with this configuration (env: variables to set first). */
export interface StandbyStart {
  type: "start";
  config: WorkerConfig;
  env: Record<string, string>;
}

/** Standby → supervisor: loaded, listening for "start". */
export interface StandbyReady {
  type: "standby";
}

export async function runStandby(): Promise<void> {
  process.title = "tsgi: runserver standby";
  // Ctrl-C reaches every process of the terminal's group: the supervisor decides (worker.ts does the same).
  process.on("SIGINT", () => undefined);
  // A standby whose supervisor is gone has nothing to wait for.
  const orphaned = () => process.exit(0);
  process.once("disconnect", orphaned);
  // Listening before anything loads: a message nobody listens for is lost.
  const started = new Promise<StandbyStart>((resolve) => {
    const onMessage = (msg: StandbyStart) => {
      if (msg?.type !== "start") return;
      process.off("message", onMessage);
      resolve(msg);
    };
    process.on("message", onMessage);
  });
  const [{ runWorker }, { preloadTypeScript }] = await Promise.all([import("../daemon/worker.ts"), import("../daemon/app.ts")]);
  await preloadTypeScript();
  const ready: StandbyReady = { type: "standby" };
  process.send!(ready);
  const start = await started;
  process.off("disconnect", orphaned);
  Object.assign(process.env, start.env);
  await runWorker(start.config);
}

// Per-site logs under `tsgi daemon` (issue 9, "Operating it"): two sites with their own
// access and error logs, the master's own error log; each request is in its own site's
// access log only; then real logrotate, run with conf-examples/logrotate/tsgi (its paths
// rewritten to the test's folder), renames every file and signals the master through the
// pidfile, and the next requests and errors go to new files at the configured paths while the
// old lines stay in the rotated ones. Nothing is lost in between: requests made during the
// rotation are in one file or the other.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { poll } from "../support/daemon.ts";
import { freePort } from "../support/front-servers.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");
const EXAMPLE = join(ROOT, "conf-examples", "logrotate", "tsgi");
const haveLogrotate = spawnSync("logrotate", ["--version"]).status === 0;

const APP = `
export function application(environ, startResponse) {
  if (environ.PATH_INFO === "/boom") throw new Error("boom at " + environ.QUERY_STRING);
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["ok"];
}
`;

let dir: string;
let daemon: ChildProcess | null = null;
let stderr = "";

const read = (path: string) => (existsSync(path) ? readFileSync(path, "utf8") : "");

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tsgi-logs-"));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, "app.mjs"), APP);
});

afterAll(async () => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill("SIGTERM");
    await new Promise((r) => daemon!.once("exit", r));
  }
  rmSync(dir, { recursive: true, force: true });
});


test("each site writes its own access and error log; logrotate with conf-examples/logrotate/tsgi rotates them and SIGUSR1 reopens every file", async (ctx) => {
  if (!haveLogrotate) {
    console.warn("logrotate is not installed (apt-get install logrotate): the rotation is not checked here");
    ctx.skip();
  }
  const logs = join(dir, "log");
  const run = join(dir, "run");
  for (const d of [logs, run]) spawnSync("mkdir", ["-p", d]);
  const [a, b] = [await freePort(), await freePort()];
  const file = join(dir, "tsgi.toml");
  writeFileSync(
    file,
    `error-log = "log/master.log"\npidfile = "run/tsgi.pid"\n\n[defaults]\nrun-as-root = true\n\n` +
      `[site.alpha]\napp = "app.mjs"\nlisten = ["http:127.0.0.1:${a}"]\naccess-log = "log/alpha.access.log"\nerror-log = "log/alpha.error.log"\n\n` +
      `[site.beta]\napp = "app.mjs"\nlisten = ["http:127.0.0.1:${b}"]\naccess-log = "log/beta.access.log"\nerror-log = "log/beta.error.log"\n`,
  );
  daemon = spawn(process.execPath, [BIN, "daemon", "-c", file], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  daemon.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const master = join(logs, "master.log");
  await poll("the daemon ready", 20_000, () => /ready: 2 of 2 sites running/.test(read(master)));
  expect(Number(read(join(run, "tsgi.pid")))).toBe(daemon.pid);

  expect((await request(`http://127.0.0.1:${a}/one-alpha`)).status).toBe(200);
  expect((await request(`http://127.0.0.1:${b}/one-beta`)).status).toBe(200);
  expect((await request(`http://127.0.0.1:${a}/boom?first`)).status).toBe(500);
  const alphaAccess = join(logs, "alpha.access.log");
  const betaAccess = join(logs, "beta.access.log");
  const alphaError = join(logs, "alpha.error.log");
  await poll("the access lines", 5000, () => read(alphaAccess).includes("/one-alpha") && read(betaAccess).includes("/one-beta"));
  expect(read(alphaAccess)).not.toContain("/one-beta");
  expect(read(betaAccess)).not.toContain("/one-alpha");
  await poll("the error line", 5000, () => read(alphaError).includes("boom at first"));
  expect(read(join(logs, "beta.error.log"))).not.toContain("boom");
  expect(read(master)).not.toContain("boom");

  // Requests go on during the rotation; each must land in the old file or the new one.
  let stop = false;
  let sent = 0;
  const load = (async () => {
    while (!stop) {
      const r = await request(`http://127.0.0.1:${a}/during-${sent}`);
      expect(r.status).toBe(200);
      sent++;
    }
  })();

  const conf = join(dir, "logrotate.conf");
  const example = readFileSync(EXAMPLE, "utf8");
  expect(example).toContain("/var/log/tsgi/*.log");
  expect(example).toContain("/run/tsgi/tsgi.pid");
  writeFileSync(conf, example.replaceAll("/var/log/tsgi/", `${logs}/`).replaceAll("/run/tsgi/", `${run}/`), { mode: 0o644 });
  const rotated = spawnSync("logrotate", ["-f", "-s", join(dir, "logrotate.state"), conf], { encoding: "utf8" });
  expect(rotated.status, rotated.stderr).toBe(0);
  for (const name of ["master", "alpha.access", "alpha.error", "beta.access"]) expect(existsSync(join(logs, `${name}.log.1`)), name).toBe(true);

  // The reopened files fill at the configured paths.
  await poll("alpha's new access log", 5000, () => read(alphaAccess).includes("/during-"));
  stop = true;
  await load;
  expect((await request(`http://127.0.0.1:${b}/two-beta`)).status).toBe(200);
  expect((await request(`http://127.0.0.1:${a}/boom?second`)).status).toBe(500);
  await poll("beta's new access log", 5000, () => read(betaAccess).includes("/two-beta"));
  await poll("alpha's new error log", 5000, () => read(alphaError).includes("boom at second"));
  expect(read(`${alphaError}.1`)).toContain("boom at first");
  expect(read(`${alphaError}.1`)).not.toContain("boom at second");
  expect(read(`${betaAccess}.1`)).toContain("/one-beta");
  expect(read(master)).toMatch(/SIGUSR1|reopen/i);

  // Every request made during the rotation is in exactly one of alpha's two access logs.
  // (An access line is written after its response: the last ones may land a moment later.)
  const lines = () => `${read(`${alphaAccess}.1`)}${read(alphaAccess)}`;
  await poll("every access line of the rotation", 5000, () => lines().includes(`/during-${sent - 1} `));
  for (let i = 0; i < sent; i++) expect(lines().split(`/during-${i} `).length - 1, `/during-${i}`).toBe(1);
  expect(sent).toBeGreaterThan(0);
}, 60_000);

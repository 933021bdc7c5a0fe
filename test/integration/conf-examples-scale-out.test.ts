// conf-examples/scale-out/ (two tsgi hosts behind one front server) is checked as it is:
// `nginx -t` and `apache2 -t` accept nginx.conf and apache.conf unchanged; each host's
// tsgi.toml passes `tsgi check` once its /srv/mysite is a folder that exists (the application
// must exist for the check); tsgi.service passes `systemd-analyze verify` once its commands
// point at this checkout's bin/tsgi.js. Then conf-examples/scale-out/tsgi.service is run for
// each host the way systemd runs it (ExecStartPre, ExecStart with systemd's bare environment
// and a NOTIFY_SOCKET the test reads, ExecReload, SIGTERM for KillMode=mixed), with
// conf-examples/scale-out/host-{a,b}/tsgi.toml on two loopback ports, behind nginx started
// from a copy of conf-examples/scale-out/nginx.conf: both hosts answer through it. Only
// addresses, ports and paths are rewritten. test/daemon/scale-out.test.ts runs the same
// files across two network namespaces and kills a host under load.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CONF_EXAMPLES, rewrite } from "../support/conf-example.ts";
import { poll } from "../support/daemon.ts";
import { freePort, startFromFile, type FrontServer } from "../support/front-servers.ts";
import { execArgv, notifyReceiver, parseUnit, sets, timeSpanSeconds, unitValue, type NotifyReceiver } from "../support/systemd-unit.ts";
import { request } from "./client.ts";

const DIR = join(CONF_EXAMPLES, "scale-out");
const BIN = join(import.meta.dirname, "..", "..", "bin", "tsgi.js");
const tmp = mkdtempSync(join(tmpdir(), "tsgi-scale-out-conf-"));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("conf-examples/scale-out passes each tool's own check", () => {
  test("nginx -t -c conf-examples/scale-out/nginx.conf", () => {
    const run = spawnSync("nginx", ["-t", "-c", join(DIR, "nginx.conf")], { encoding: "utf8" });
    expect(run.stderr).toContain("test is successful");
    expect(run.status).toBe(0);
  });

  test("apache2 -t -f conf-examples/scale-out/apache.conf", () => {
    const run = spawnSync("apache2", ["-t", "-f", join(DIR, "apache.conf")], { encoding: "utf8" });
    expect(`${run.stdout}${run.stderr}`).toContain("Syntax OK");
    expect(run.status).toBe(0);
  });

  test.each(["host-a", "host-b"])("tsgi check -c %s/tsgi.toml (with /srv/mysite made a real folder)", (host) => {
    const site = join(tmp, host, "mysite");
    mkdirSync(site, { recursive: true });
    writeFileSync(join(site, "tsgi.ts"), "export const application = () => [];\n");
    const file = join(tmp, host, "tsgi.toml");
    writeFileSync(file, rewrite(join(DIR, host, "tsgi.toml"), [[/\/srv\/mysite/, site]]));
    const run = spawnSync(process.execPath, [BIN, "check", "-c", file], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  test("systemd-analyze verify tsgi.service (its commands pointed at this checkout)", () => {
    const unit = join(tmp, "tsgi.service");
    writeFileSync(unit, rewrite(join(DIR, "tsgi.service"), [[/\/usr\/local\/bin\/tsgi /, `${BIN} `]]));
    const run = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    expect(`${run.stdout}${run.stderr}`).toBe("");
    expect(run.status).toBe(0);
  });
});

// Answers with its host's name: the site's folder (its cwd) is named after the host.
const APP = `
import { basename, dirname } from "node:path";
export function application(environ: Record<string, unknown>, startResponse: (status: string, headers: [string, string][]) => void) {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [basename(dirname(process.cwd())) + " " + process.pid + "\\n"];
}
`;

describe("conf-examples/scale-out/tsgi.service run as systemd runs it on each host, behind conf-examples/scale-out/nginx.conf", () => {
  const service = parseUnit(rewrite(join(DIR, "tsgi.service"), [[/\/usr\/local\/bin\/tsgi /, `${BIN} `]]));
  interface Host {
    name: "host-a" | "host-b";
    example: string;
    port: number;
    file: string;
    notify: NotifyReceiver;
    proc: ChildProcess;
    stderr: string;
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  }
  const hosts: Host[] = [];
  let nginx: FrontServer | undefined;
  const e2e = join(tmp, "e2e");

  /** The command of `key` for this host: its file in place of /etc/tsgi/tsgi.toml. */
  const command = (h: { file: string }, key: string, vars: Record<string, string> = {}) => execArgv(unitValue(service, "Service", key).replaceAll("/etc/tsgi/tsgi.toml", h.file), vars);

  beforeAll(async () => {
    mkdirSync(e2e, { recursive: true });
    // The sites' workers run as www-data (when started as root) and read the application here.
    for (const d of [tmp, e2e]) chmodSync(d, 0o755);
    for (const [name, example] of [
      ["host-a", "10.0.0.11"],
      ["host-b", "10.0.0.12"],
    ] as const) {
      const site = join(e2e, name, "mysite");
      mkdirSync(site, { recursive: true });
      chmodSync(join(e2e, name), 0o755);
      chmodSync(site, 0o755);
      writeFileSync(join(site, "tsgi.ts"), APP);
      const port = await freePort();
      const file = join(e2e, name, "tsgi.toml");
      writeFileSync(
        file,
        rewrite(join(DIR, name, "tsgi.toml"), [
          [new RegExp(`fastcgi:${example.replaceAll(".", "\\.")}:9000`), `fastcgi:127.0.0.1:${port}`],
          [/"10\.0\.0\.10"/, '"127.0.0.1"'],
          [/\/srv\/mysite/, site],
        ]),
      );
      const [pre, ...preArgs] = command({ file }, "ExecStartPre");
      const check = spawnSync(pre!, preArgs, { encoding: "utf8" });
      if (check.status !== 0) throw new Error(`${name}: ExecStartPre failed: ${check.stdout}${check.stderr}`);
      const notify = await notifyReceiver(join(e2e, `${name}.notify`));
      const [exe, ...args] = command({ file }, "ExecStart");
      // systemd's environment for a service: a standard PATH and NOTIFY_SOCKET, nothing of the runner's.
      const proc = spawn(exe!, args, { stdio: ["ignore", "ignore", "pipe"], env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NOTIFY_SOCKET: notify.path } });
      const host: Host = { name, example, port, file, notify, proc, stderr: "", exited: new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal }))) };
      proc.stderr!.setEncoding("utf8").on("data", (d: string) => (host.stderr += d));
      hosts.push(host);
    }
    for (const h of hosts)
      await poll(`${h.name}: READY=1`, 30_000, () => {
        if (h.proc.exitCode !== null) throw new Error(`${h.name}'s daemon exited:\n${h.stderr}`);
        return h.notify.datagrams().some((d) => sets(d, "READY=1"));
      });

    const dir = join(e2e, "nginx");
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    const port = await freePort();
    const confPath = join(dir, "nginx.conf");
    writeFileSync(
      confPath,
      rewrite(join(DIR, "nginx.conf"), [
        [/^pid \/run\/nginx\.pid;$/m, `pid ${dir}/nginx.pid;`],
        [/\/var\/log\/nginx\//, `${dir}/`],
        [/^( +)listen 80;$/m, `$1listen 127.0.0.1:${port};`],
        ...hosts.map((h) => [new RegExp(`${h.example.replaceAll(".", "\\.")}:9000`), `127.0.0.1:${h.port}`] as [RegExp, string]),
      ]),
    );
    nginx = await startFromFile("nginx", { dir, confPath, errorLogPath: join(dir, "error.log"), port });
  }, 90_000);

  afterAll(async () => {
    await nginx?.stop();
    for (const h of hosts) {
      if (h.proc.exitCode === null && h.proc.signalCode === null) {
        h.proc.kill("SIGTERM");
        const timer = setTimeout(() => h.proc.kill("SIGKILL"), 20_000);
        await h.exited;
        clearTimeout(timer);
      }
      h.notify.stop();
    }
  }, 60_000);

  const get = async () => {
    const r = await request(`http://127.0.0.1:${nginx!.port}/`, { timeoutMs: 15_000 });
    expect(r.status, r.body.toString()).toBe(200);
    const [host, pid] = r.body.toString().trim().split(" ");
    return { host: host!, pid: Number(pid) };
  };

  test("READY=1 from each host's master once its site serves; nginx spreads requests over both hosts", async () => {
    for (const h of hosts) expect(h.notify.datagrams().filter((d) => sets(d, "READY=1"))).toEqual(["READY=1\nSTATUS=1 site running, 0 failed"]);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add((await get()).host);
    expect([...seen].sort()).toEqual(["host-a", "host-b"]);
  });

  test("ExecReload on host a: RELOADING=1 then READY=1, and both hosts still answer", async () => {
    const a = hosts[0]!;
    const from = a.notify.datagrams().length;
    const [kill, ...args] = command(a, "ExecReload", { MAINPID: String(a.proc.pid) });
    expect(spawnSync(kill!, args).status).toBe(0);
    await poll("READY=1 after the reload", 30_000, () => a.notify.datagrams().slice(from).some((d) => sets(d, "READY=1")));
    const reload = a.notify.datagrams().slice(from);
    const reloading = reload.findIndex((d) => sets(d, "RELOADING=1"));
    expect(reloading).toBeGreaterThanOrEqual(0);
    expect(reload.findIndex((d) => sets(d, "READY=1"))).toBeGreaterThan(reloading);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add((await get()).host);
    expect([...seen].sort()).toEqual(["host-a", "host-b"]);
  });

  test("stop (KillMode=mixed: SIGTERM to each master): STOPPING=1 and exit 0 within TimeoutStopSec", async () => {
    const limit = timeSpanSeconds(unitValue(service, "Service", "TimeoutStopSec")) * 1000;
    for (const h of hosts) {
      const t0 = Date.now();
      h.proc.kill("SIGTERM");
      expect(await h.exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(limit);
      await poll(`${h.name}: STOPPING=1`, 5000, () => h.notify.datagrams().some((d) => sets(d, "STOPPING=1")));
    }
  });
});

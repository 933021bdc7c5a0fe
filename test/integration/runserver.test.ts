// `tsgi runserver` as a developer meets it: a real supervisor and its server processes on a
// kernel-chosen port, a project in a temp folder edited on disk, real HTTP requests. What is
// asserted is what the developer sees: the start lines, the responses (and how soon an edit
// shows), the 500 pages, the log lines, the exit status and the port afterwards. `tsgi serve`
// and `tsgi daemon` serve the same project to check that they never show a traceback.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseAddrPort } from "../../src/project/runserver.ts";
import { daemonEnv, poll, startDaemon, type Daemon } from "../support/daemon.ts";
import { freePort } from "../support/front-servers.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";

const BIN = resolve(import.meta.dirname, "..", "..", "bin", "tsgi.js");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Runserver {
  proc: ChildProcess;
  port: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Processes started so far, as the log counts them ("starting server process N", "starting error page process N"). */
  spawns(): number;
}

const started: ChildProcess[] = [];

function envWithoutSettings(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TSGI_SETTINGS_MODULE;
  return env;
}

/** `detached`: in a process group of its own, as a terminal's foreground job (Ctrl-C signals the whole group). */
async function startRunserver(cwd: string, args: string[] = ["127.0.0.1:0"], detached = false): Promise<Runserver> {
  const proc = spawn(process.execPath, [BIN, "runserver", ...args], { cwd, stdio: ["ignore", "pipe", "pipe"], env: envWithoutSettings(), detached });
  started.push(proc);
  let out = "";
  let err = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on("exit", (code, signal) => r({ code, signal })));
  const m = await poll("the start lines", 20_000, () => {
    if (proc.exitCode !== null) throw new Error(`tsgi runserver exited ${proc.exitCode}\n${out}\n${err}`);
    return /Starting development server at http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
  });
  return {
    proc,
    port: Number(m[1]),
    stdout: () => out,
    stderr: () => err,
    exited,
    spawns: () => [...err.matchAll(/ starting (server|error page) process \d+ /g)].length,
  };
}

function get(port: number, path = "/"): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((res, rej) => {
    const req = http.request({ host: "127.0.0.1", port, path, agent: false, headers: { Host: "localhost" } }, (r) => {
      let body = "";
      r.setEncoding("utf8").on("data", (d: string) => (body += d));
      r.on("end", () => res({ status: r.statusCode!, body, headers: r.headers }));
    });
    req.on("error", rej).end();
  });
}

/** The pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ")".
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

let project: string;
const write = (rel: string, text: string) => {
  mkdirSync(join(project, rel, ".."), { recursive: true });
  writeFileSync(join(project, rel), text);
};

/** The application: its version in every answer; /slow waits 1.5 s; /boom throws (line 3). */
const app = (version: string) => `const VERSION = ${JSON.stringify(version)};
export async function application(environ: Record<string, unknown>, startResponse: (s: string, h: [string, string][]) => void) {
  if (environ.PATH_INFO === "/boom") throw new Error("boom in " + VERSION);
  if (environ.PATH_INFO === "/slow") await new Promise((r) => setTimeout(r, 1500));
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [VERSION + (environ.PATH_INFO === "/slow" ? " slow" : "") + "\\n"];
}
`;

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), "tsgi-runserver-"));
  write("package.json", JSON.stringify({ name: "mysite", private: true, type: "module" }));
  write("mysite/settings.ts", `export const TSGI_APPLICATION = "mysite/app.ts:application";\nexport const DEBUG = true;\n`);
  write("mysite/app.ts", app("v1"));
});

afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  rmSync(project, { recursive: true, force: true });
});

describe("tsgi runserver on a project", () => {
  let rs: Runserver;

  test("prints Django's start lines and serves the settings' TSGI_APPLICATION on the port", async () => {
    rs = await startRunserver(project);
    const lines = rs.stdout().split("\n");
    expect(lines[0]).toBe(`Watching for file changes in ${project}`);
    expect(rs.stdout()).toMatch(/^tsgi version \d+\.\d+\.\d+, using settings 'mysite\/settings' \(the project's only \*\/settings file\)$/m);
    expect(rs.stdout()).toContain(`Starting development server at http://127.0.0.1:${rs.port}/\nQuit the server with CONTROL-C.\n`);
    const r = await get(rs.port);
    expect(r).toMatchObject({ status: 200, body: "v1\n" });
  });

  test("an edit is served within 1.5 s, and no request is refused meanwhile", async () => {
    // A developer's first edit comes a moment after the start: by then the standby for this
    // restart has loaded (right after the start it takes a few hundred ms more, still < 1.5 s).
    await sleep(1000);
    const before = rs.spawns();
    write("mysite/app.ts", app("v2"));
    const t0 = Date.now();
    let body = "";
    while (body !== "v2\n") {
      const r = await get(rs.port); // a refused connection would throw here
      expect(r.status).toBe(200);
      body = r.body;
      if (Date.now() - t0 > 5000) break;
      await sleep(10);
    }
    const took = Date.now() - t0;
    expect(body).toBe("v2\n");
    expect(took).toBeLessThan(1500);
    expect(rs.stderr()).toMatch(/mysite\/app\.ts changed: restarting/);
    expect(rs.spawns()).toBe(before + 1);
  });

  test("a slow request in flight during the restart completes with the old code", async () => {
    const slow = get(rs.port, "/slow");
    await sleep(200); // it reached the application
    write("mysite/app.ts", app("v3"));
    await poll("v3 served", 5000, async () => (await get(rs.port)).body === "v3\n");
    const r = await slow;
    expect(r).toMatchObject({ status: 200, body: "v2 slow\n" });
    expect(rs.stderr()).toMatch(/server process \d+ \(pid \d+\) is serving; server process \d+ finishes its requests and exits/);
  });

  test("an exception answers 500 with the traceback in the body", async () => {
    const r = await get(rs.port, "/boom");
    expect(r.status).toBe(500);
    expect(r.body).toContain("Error: boom in v3");
    expect(r.body).toContain(`${project}/mysite/app.ts:3:`);
  });

  test("a syntax error is a 500 page naming the file and line until it is fixed, with no restart loop", async () => {
    write("mysite/app.ts", app("v4").replace(`"/slow") await`, `"/slow") await (`));
    const page = await poll("the error page", 10_000, async () => {
      const r = await get(rs.port);
      return r.status === 500 ? r : null;
    });
    expect(page.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(page.body).toContain("TSGI_ERR_APP_IMPORT");
    expect(page.body).toMatch(new RegExp(`${project}/mysite/app\\.ts:4:\\d+: SyntaxError`));
    expect(rs.stderr()).toMatch(new RegExp(`\\[error\\] \\[runserver\\] the project cannot be imported; every request gets this error \\(500\\) until a file changes: TSGI_ERR_APP_IMPORT: .*${project}/mysite/app\\.ts:4:`));
    // Repeated requests get the same page; nothing is started again without a change.
    const spawns = rs.spawns();
    for (let i = 0; i < 5; i++) {
      await sleep(300);
      expect(await get(rs.port)).toMatchObject({ status: 500, body: page.body });
    }
    expect(rs.spawns()).toBe(spawns);
    expect([...rs.stderr().matchAll(/the project cannot be imported/g)]).toHaveLength(1);

    write("mysite/app.ts", app("v5"));
    await poll("v5 served", 5000, async () => (await get(rs.port)).body === "v5\n");
    expect(rs.spawns()).toBe(spawns + 1);
  });

  test("changes under node_modules, dot-folders and non-source files restart nothing", async () => {
    const spawns = rs.spawns();
    write("node_modules/dep/index.js", "export const x = 1;\n");
    write(".cache/state.ts", "export const y = 2;\n");
    write("mysite/.notes.ts", "\n");
    write("mysite/db.sqlite3", "data");
    await sleep(700);
    expect(rs.spawns()).toBe(spawns);
    expect((await get(rs.port)).body).toBe("v5\n");
  });

  test("a project that exits while it loads is an error page too, until the next change", async () => {
    write("mysite/app.ts", `process.exit(4);\n${app("v5")}`);
    const page = await poll("the error page", 10_000, async () => {
      const r = await get(rs.port);
      return r.status === 500 ? r : null;
    });
    expect(page.body).toContain("TSGI_ERR_POOL_BOOT: site runserver: a worker failed to start: the server process exited with status 4 before it was ready");
    const spawns = rs.spawns();
    await sleep(1000);
    expect(rs.spawns()).toBe(spawns);
    write("mysite/app.ts", app("v5"));
    await poll("v5 served", 5000, async () => (await get(rs.port)).body === "v5\n");
  });

  test("SIGTERM stops the supervisor and its server processes: exit 0, the port freed", async () => {
    // The server process serving, the standby loaded for the next restart, and whatever else it started.
    const pids = childrenOf(rs.proc.pid!);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    rs.proc.kill("SIGTERM");
    expect(await rs.exited).toEqual({ code: 0, signal: null });
    expect(rs.stderr()).toMatch(/SIGTERM: stopping[\s\S]*\[info\] \[runserver\] stopped/);
    await expect(get(rs.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const alive = () =>
      pids.filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
    await poll(`every process of the supervisor gone (alive: ${alive().join(", ")})`, 3000, () => alive().length === 0);
    // The port can be bound again at once.
    const srv = net.createServer();
    await new Promise<void>((res, rej) => srv.once("error", rej).listen(rs.port, "127.0.0.1", () => res()));
    await new Promise((r) => srv.close(r));
  });
});

describe("Ctrl-C in a terminal", () => {
  test("SIGINT to the whole process group: every process stops, exit 0, nothing but the stop in the log", async () => {
    const rs = await startRunserver(project, ["127.0.0.1:0"], true);
    expect((await get(rs.port)).status).toBe(200);
    await sleep(1000); // the standby loaded: it gets the SIGINT too
    const pids = childrenOf(rs.proc.pid!);
    process.kill(-rs.proc.pid!, "SIGINT");
    expect(await rs.exited).toEqual({ code: 0, signal: null });
    expect(rs.stderr()).toMatch(/\[info\] \[runserver\] SIGINT: stopping\n.*\[info\] \[runserver\] stopped\n$/);
    expect(rs.stderr()).not.toMatch(/\[(warn|error)\]/);
    await expect(get(rs.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await poll("every process of the supervisor gone", 3000, () =>
      pids.every((pid) => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }),
    );
  });
});

describe("tsgi serve and tsgi daemon never show the traceback", () => {
  let serve: TsgiProcess | undefined;
  let daemon: Daemon | undefined;
  afterAll(async () => {
    await serve?.stop();
    await daemon?.stop();
  });

  test("tsgi serve of the same project (DEBUG = true in its settings): a bare 500", async () => {
    write("mysite/app.ts", app("v6"));
    serve = await startTsgi({ app: join(project, "mysite", "app.ts"), listen: [{ proto: "http" }], args: ["--cwd", project] });
    const r = await get(serve.tcp("http").port, "/boom");
    expect(r).toMatchObject({ status: 500, body: "Internal Server Error\n" });
    expect(serve.stderr()).toContain("Error: boom in v6");
  });

  test("tsgi daemon with the project's settings: a bare 500", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsgi-runserver-daemon-"));
    const port = await freePort();
    const file = join(dir, "tsgi.toml");
    writeFileSync(file, `[site.mysite]\nsettings = "mysite/settings"\ncwd = "${project}"\nrun-as-root = true\naccess-log = "off"\nlisten = ["http:127.0.0.1:${port}"]\n`);
    daemon = startDaemon(dir, file, daemonEnv());
    await poll("the daemon ready", 20_000, () => {
      if (daemon!.proc.exitCode !== null) throw new Error(daemon!.stderr());
      return /ready: 1 of 1 sites running/.test(daemon!.stderr());
    });
    const r = await get(port, "/boom");
    expect(r).toMatchObject({ status: 500, body: "Internal Server Error\n" });
    expect(await daemon.stop()).toMatchObject({ code: 0 });
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("what tsgi runserver is told to serve", () => {
  const run = (cwd: string, args: string[], env: NodeJS.ProcessEnv = envWithoutSettings()) =>
    spawnSync(process.execPath, [BIN, "runserver", ...args], { cwd, env, encoding: "utf8", timeout: 20_000 });

  test("ADDR:PORT forms: PORT, ADDR:PORT, [::1]:PORT, localhost:PORT; anything else a coded error", () => {
    expect(parseAddrPort(undefined)).toEqual({ host: "127.0.0.1", port: 8000 });
    expect(parseAddrPort("8001")).toEqual({ host: "127.0.0.1", port: 8001 });
    expect(parseAddrPort("0.0.0.0:8002")).toEqual({ host: "0.0.0.0", port: 8002 });
    expect(parseAddrPort("[::1]:8003")).toEqual({ host: "::1", port: 8003 });
    expect(parseAddrPort("localhost:8004")).toEqual({ host: "127.0.0.1", port: 8004 });
    const r = run(project, ["127.0.0.1:99999"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('tsgi: TSGI_ERR_CONFIG_INVALID: tsgi runserver ADDR:PORT: give PORT, ADDR:PORT or [IPv6]:PORT (e.g. 8000, 0.0.0.0:8000, [::1]:8000), not "127.0.0.1:99999"');
  });

  test("a port in use: TSGI_ERR_MASTER_LISTEN, exit 1", async () => {
    const srv = net.createServer();
    await new Promise<void>((res) => srv.listen(0, "127.0.0.1", () => res()));
    const { port } = srv.address() as net.AddressInfo;
    try {
      const r = run(project, [`127.0.0.1:${port}`]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^tsgi: TSGI_ERR_MASTER_LISTEN: cannot listen on 127\\.0\\.0\\.1:${port}: .*in use`, "im"));
      expect(r.stdout).toBe("");
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  test("[::1]:PORT serves over IPv6 loopback", async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [BIN, "runserver", `[::1]:${port}`], { cwd: project, stdio: ["ignore", "pipe", "pipe"], env: envWithoutSettings() });
    started.push(proc);
    let out = "";
    proc.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise((r) => proc.on("exit", r));
    await poll("the start lines", 20_000, () => out.includes(`Starting development server at http://[::1]:${port}/`));
    const body = await new Promise<string>((res, rej) => {
      http.get({ host: "::1", port, path: "/", agent: false, headers: { Host: "localhost" } }, (r) => {
        let b = "";
        r.setEncoding("utf8").on("data", (d: string) => (b += d)).on("end", () => res(b));
      }).on("error", rej);
    });
    expect(body).toBe("v6\n");
    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  test("no settings module anywhere: TSGI_ERR_SETTINGS_NOT_FOUND; two: TSGI_ERR_SETTINGS_AMBIGUOUS; --settings or tsgi.toml chooses", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsgi-runserver-none-"));
    try {
      const none = run(dir, ["127.0.0.1:0"]);
      expect(none.status).toBe(1);
      expect(none.stderr).toContain(`tsgi: TSGI_ERR_SETTINGS_NOT_FOUND: tsgi runserver: no settings module: neither --settings nor TSGI_SETTINGS_MODULE names one, tsgi.toml in ${dir} names none`);

      mkdirSync(join(dir, "a"));
      mkdirSync(join(dir, "b"));
      writeFileSync(join(dir, "a", "settings.ts"), `export const TSGI_APPLICATION = "a/app.mjs";\n`);
      writeFileSync(join(dir, "b", "settings.js"), `export const TSGI_APPLICATION = "b/app.mjs";\n`);
      writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
      for (const x of ["a", "b"]) {
        writeFileSync(join(dir, x, "app.mjs"), `export const application = (e, sr) => { sr("200 OK", []); return ["${x}"]; };\n`);
      }
      const two = run(dir, ["127.0.0.1:0"]);
      expect(two.status).toBe(1);
      expect(two.stderr).toContain(`tsgi: TSGI_ERR_SETTINGS_AMBIGUOUS: tsgi runserver: several settings modules in ${dir} (a/settings, b/settings): which one to serve?`);

      const chosen = await startRunserver(dir, ["127.0.0.1:0", "--settings", "b/settings"]);
      expect(chosen.stdout()).toContain("using settings 'b/settings' (--settings)");
      expect((await get(chosen.port)).body).toBe("b");
      chosen.proc.kill("SIGTERM");
      expect((await chosen.exited).code).toBe(0);

      // tsgi.toml's site names its settings: that is the project's choice (a site running in
      // another folder finds its settings from there: not this project's).
      writeFileSync(
        join(dir, "tsgi.toml"),
        `[site.a]\nsettings = "a/settings"\nlisten = ["fastcgi:127.0.0.1:9000"]\n\n[site.other]\nsettings = "b/settings"\ncwd = "elsewhere"\nlisten = ["fastcgi:127.0.0.1:9001"]\n`,
      );
      const fromToml = await startRunserver(dir, ["127.0.0.1:0", "--root", dir]);
      expect(fromToml.stdout()).toContain("using settings 'a/settings' (tsgi.toml)");
      expect((await get(fromToml.port)).body).toBe("a");
      fromToml.proc.kill("SIGTERM");
      expect((await fromToml.exited).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

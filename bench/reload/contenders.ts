// The contenders of `npm run bench:reload`, each with 2 workers behind the same nginx: tsgi's
// daemon (FastCGI keep-conn over a unix socket, SIGHUP to the master), PM2 in cluster mode
// (npm `pm2` installed at bench time into bench/.cache/pm2, proxy_pass with upstream
// keepalive, `pm2 reload`) and Debian's gunicorn (sync workers, proxy_pass with upstream
// keepalive, SIGHUP to the master). Each says how to start it, where its workers are, how to
// reload it and when the reload is done by its own account, and how to stop it. Everything is
// started by PID (bench/lib/procs.ts) and stopped by PID.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../lib/contenders.ts";
import { group, processTree, readStat, spawnTracked, stopTracked, type Started, type Stat } from "../lib/procs.ts";

export const APPS = join(ROOT, "bench", "apps");
export const PM2_CACHE = join(ROOT, "bench", ".cache", "pm2");
const PM2_BIN = join(PM2_CACHE, "node_modules", "pm2", "bin", "pm2");
const isRoot = () => process.getuid?.() === 0;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Ctx {
  /** The run's temp folder (configurations, sockets, logs, PM2_HOME). */
  dir: string;
  /** Workers per contender. */
  workers: number;
  /** A free TCP port on 127.0.0.1. */
  port(): Promise<number>;
}

export interface Running {
  /** The master: tsgi's, gunicorn's arbiter, PM2's daemon ("God"). */
  masterPid: number;
  /** The current workers (the master's children). */
  workers(): number[];
  /** Sends the reload; resolves when the contender says it is done (rejects on failure or after 60 s). */
  reload(): Promise<void>;
  /** Its log so far (stderr; PM2's own log). */
  log(): string;
  stop(): Promise<void>;
}

export interface Contender {
  id: "tsgi" | "pm2" | "gunicorn";
  what: string;
  /** How it reloads, for the tables. */
  reloadWith: string;
  /** Why it cannot run here (not installable), or null; may install it. */
  prepare(): Promise<string | null>;
  version(): string;
  /** Its nginx upstream and location (the location path is `/${id}/`). */
  nginx(ctx: Ctx): Promise<{ upstream: string; location: string }>;
  start(ctx: Ctx): Promise<Running>;
}

/** The master's children that are workers (tsx's esbuild service is not). */
function children(pid: number): number[] {
  return group(pid).children.map((s) => s.pid);
}

async function until<T>(what: string, ms: number, fn: () => T | null | undefined | false, log: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s\n${log().split("\n").slice(-20).join("\n")}`);
    await sleep(20);
  }
}

/** A tracked child whose stderr (and stdout when asked) is kept in memory. */
function spawnLogged(name: string, cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; stdout?: boolean }): { proc: Started; log: () => string } {
  let text = "";
  const proc = spawnTracked(name, cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", opts.stdout ? "pipe" : "ignore", "pipe"] });
  proc.child.stderr!.setEncoding("utf8").on("data", (d: string) => (text += d));
  proc.child.stdout?.setEncoding("utf8").on("data", (d: string) => (text += d));
  return { proc, log: () => text };
}

function upstream(name: string, server: string): string {
  // The same pool for every contender: 32 idle connections kept, nginx's default 60 s idle timeout.
  return `upstream ${name} { server ${server}; keepalive 32; }`;
}

const accessLog = (id: string) => `access_log {{DIR}}/logs/${id}.access.log reload;`;

// ---- tsgi ----

export function tsgiToml(sites: { name: string; sock: string; extra?: string }[]): string {
  const head = [
    "[defaults]",
    ...(isRoot() ? ["run-as-root = true"] : []),
    '# nginx\'s workers (www-data when started as root) connect to the sockets',
    'socket-mode = "0666"',
    "",
  ];
  return [...head, ...sites.flatMap((s) => [`[site.${s.name}]`, `app = ${JSON.stringify(join(APPS, "tsgi-app.mjs"))}`, `listen = ["fastcgi:unix:${s.sock}"]`, ...(s.extra ? [s.extra] : []), ""])].join("\n");
}

export function startTsgiDaemon(name: string, file: string, cwd: string): { proc: Started; log: () => string } {
  // The access log (stdout) goes to /dev/null, formatted and written as in `npm run bench`.
  return spawnLogged(name, process.execPath, [join(ROOT, "bin", "tsgi.js"), "daemon", "-c", file], { cwd });
}

const tsgi: Contender = {
  id: "tsgi",
  what: "tsgi daemon, 1 site with 2 processes; nginx fastcgi_pass + fastcgi_keep_conn on + upstream keepalive, unix socket",
  reloadWith: "SIGHUP to the master",
  async prepare() {
    if (!existsSync(join(ROOT, "build", "Release", "tsgi.node"))) return "the native bridge is not built (build/Release/tsgi.node): run `npm ci` first";
    return null;
  },
  version() {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    return `tsgi ${pkg.version}`;
  },
  async nginx(ctx) {
    return {
      upstream: upstream("tsgi_up", `unix:${join(ctx.dir, "tsgi.sock")}`),
      location: `location /tsgi/ { ${accessLog("tsgi")} fastcgi_pass tsgi_up; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }`,
    };
  },
  async start(ctx) {
    const file = join(ctx.dir, "tsgi.toml");
    writeFileSync(file, tsgiToml([{ name: "hello", sock: join(ctx.dir, "tsgi.sock"), extra: `processes = ${ctx.workers}` }]));
    const { proc, log } = startTsgiDaemon("tsgi", file, ctx.dir);
    await until("tsgi ready", 30_000, () => {
      if (proc.exitInfo) throw new Error(`tsgi exited at start:\n${log()}`);
      return /ready: 1 of 1 sites running/.test(log());
    }, log);
    await until("tsgi workers", 10_000, () => children(proc.pid).length >= ctx.workers, log);
    const reloaded = () => (log().match(/\[hello\] reloaded: \d+ new workers? serving/g) ?? []).length;
    return {
      masterPid: proc.pid,
      workers: () => children(proc.pid),
      async reload() {
        const before = reloaded();
        process.kill(proc.pid, "SIGHUP");
        await until("tsgi reload", 60_000, () => reloaded() > before || /not reloaded/.test(log().slice(-2000)), log);
        if (reloaded() === before) throw new Error(`tsgi refused the reload:\n${log().split("\n").slice(-5).join("\n")}`);
      },
      log,
      async stop() {
        // After the load: SIGTERM, then a second one at once (nothing is in flight any more;
        // the first alone waits up to graceful-timeout for nginx's idle keep-conn connections).
        if (!proc.exitInfo) process.kill(proc.pid, "SIGTERM");
        await Promise.race([proc.exited, sleep(1000)]);
        if (!proc.exitInfo) process.kill(proc.pid, "SIGTERM");
        await stopTracked(proc, 10_000);
      },
    };
  },
};

// ---- PM2 ----

function pm2Env(ctx: Ctx): NodeJS.ProcessEnv {
  return { ...process.env, PM2_HOME: join(ctx.dir, "pm2-home") };
}

/** Runs the pm2 CLI (asynchronously: the load goes on meanwhile); resolves with its output. */
function pm2(ctx: Ctx, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PM2_BIN, ...args], { cwd: ctx.dir, env: pm2Env(ctx), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`pm2 ${args.join(" ")}: ${signal ? `killed by ${signal} after ${timeoutMs / 1000} s` : `exit code ${code}`}\n${out.split("\n").slice(-20).join("\n")}`));
    });
  });
}

function pm2Version(): string | null {
  try {
    return (JSON.parse(readFileSync(join(PM2_CACHE, "node_modules", "pm2", "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return null;
  }
}

let pm2Port = 0;
/** PM2's daemon once started (it is not our child: `pm2 start` daemonizes it). */
let pm2Daemon: Stat | null = null;

/** Last resort on exit (Ctrl-C twice, a crash): SIGKILL PM2's daemon and its instances, by PID. */
export function killPm2Sync(): void {
  const god = pm2Daemon;
  if (!god || readStat(god.pid)?.start !== god.start) return;
  for (const s of processTree(god.pid).reverse()) {
    try {
      process.kill(s.pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  pm2Daemon = null;
}

const pm2Contender: Contender = {
  id: "pm2",
  what: "PM2 cluster mode, 2 instances of a node:http app (wait_ready + process.send('ready'), SIGINT → server.close()); nginx proxy_pass + upstream keepalive, TCP",
  reloadWith: "`pm2 reload hello`",
  async prepare() {
    if (pm2Version()) return null;
    // Outside the project's dependencies: a cache folder of its own (gitignored).
    mkdirSync(PM2_CACHE, { recursive: true });
    console.log(`  installing pm2 into ${PM2_CACHE} …`);
    const r = spawnSync("npm", ["install", "--prefix", PM2_CACHE, "pm2@latest", "--no-audit", "--no-fund", "--no-save"], { encoding: "utf8", timeout: 300_000 });
    if (r.status !== 0 || !pm2Version()) return `npm install pm2 failed: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-3).join(" ")}`;
    return null;
  },
  version() {
    return `pm2 ${pm2Version()}`;
  },
  async nginx(ctx) {
    pm2Port = await ctx.port();
    return {
      upstream: upstream("pm2_up", `127.0.0.1:${pm2Port}`),
      location: `location /pm2/ { ${accessLog("pm2")} proxy_pass http://pm2_up; proxy_http_version 1.1; proxy_set_header Connection ""; }`,
    };
  },
  async start(ctx) {
    const home = join(ctx.dir, "pm2-home");
    mkdirSync(home, { recursive: true });
    const eco = join(ctx.dir, "ecosystem.config.cjs");
    // PM2's documented graceful start and reload: wait_ready (the app sends "ready" once it
    // listens; listen_timeout bounds the wait), kill_timeout before SIGKILL after SIGINT.
    const app = {
      name: "hello",
      script: join(ROOT, "bench", "reload", "pm2-app.cjs"),
      exec_mode: "cluster",
      instances: ctx.workers,
      wait_ready: true,
      listen_timeout: 10_000,
      kill_timeout: 5_000,
      env: { PORT: String(pm2Port), NODE_ENV: "production" },
      out_file: "/dev/null",
      error_file: join(ctx.dir, "pm2-app.err.log"),
      autorestart: true,
    };
    writeFileSync(eco, `module.exports = ${JSON.stringify({ apps: [app] }, null, 2)};\n`);
    await pm2(ctx, ["start", eco]);
    const pidFile = join(home, "pm2.pid");
    const god = Number(readFileSync(pidFile, "utf8").trim());
    const godStat = readStat(god);
    pm2Daemon = godStat;
    const log = () => {
      try {
        return readFileSync(join(home, "pm2.log"), "utf8");
      } catch {
        return "";
      }
    };
    await until("pm2 instances", 20_000, () => children(god).length >= ctx.workers, log);
    return {
      masterPid: god,
      workers: () => children(god),
      async reload() {
        await pm2(ctx, ["reload", "hello"]);
      },
      log,
      async stop() {
        await pm2(ctx, ["kill"]).catch((e: Error) => console.warn(`  ! ${e.message}`));
        // `pm2 kill` ends its daemon and instances; anything left of them, by PID.
        for (let i = 0; i < 100 && readStat(god)?.start === godStat?.start; i++) await sleep(50);
        if (readStat(god) && readStat(god)?.start === godStat?.start) killPm2Sync();
        pm2Daemon = null;
      },
    };
  },
};

// ---- gunicorn ----

function gunicornVersion(): string | null {
  const r = spawnSync("gunicorn", ["--version"], { encoding: "utf8" });
  return r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : null;
}

let gunicornPort = 0;

const gunicorn: Contender = {
  id: "gunicorn",
  what: "Debian's gunicorn, 2 sync workers, the WSGI app of `npm run bench` (bench/apps/wsgi_app.py); nginx proxy_pass + upstream keepalive, TCP",
  reloadWith: "SIGHUP to the master",
  async prepare() {
    if (gunicornVersion()) return null;
    if (!isRoot()) return "gunicorn is not installed (apt-get install -y gunicorn, as root)";
    console.log("  installing gunicorn (apt-get install -y gunicorn) …");
    const r = spawnSync("apt-get", ["install", "-y", "gunicorn"], { encoding: "utf8", timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if (!gunicornVersion()) return `apt-get install -y gunicorn failed: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-3).join(" ")}`;
    return null;
  },
  version() {
    return gunicornVersion() ?? "gunicorn (missing)";
  },
  async nginx(ctx) {
    gunicornPort = await ctx.port();
    return {
      upstream: upstream("gunicorn_up", `127.0.0.1:${gunicornPort}`),
      location: `location /gunicorn/ { ${accessLog("gunicorn")} proxy_pass http://gunicorn_up; proxy_http_version 1.1; proxy_set_header Connection ""; }`,
    };
  },
  async start(ctx) {
    const { proc, log } = spawnLogged(
      "gunicorn",
      "gunicorn",
      ["--workers", String(ctx.workers), "--worker-class", "sync", "--bind", `127.0.0.1:${gunicornPort}`, "--chdir", APPS, "--log-level", "info", "wsgi_app:application"],
      { cwd: ctx.dir },
    );
    await until("gunicorn workers", 30_000, () => {
      if (proc.exitInfo) throw new Error(`gunicorn exited at start:\n${log()}`);
      return children(proc.pid).length >= ctx.workers && /Booting worker/.test(log());
    }, log);
    return {
      masterPid: proc.pid,
      workers: () => children(proc.pid),
      async reload() {
        // HUP: new workers are forked, then the old ones stopped gracefully (SIGTERM: they
        // finish the request they serve); done when only new workers are left.
        const old = new Set(children(proc.pid));
        process.kill(proc.pid, "SIGHUP");
        await until("gunicorn reload", 60_000, () => {
          const now = children(proc.pid);
          return now.length >= ctx.workers && now.every((p) => !old.has(p));
        }, log);
      },
      log,
      stop: () => stopTracked(proc, 35_000),
    };
  },
};

export const CONTENDERS: Contender[] = [tsgi, pm2Contender, gunicorn];

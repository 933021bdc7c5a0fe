// Real nginx and Apache httpd as test children: a configuration snippet rendered into a temp
// folder that holds every path the server writes (pid, logs, temp files, runtime dir), a port
// taken from the kernel, startup awaited until the port answers, and stop by PID; or a whole
// configuration file the caller wrote. Used by the fixture recorder
// (test/codec/fixtures/record.ts) and the integration tests.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export type FrontServerKind = "nginx" | "apache";

export interface FrontServer {
  kind: FrontServerKind;
  /** e.g. `nginx/1.22.1`, `Apache/2.4.71 (Debian)`. */
  version: string;
  pid: number;
  host: string;
  port: number;
  /** The temp folder holding the configuration, logs and temp files. */
  dir: string;
  /** The rendered configuration file. */
  confPath: string;
  errorLogPath: string;
  /** The error log as it is now ("" when absent). */
  errorLog(): string;
  /** Stops the server (SIGTERM, then SIGKILL after `timeoutMs`) and waits for its exit; removes `dir` unless `keep`. */
  stop(options?: { timeoutMs?: number; keep?: boolean }): Promise<void>;
}

export interface StartOptions {
  /**
   * The configuration snippet, with `{{NAME}}` placeholders. For nginx it is the content of
   * the `http {}` block (upstreams, `server {}` blocks); for Apache, directives after the
   * boilerplate (modules, Listen, logs are already there). Always defined: `{{HOST}}`,
   * `{{PORT}}` (the server's own port), `{{DIR}}`.
   */
  conf: string;
  /** More placeholder values (backend ports, document roots, …). */
  vars?: Record<string, string | number>;
  /** Files written into the temp folder before start (document roots, htpasswd, …), by relative path. */
  files?: Record<string, string | Uint8Array>;
  /**
   * The server's environment (default: only a standard PATH). Apache passes its own PATH to
   * FastCGI and uwsgi backends as a param, so the caller's environment would leak into captures.
   */
  env?: Record<string, string>;
  /** Milliseconds to wait for the port to answer (default 10 s). */
  startTimeoutMs?: number;
}

export interface ApacheStartOptions extends StartOptions {
  /** Module names without `mod_` / `.so`, beyond the boilerplate's (mpm_event, authz_core, mime, log_config is built in). */
  modules?: string[];
}

const HOST = "127.0.0.1";
const DEFAULT_ENV = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" };

/** A TCP port the kernel considers free now (listen on 0, read, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function render(template: string, vars: Record<string, string | number>): string {
  return template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (whole, name: string) => {
    if (!(name in vars)) throw new Error(`front-servers: no value for ${whole} in the configuration template`);
    return String(vars[name]);
  });
}

/** `nginx/1.22.1`. */
export function nginxVersion(): string {
  const out = commandOutput("nginx", ["-v"]);
  return /nginx\/[\d.]+/.exec(out)?.[0] ?? out.trim();
}

/** `Apache/2.4.71 (Debian)`. */
export function apacheVersion(): string {
  const out = commandOutput("apache2", ["-v"]);
  return /Server version:\s*(.+)/.exec(out)?.[1]?.trim() ?? out.trim();
}

function commandOutput(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`;
}

function makeDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Started as root, both servers' workers drop to an unprivileged user that must still
  // reach the temp files and document roots under this folder (mkdtemp makes it 0700).
  if (process.getuid?.() === 0) chmodSync(dir, 0o755);
  return dir;
}

const isRoot = () => process.getuid?.() === 0;

function writeFiles(dir: string, files: Record<string, string | Uint8Array> = {}): void {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
}

/** nginx with `options.conf` inside its `http {}` block; see StartOptions. */
export function startNginx(options: StartOptions): Promise<FrontServer> {
  return retryOnPortTaken(() => startNginxOnce(options));
}

/** Apache httpd (mpm_event) with `options.conf` after the boilerplate; see ApacheStartOptions. */
export function startApache(options: ApacheStartOptions): Promise<FrontServer> {
  return retryOnPortTaken(() => startApacheOnce(options));
}

class PortTaken extends Error {}

// freePort() closes its socket before the server binds: another process may take the port in
// between. Rare, so a fresh port and a second try are enough.
async function retryOnPortTaken(start: () => Promise<FrontServer>, attempts = 3): Promise<FrontServer> {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof PortTaken) || i >= attempts) throw err;
    }
  }
}

async function startNginxOnce(options: StartOptions): Promise<FrontServer> {
  const dir = makeDir("tsgi-nginx-");
  for (const sub of ["conf", "logs", "tmp"]) mkdirSync(join(dir, sub));
  writeFiles(dir, options.files);
  const port = await freePort();
  const vars = { HOST, PORT: port, DIR: dir, ...options.vars };
  const confPath = join(dir, "conf", "nginx.conf");
  const errorLogPath = join(dir, "logs", "error.log");
  const conf = [
    "daemon off;",
    "master_process on;",
    "worker_processes 1;",
    ...(isRoot() ? ["user www-data www-data;"] : []),
    `pid ${dir}/logs/nginx.pid;`,
    `error_log ${errorLogPath} info;`,
    "events { worker_connections 256; }",
    "http {",
    `  access_log ${dir}/logs/access.log;`,
    `  client_body_temp_path ${dir}/tmp/client_body;`,
    `  proxy_temp_path ${dir}/tmp/proxy;`,
    `  fastcgi_temp_path ${dir}/tmp/fastcgi;`,
    `  uwsgi_temp_path ${dir}/tmp/uwsgi;`,
    `  scgi_temp_path ${dir}/tmp/scgi;`,
    render(options.conf, vars),
    "}",
    "",
  ].join("\n");
  writeFileSync(confPath, conf);
  // -e sets the log used before the configuration is read (nginx ≥ 1.19.5).
  const child = spawn("nginx", ["-p", dir, "-c", confPath, "-e", errorLogPath], {
    stdio: ["ignore", "pipe", "pipe"],
    env: options.env ?? DEFAULT_ENV,
  });
  return started("nginx", nginxVersion(), child, dir, confPath, errorLogPath, port, options.startTimeoutMs);
}

const APACHE_MODULES = "/usr/lib/apache2/modules";
const APACHE_BASE_MODULES = ["mpm_event", "authz_core", "mime"];

async function startApacheOnce(options: ApacheStartOptions): Promise<FrontServer> {
  const dir = makeDir("tsgi-apache-");
  for (const sub of ["logs", "run"]) mkdirSync(join(dir, sub));
  writeFiles(dir, options.files);
  const port = await freePort();
  const vars = { HOST, PORT: port, DIR: dir, ...options.vars };
  const confPath = join(dir, "httpd.conf");
  const errorLogPath = join(dir, "logs", "error.log");
  const modules = [...new Set([...APACHE_BASE_MODULES, ...(options.modules ?? [])])];
  const conf = [
    `ServerRoot "${dir}"`,
    `PidFile "${dir}/run/httpd.pid"`,
    `DefaultRuntimeDir "${dir}/run"`,
    `ErrorLog "${errorLogPath}"`,
    "LogLevel info",
    `Listen ${HOST}:${port}`,
    `ServerName ${HOST}`,
    ...(isRoot() ? ["User www-data", "Group www-data"] : []),
    ...modules.map((m) => `LoadModule ${m}_module ${APACHE_MODULES}/mod_${m}.so`),
    "TypesConfig /etc/mime.types",
    'LogFormat "%h %l %u %t \\"%r\\" %>s %b" common',
    `CustomLog "${dir}/logs/access.log" common`,
    "StartServers 1",
    "ServerLimit 1",
    "ThreadsPerChild 8",
    "MaxRequestWorkers 8",
    render(options.conf, vars),
    "",
  ].join("\n");
  writeFileSync(confPath, conf);
  const child = spawn("apache2", ["-f", confPath, "-DFOREGROUND"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: options.env ?? DEFAULT_ENV,
  });
  return started("apache", apacheVersion(), child, dir, confPath, errorLogPath, port, options.startTimeoutMs);
}

/** A whole configuration file the caller wrote (a copy of conf-examples' complete ones). */
export interface FileStartOptions {
  /** The folder holding the file and everything the server writes; removed by stop(). */
  dir: string;
  confPath: string;
  /** The error log the file names (nginx also writes there before it read the file). */
  errorLogPath: string;
  /** A port the file listens on: startup is awaited until it answers. */
  port: number;
  startTimeoutMs?: number;
}

/** nginx (`-c FILE`, in the foreground) or Apache (`-f FILE -DFOREGROUND`) from a whole file, no boilerplate added. */
export function startFromFile(kind: FrontServerKind, o: FileStartOptions): Promise<FrontServer> {
  const nginx = kind === "nginx";
  const child = nginx
    ? spawn("nginx", ["-c", o.confPath, "-e", o.errorLogPath, "-g", "daemon off;"], { stdio: ["ignore", "pipe", "pipe"], env: DEFAULT_ENV })
    : spawn("apache2", ["-f", o.confPath, "-DFOREGROUND"], { stdio: ["ignore", "pipe", "pipe"], env: DEFAULT_ENV });
  return started(kind, nginx ? nginxVersion() : apacheVersion(), child, o.dir, o.confPath, o.errorLogPath, o.port, o.startTimeoutMs);
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: HOST, port });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function started(
  kind: FrontServerKind,
  version: string,
  child: ChildProcess,
  dir: string,
  confPath: string,
  errorLogPath: string,
  port: number,
  timeoutMs = 10_000,
): Promise<FrontServer> {
  let output = "";
  child.stdout!.on("data", (b: Buffer) => (output += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (output += b.toString()));
  // A holder, not a `let`: TypeScript would narrow a closure-assigned `let` to null.
  const state: { exit: { code: number | null; signal: NodeJS.Signals | null } | null } = { exit: null };
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      state.exit = { code, signal };
      resolve();
    });
    child.once("error", (err) => {
      output += `\nspawn error: ${err.message}`;
      state.exit = { code: null, signal: null };
      resolve();
    });
  });
  const errorLog = () => (existsSync(errorLogPath) ? readFileSync(errorLogPath, "utf8") : "");

  const fail = (why: string): never => {
    const conf = existsSync(confPath) ? readFileSync(confPath, "utf8") : "";
    const log = errorLog().trim();
    rmSync(dir, { recursive: true, force: true });
    const message =
      `${kind} did not start on ${HOST}:${port}: ${why}\n` +
      `--- output ---\n${output.trim()}\n--- error log ---\n${log}\n--- configuration ---\n${conf}`;
    throw /Address already in use/.test(output + log) ? new PortTaken(message) : new Error(message);
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (state.exit) fail(`exited (code ${state.exit.code}, signal ${state.exit.signal})`);
    if (await portAnswers(port)) {
      // The answer may come from a process that took the port first; ours then exits at once.
      await sleep(50);
      if (!state.exit) break;
      continue;
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await exited;
      fail(`port did not answer within ${timeoutMs} ms`);
    }
    await sleep(25);
  }

  return {
    kind,
    version,
    pid: child.pid!,
    host: HOST,
    port,
    dir,
    confPath,
    errorLogPath,
    errorLog,
    async stop({ timeoutMs: stopTimeout = 10_000, keep = false } = {}) {
      if (!state.exit) {
        // SIGTERM is a fast shutdown for both (nginx: SIGQUIT would be graceful and could
        // wait on idle keepalive connections; Apache: SIGWINCH is its graceful stop).
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeout);
        await exited;
        clearTimeout(timer);
      }
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}

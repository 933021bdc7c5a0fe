// `tsgi runserver [ADDR:PORT]` (DESIGN §3): the project served over HTTP for development, as
// Django's runserver. A supervisor binds the socket once (the daemon's SocketRegistry) and
// runs the project in a server process — a worker of src/daemon/worker.ts, the fd handed to
// it as the master hands it — that imports the settings' TSGI_APPLICATION and shows an
// application's exception in the 500 body (`debug`; only here, never under serve or daemon).
//
// On a source change (watch.ts) it starts a new server process; once that one imported the
// project and accepts, the old one drains (its requests finish with the old code) and exits.
// The socket never closes in between, so no connection is refused: until a process accepts,
// connections wait in the listen queue. A new process that cannot import the project is not
// started again until the next change: the error goes to the log, and a process serving
// error-page.ts takes the socket, so every request gets a 500 that shows it. The next server
// process is started ahead, as a standby (standby.ts): tsgi and tsx loaded, waiting for the
// change, so that a restart costs the project's own import only.
//
// Signals only enqueue; one loop handles the events (the master's way). SIGTERM or Ctrl-C
// stops every process gracefully (at most GRACEFUL_MS), a second Ctrl-C at once.

import { fork, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "smol-toml";
import { tsgiError } from "../errors.ts";
import { MODULE_EXTENSIONS } from "./settings.ts";
import { createLogger, type Logger } from "../log.ts";
import { BIN, ROOT } from "../paths.ts";
import { describeListen, parseListen } from "../daemon/listen.ts";
import { defaults, type SiteSettings } from "../daemon/settings/index.ts";
import { SocketRegistry } from "../daemon/sockets.ts";
import type { MasterMessage, WorkerConfig, WorkerMessage } from "../daemon/worker.ts";
import type { BootFailure } from "./error-page.ts";
import type { StandbyReady, StandbyStart } from "./standby.ts";
import { ProjectWatcher } from "./watch.ts";

export const DEFAULT_ADDRESS = { host: "127.0.0.1", port: 8000 };
/** How long a stop, or the old process of a restart, waits for the requests in flight. */
export const GRACEFUL_MS = 5000;
/** A server process that dies on its own sooner than this after it was ready is not started again until a change. */
const CRASH_LOOP_MS = 2000;
const ERROR_PAGE_APP = join(ROOT, "src", "project", "error-page.ts");

/** `8000`, `0.0.0.0:8000`, `[::1]:8000`, `localhost:8000`; none: 127.0.0.1:8000. */
export function parseAddrPort(text: string | undefined): { host: string; port: number } {
  if (text === undefined) return DEFAULT_ADDRESS;
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):)?(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port > 65535) {
    throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: "tsgi runserver ADDR:PORT", reason: `give PORT, ADDR:PORT or [IPv6]:PORT (e.g. 8000, 0.0.0.0:8000, [::1]:8000), not ${JSON.stringify(text)}` });
  }
  const host = m[1] === undefined ? DEFAULT_ADDRESS.host : m[1].startsWith("[") ? m[1].slice(1, -1) : m[1] === "localhost" ? "127.0.0.1" : m[1];
  return { host, port };
}

/**
 * The settings module to serve, and where that came from: `--settings`, else
 * TSGI_SETTINGS_MODULE, else the project's own — the `settings` of tsgi.toml's sites (when
 * they name one), else the one `DIR/settings.{ts,…}` under the root, as startproject lays it out.
 */
export function findSettingsModule(root: string, flag: string | undefined, env: string | undefined): { module: string; from: string } {
  if (flag) return { module: flag, from: "--settings" };
  if (env) return { module: env, from: "TSGI_SETTINGS_MODULE" };
  const toml = join(root, "tsgi.toml");
  if (existsSync(toml)) {
    let named: string[] = [];
    try {
      type Keys = { settings?: unknown; cwd?: unknown };
      const conf = parse(readFileSync(toml, "utf8")) as { site?: Record<string, Keys>; defaults?: Keys };
      const text = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
      // A site's settings module is found from its cwd: only those that run in the root count.
      for (const site of Object.values(conf.site ?? {})) {
        const settings = text(site?.settings) ?? text(conf.defaults?.settings);
        const cwd = resolve(root, text(site?.cwd) ?? text(conf.defaults?.cwd) ?? ".");
        if (settings && cwd === root) named.push(settings);
      }
    } catch {
      // A file the daemon would refuse names nothing here; `tsgi check` says what is wrong with it.
    }
    const unique = [...new Set(named)];
    if (unique.length === 1) return { module: unique[0]!, from: "tsgi.toml" };
    if (unique.length > 1) throw tsgiError("TSGI_ERR_SETTINGS_AMBIGUOUS", { root, found: `tsgi.toml's sites name ${unique.join(", ")}` });
  }
  const found: string[] = [];
  for (const dir of readdirSync(root, { withFileTypes: true })) {
    if (!dir.isDirectory() || dir.name.startsWith(".") || dir.name === "node_modules") continue;
    if (MODULE_EXTENSIONS.some((ext) => existsSync(join(root, dir.name, `settings${ext}`)))) found.push(`${dir.name}/settings`);
  }
  if (found.length === 1) return { module: found[0]!, from: "the project's only */settings file" };
  if (found.length > 1) throw tsgiError("TSGI_ERR_SETTINGS_AMBIGUOUS", { root, found: found.join(", ") });
  throw tsgiError("TSGI_ERR_SETTINGS_NOT_FOUND", { root });
}

enum Role {
  Server = "server process",
  ErrorPage = "error page process",
}

enum ChildState {
  /** Loaded, not started: what the next restart takes (standby.ts). */
  Standby = "standby",
  Booting = "booting",
  Serving = "serving",
  Draining = "draining",
}

enum RunState {
  Running = "running",
  Stopping = "stopping",
}

interface Child {
  proc: ChildProcess;
  state: ChildState;
  /** Standby: said it listens for "start", and the start to send it once it does. */
  warm: boolean;
  pending: StandbyStart | null;
  /** Numbered when taken from standby, in the order started. */
  serial: number;
  role: Role;
  readyAt: number;
  /** Sent its boot-error: what the error page shows once it exited. */
  failure: BootFailure | null;
}

type Event =
  | { kind: "change"; files: string[] }
  | { kind: "message"; child: Child; msg: WorkerMessage | StandbyReady }
  | { kind: "exit"; child: Child; how: string }
  | { kind: "signal"; signal: "SIGTERM" | "SIGINT" };

export interface RunserverOptions {
  addrport?: string;
  settings?: string;
  root?: string;
  /** tsgi's version, for the start lines. */
  version: string;
}

export async function runserver(options: RunserverOptions): Promise<void> {
  const root = resolve(options.root ?? ".");
  const { host, port } = parseAddrPort(options.addrport);
  const settings = findSettingsModule(root, options.settings, process.env.TSGI_SETTINGS_MODULE);
  const log = createLogger("runserver", { error: process.stderr, access: null });
  process.title = "tsgi: runserver";
  const supervisor = new Supervisor(root, settings.module, log);
  const address = await supervisor.bind(host, port);
  const now = new Date();
  const date = `${now.toLocaleString("en-US", { month: "long", day: "2-digit", year: "numeric" })} - ${now.toTimeString().slice(0, 8)}`;
  process.stdout.write(
    [
      `Watching for file changes in ${root}`,
      date,
      `tsgi version ${options.version}, using settings '${settings.module}' (${settings.from})`,
      `Starting development server at http://${address}/`,
      "Quit the server with CONTROL-C.",
      "",
    ].join("\n"),
  );
  await supervisor.run();
}

class Supervisor {
  readonly #root: string;
  readonly #module: string;
  readonly #log: Logger;
  readonly #sockets: SocketRegistry;
  #fd = -1;
  #listen = "";
  #state = RunState.Running;
  #serial = 0;
  readonly #children = new Set<Child>();
  /** The process that accepts now (a server, or the error page). */
  #current: Child | null = null;
  /** The process started to replace it, until it is ready or fails. */
  #next: Child | null = null;
  #standby: Child | null = null;
  #watcher: ProjectWatcher | null = null;
  #queue: Event[] = [];
  #dispatching = false;
  #done: () => void = () => undefined;

  constructor(root: string, module: string, log: Logger) {
    this.#root = root;
    this.#module = module;
    this.#log = log;
    this.#sockets = new SocketRegistry(log);
  }

  /** Binds the socket (before anything is printed: a port in use is the first thing said). */
  async bind(host: string, port: number): Promise<string> {
    const spec = parseListen(`http:${host.includes(":") ? `[${host}]` : host}:${port}`);
    const socket = await this.#sockets.acquire(spec, { mode: 0o660, ids: null });
    this.#fd = socket.fd;
    // The server processes listen where the kernel bound (port 0 included).
    this.#listen = `http:${host.includes(":") ? `[${host}]` : host}:${socket.port}`;
    return describeListen(spec, socket.port).slice("http ".length);
  }

  run(): Promise<void> {
    const finished = new Promise<void>((resolve) => (this.#done = resolve));
    process.on("SIGTERM", () => this.#enqueue({ kind: "signal", signal: "SIGTERM" }));
    process.on("SIGINT", () => this.#enqueue({ kind: "signal", signal: "SIGINT" }));
    this.#watcher = new ProjectWatcher(this.#root, (files) => this.#enqueue({ kind: "change", files }));
    this.#start(Role.Server, null);
    return finished;
  }

  #enqueue(event: Event): void {
    this.#queue.push(event);
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      for (let e = this.#queue.shift(); e; e = this.#queue.shift()) this.#handle(e);
    } finally {
      this.#dispatching = false;
    }
  }

  #handle(e: Event): void {
    switch (e.kind) {
      case "change":
        return this.#changed(e.files);
      case "message":
        return this.#message(e.child, e.msg);
      case "exit":
        return this.#exited(e.child, e.how);
      case "signal":
        return this.#signal(e.signal);
    }
  }

  #changed(files: string[]): void {
    if (this.#state === RunState.Stopping) return;
    const shown = files.length > 3 ? `${files.slice(0, 3).join(", ")} and ${files.length - 3} more` : files.join(", ");
    this.#log.info(`${shown} changed: restarting`);
    // A process still importing the code of before is of no use any more.
    if (this.#next) {
      this.#next.proc.kill("SIGKILL");
      this.#next = null;
    }
    this.#start(Role.Server, null);
  }

  #message(child: Child, msg: WorkerMessage | StandbyReady): void {
    // Stopping: every process was told to stop (or killed) already.
    if (this.#state === RunState.Stopping) return;
    if (msg.type === "standby") {
      child.warm = true;
      if (child.pending) child.proc.send(child.pending);
      child.pending = null;
      return;
    }
    if (msg.type === "boot-error") {
      child.failure = { code: msg.code, message: msg.message, frames: msg.frames };
      return; // it exits next (worker.ts), and the exit starts the error page
    }
    if (msg.type === "recycle" && child === this.#current && this.#state === RunState.Running && !this.#next) {
      this.#log.info(`${child.role} ${child.serial} asks to be replaced (${msg.reason}): restarting`);
      this.#start(Role.Server, null);
      return;
    }
    if (msg.type !== "ready" || child !== this.#next) return;
    child.state = ChildState.Serving;
    child.readyAt = Date.now();
    this.#next = null;
    const old = this.#current;
    this.#current = child;
    const drains = old ? `; ${old.role} ${old.serial} finishes its requests and exits` : "";
    this.#log.info(`${child.role} ${child.serial} (pid ${child.proc.pid}) is serving${drains}`);
    if (old) this.#stop(old);
    // The next standby only now: spawned beside the restart, it would slow it down.
    if (!this.#standby) this.#standby = this.#spawn();
  }

  #exited(child: Child, how: string): void {
    this.#children.delete(child);
    if (this.#state === RunState.Stopping) {
      if (this.#children.size === 0) this.#finish();
      return;
    }
    if (child === this.#standby) {
      // Not started again now (it could die again at once): the next restart starts one.
      this.#standby = null;
      this.#log.warn(`the standby process (pid ${child.proc.pid}) ${how}`);
    } else if (child === this.#next) {
      this.#next = null;
      const failure = child.failure ?? this.#died(`the ${child.role} ${how} before it was ready`);
      if (child.role === Role.ErrorPage) this.#log.error(`the error page process ${how}; waiting for a file change`);
      else this.#failed(failure);
    } else if (child === this.#current) {
      this.#current = null;
      // A process that dies soon after it started would die again: wait for a change then.
      if (child.role === Role.Server && Date.now() - child.readyAt >= CRASH_LOOP_MS) {
        this.#log.error(`${child.role} ${child.serial} (pid ${child.proc.pid}) ${how}: starting another`);
        this.#start(Role.Server, null);
      } else if (child.role === Role.Server) {
        this.#failed(this.#died(`the ${child.role} ${how} ${Date.now() - child.readyAt} ms after it was ready`));
      } else this.#log.error(`the error page process ${how}; waiting for a file change`);
    }
  }

  /** A process that ended without saying why (process.exit in the project's top-level code, a signal). */
  #died(reason: string): BootFailure {
    const err = tsgiError("TSGI_ERR_POOL_BOOT", { site: "runserver", reason });
    return { code: err.code, message: err.message, frames: [] };
  }

  /** The project cannot be served: the error logged once, and shown to every request until a change. */
  #failed(failure: BootFailure): void {
    this.#log.error(
      "the project cannot be imported; every request gets this error (500) until a file changes",
      Object.assign(new Error(failure.message), { code: failure.code, frames: failure.frames }),
    );
    this.#start(Role.ErrorPage, failure);
  }

  #signal(signal: "SIGTERM" | "SIGINT"): void {
    if (this.#state === RunState.Stopping) {
      if (signal === "SIGINT") {
        this.#log.info("stopping at once (SIGINT twice)");
        for (const c of this.#children) c.proc.kill("SIGKILL");
      }
      return;
    }
    this.#state = RunState.Stopping;
    this.#log.info(`${signal}: stopping`);
    this.#watcher?.close();
    if (this.#children.size === 0) return this.#finish();
    for (const c of this.#children) this.#stop(c);
    setTimeout(() => {
      for (const c of this.#children) c.proc.kill("SIGKILL");
    }, GRACEFUL_MS + 1000).unref();
  }

  #finish(): void {
    this.#sockets.closeAll();
    this.#log.info("stopped");
    this.#done();
  }

  /** A process accepting is told to stop: its requests in flight finish first. */
  #stop(child: Child): void {
    if (child.state === ChildState.Standby || child.state === ChildState.Booting) {
      // No request reached it; the worker answers SIGTERM only once it serves.
      child.proc.kill("SIGKILL");
      return;
    }
    if (child.state === ChildState.Draining) return;
    child.state = ChildState.Draining;
    const msg: MasterMessage = { type: "stop" };
    if (child.proc.connected) child.proc.send(msg);
    else child.proc.kill("SIGTERM");
  }

  /** The standby becomes the next process (one is spawned when there is none). */
  #start(role: Role, failure: BootFailure | null): void {
    const child = this.#standby ?? this.#spawn();
    this.#standby = null;
    child.serial = ++this.#serial;
    child.role = role;
    child.state = ChildState.Booting;
    const settings: SiteSettings = {
      ...defaults(),
      app: role === Role.ErrorPage ? `${ERROR_PAGE_APP}:application` : null,
      settings: this.#module,
      listen: [this.#listen],
      cwd: this.#root,
      processes: 1,
      debug: true,
      // The address it is bound to is who may connect: the development server answers anyone
      // who reaches it (ALLOWED_HOSTS still applies, in the project's tsgi.ts).
      allow: ["0.0.0.0/0", "::/0"],
      "graceful-timeout": GRACEFUL_MS,
      "request-timeout": 0,
    };
    const config: WorkerConfig = { site: "runserver", index: child.serial, multiprocess: false, settings, identity: null };
    const start: StandbyStart = { type: "start", config, env: failure ? { TSGI_RUNSERVER_ERROR: JSON.stringify(failure) } : {} };
    if (child.warm) child.proc.send(start);
    else child.pending = start;
    this.#next = child;
    this.#log.info(`starting ${role} ${child.serial} (pid ${child.proc.pid})`);
  }

  /** A standby process: tsgi loaded, the socket in its stdio table, waiting for "start". */
  #spawn(): Child {
    const env: NodeJS.ProcessEnv = { ...process.env, TSGI_RUNSERVER_STANDBY: "1", TSGI_SETTINGS_MODULE: this.#module };
    delete env.TSGI_WORKER;
    const proc = fork(BIN, [], { cwd: this.#root, env, stdio: ["inherit", "inherit", "inherit", "ipc", this.#fd] });
    const child: Child = { proc, state: ChildState.Standby, warm: false, pending: null, serial: 0, role: Role.Server, readyAt: 0, failure: null };
    this.#children.add(child);
    proc.on("message", (msg: WorkerMessage | StandbyReady) => this.#enqueue({ kind: "message", child, msg }));
    proc.on("error", (err) => this.#log.error(`${child.role} ${child.serial} (pid ${proc.pid})`, err));
    proc.on("exit", (code, signal) => this.#enqueue({ kind: "exit", child, how: signal ? `was killed by ${signal}` : `exited with status ${code}` }));
    return child;
  }
}

// Reads tsgi.toml (DESIGN §4) into a checked configuration: the daemon's own keys at the top,
// `[defaults]` that every site inherits, one `[site.NAME]` per site. Which keys exist and what
// each accepts come from the settings table (src/daemon/settings/), never from a list here.
// Every problem is collected, each one line naming the file, the site (or `[defaults]`, or the
// top level) and the key, so that `tsgi check` shows them all at once. Relative paths resolve
// against the file's folder, not the folder the daemon was started from. Nothing here imports
// the application or the native bridge: `tsgi check` works without the addon.

import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { tsgiError } from "../errors.ts";
import { exposedListener, exposedProblem } from "./allow.ts";
import { isModulePath, splitAppSpec } from "./app.ts";
import { isPackageFile, resolvePackage } from "./app-resolve.ts";
import { settingsFile, settingsTried } from "../project/settings.ts";
import { parseListen, type ListenSpec } from "./listen.ts";
import { DAEMON_SETTINGS, SETTING_LIST, coerce, defaults, type SiteSettings } from "./settings/index.ts";

export interface SiteConfig {
  name: string;
  /** Every site key, coerced: the table's defaults < the top-level daemon keys < [defaults] < [site.NAME]. */
  settings: SiteSettings;
}

export interface DaemonConfig {
  /** The file, absolute. */
  file: string;
  /** The control socket, absolute. */
  control: string;
  /** Absolute, or null for none. */
  pidfile: string | null;
  /** The master's error log: "-" (standard error) or an absolute path. */
  errorLog: string;
  /** In file order. */
  sites: SiteConfig[];
}

const SITE_NAME = /^[A-Za-z0-9_.-]+$/;
const SITE_KEYS = new Map(SETTING_LIST.map((s) => [s.key, s]));
/** The top of the file: the daemon's own keys, and the site keys flagged `daemon` (error-log). */
const TOP_KEYS = new Map([...DAEMON_SETTINGS, ...SETTING_LIST.filter((s) => s.daemon)].map((s) => [s.key, s]));
const TABLES = ["defaults", "site"];
/** Any address of its family: another listener on the same port collides with it. */
const WILDCARDS = new Set(["0.0.0.0", "::"]);
/** Log destinations that are not files (src/log.ts). */
const NOT_A_FILE = new Set(["-", "off"]);

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Date);
}

/** Levenshtein distance: enough to tell a typo from another word. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The candidate a mistyped key most likely meant: at most 2 edits away (1 for short keys). */
function closest(key: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = (key.length >= 5 ? 2 : 1) + 1;
  for (const c of candidates) {
    const d = distance(key.toLowerCase(), c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** The folder a file or socket goes into must exist (tsgi creates no folders). */
function folderProblem(path: string): string | null {
  const folder = dirname(path);
  try {
    return statSync(folder).isDirectory() ? null : `${folder} (the folder of ${path}) is not a folder`;
  } catch {
    return `${folder} (the folder of ${path}) does not exist`;
  }
}

/** Where a value came from: its problems are reported there, once (a [defaults] value is not blamed on every site). */
type Origin = string | null;

class Problems {
  readonly list: string[] = [];
  constructor(readonly file: string) {}

  /** `FILE: WHERE: KEY: text`; WHERE null is the top level. */
  add(where: Origin, key: string | null, text: string): void {
    const line = [this.file, where, key, text].filter((part) => part !== null).join(": ");
    if (!this.list.includes(line)) this.list.push(line);
  }

  unknown(where: Origin, key: string, candidates: Iterable<string>): void {
    const guess = closest(key, candidates);
    this.add(where, key, guess ? `unknown key; did you mean \`${guess}\`?` : "unknown key");
  }
}

/** The keys of one site table (or of [defaults]), each coerced; `bad` holds the keys with a problem, left out of `values`. */
function siteKeys(p: Problems, where: string, table: Table, inDefaults: boolean): { values: Table; bad: Set<string> } {
  const out: Table = {};
  const bad = new Set<string>();
  for (const [key, raw] of Object.entries(table)) {
    const setting = SITE_KEYS.get(key);
    if (!setting) {
      if (DAEMON_SETTINGS.some((s) => s.key === key)) p.add(where, key, "only at the top of the file: it belongs to the daemon, not to a site");
      else p.unknown(where, key, SITE_KEYS.keys());
    } else if (inDefaults && key === "app") {
      p.add(where, key, "not allowed in [defaults]: each site names its own application");
    } else {
      const r = coerce(setting, raw);
      if ("error" in r) {
        p.add(where, key, r.error);
        bad.add(key);
      } else {
        out[key] = r.value;
      }
    }
  }
  return { values: out, bad };
}

/** A site's name as problems show it. */
function siteWhere(name: string): string {
  return SITE_NAME.test(name) ? `site ${name}` : `site ${JSON.stringify(name)}`;
}

interface Bound {
  site: string;
  text: string;
  spec: ListenSpec;
}

function sameSocket(a: ListenSpec, b: ListenSpec): boolean {
  if ("path" in a || "path" in b) return "path" in a && "path" in b && a.path === b.path;
  // Port 0: the kernel chooses a free port for each.
  if (a.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || WILDCARDS.has(a.host) || WILDCARDS.has(b.host);
}

class Reader {
  readonly file: string;
  readonly dir: string;
  readonly p: Problems;

  constructor(file: string) {
    this.file = resolve(file);
    this.dir = dirname(this.file);
    this.p = new Problems(this.file);
  }

  /** A path from the file, absolute; its folder checked when `where` is given. */
  path(value: string, where: Origin | undefined, key: string): string {
    const abs = resolve(this.dir, value);
    const problem = where === undefined ? null : folderProblem(abs);
    if (problem) this.p.add(where!, key, problem);
    return abs;
  }

  /** A log destination: "-" and "off" as written, a file made absolute. */
  log(value: string, where: Origin | undefined, key: string): string {
    if (NOT_A_FILE.has(value)) return value;
    const abs = this.path(value, where, key);
    try {
      if (where !== undefined && statSync(abs).isDirectory()) this.p.add(where, key, `${abs} is a folder, not a file`);
    } catch {
      // Not there yet: the log creates it.
    }
    return abs;
  }

  read(): DaemonConfig | null {
    const p = this.p;
    let doc: Table;
    try {
      doc = parse(readFileSync(this.file, "utf8"));
    } catch (err) {
      if (err instanceof TomlError) {
        const reason = err.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
        p.list.push(`${this.file}:${err.line}:${err.column}: TOML syntax error: ${reason}`);
      } else {
        const e = err as NodeJS.ErrnoException;
        p.add(null, null, e.code === "ENOENT" ? "no such file" : `cannot be read: ${e.code ?? e.message}`);
      }
      return null;
    }

    // The top level.
    const top: Table = {};
    let defaultsTable: Table = {};
    const siteTables: [string, Table][] = [];
    let badSite = false;
    for (const [key, raw] of Object.entries(doc)) {
      if (key === "defaults") {
        if (isTable(raw)) defaultsTable = raw;
        else p.add("[defaults]", null, "not a table: write [defaults] followed by site keys");
      } else if (key === "site") {
        if (!isTable(raw)) {
          p.add(null, key, "not a table: write each site as [site.NAME] followed by its keys");
          badSite = true;
          continue;
        }
        for (const [name, table] of Object.entries(raw)) {
          if (!SITE_NAME.test(name)) p.add(siteWhere(name), null, 'a site name may only contain letters, digits, "_", "." and "-"');
          if (isTable(table)) siteTables.push([name, table]);
          else p.add(siteWhere(name), null, `not a table: write the site as [site.${name}] followed by its keys`);
          badSite ||= !isTable(table);
        }
      } else if (TOP_KEYS.has(key)) {
        const r = coerce(TOP_KEYS.get(key)!, raw);
        if ("error" in r) p.add(null, key, r.error);
        else top[key] = r.value;
      } else if (SITE_KEYS.has(key)) {
        p.add(null, key, "a site key: put it under [defaults] (for every site) or under [site.NAME]");
      } else if (isTable(raw)) {
        const guess = closest(key, TABLES);
        p.add(null, `[${key}]`, guess ? `unknown table; did you mean [${guess}]?` : "unknown table; the tables are [defaults] and [site.NAME]");
      } else {
        p.unknown(null, key, [...TOP_KEYS.keys(), ...TABLES]);
      }
    }
    if (siteTables.length === 0 && !badSite) p.add(null, null, "no site: add at least one [site.NAME] with its app and listen");
    const control = this.path((top.control as string | undefined) ?? `${basename(this.file, ".toml")}.ctl`, null, "control");
    const pidfile = typeof top.pidfile === "string" ? this.path(top.pidfile, null, "pidfile") : null;
    const errorLog = this.log((top["error-log"] as string | undefined) ?? "-", null, "error-log");
    // A site logs where the daemon does unless it says otherwise: the top-level value of a
    // `daemon` site key is every site's default, below [defaults].
    const inherited: Table = {};
    for (const s of SETTING_LIST) if (s.daemon && s.key in top) inherited[s.key] = top[s.key];
    if ("error-log" in top) inherited["error-log"] = errorLog;

    const shared = siteKeys(p, "[defaults]", defaultsTable, true);
    const sites: SiteConfig[] = [];
    const bound: Bound[] = [];
    for (const [name, table] of siteTables) {
      const where = siteWhere(name);
      const own = siteKeys(p, where, table, false);
      const values: Table = { ...defaults(), ...inherited, ...shared.values, ...own.values };
      const bad = (key: string) => own.bad.has(key) || shared.bad.has(key);
      /** Where a key's value was written, to report its problems there once; undefined: a value already checked (a default, or the top level). */
      const origin = (key: string): Origin | undefined => (key in own.values ? where : key in shared.values ? "[defaults]" : undefined);

      const cwd = resolve(this.dir, (values.cwd as string | null) ?? ".");
      values.cwd = cwd;
      const cwdWhere = origin("cwd");
      if (cwdWhere !== undefined) {
        try {
          if (!statSync(cwd).isDirectory()) p.add(cwdWhere, "cwd", `${cwd} is not a folder`);
        } catch {
          p.add(cwdWhere, "cwd", `${cwd} does not exist`);
        }
      }

      if (typeof values.settings === "string" && typeof values.app !== "string" && !bad("settings") && !bad("cwd")) {
        // A site without app serves its settings' TSGI_APPLICATION: the module as the workers
        // will look for it (check runs no project code), a file of the project under cwd, else
        // a package. With app, settings is only TSGI_SETTINGS_MODULE, whatever the app makes of it.
        const module = values.settings;
        if (settingsFile(module, cwd) === null) {
          let found = !isModulePath(module);
          if (found) {
            try {
              resolvePackage(module, cwd);
            } catch {
              found = false;
            }
          }
          if (!found) p.add(origin("settings") ?? where, "settings", `no module ${module}: ${settingsTried(module, cwd)}${isModulePath(module) ? "" : ", and no package of that name"}`);
        }
      }

      if (typeof values.app !== "string") {
        // Without app, the settings module's TSGI_APPLICATION names it (read by the workers: check runs no project code).
        if (!bad("app") && typeof values.settings !== "string") {
          p.add(where, "app", 'missing: every site needs app = "MODULE:CALLABLE", or settings = "MODULE" whose TSGI_APPLICATION names it');
        }
      } else {
        const { module, callable } = splitAppSpec(values.app);
        // A package specifier stays as written: the worker resolves it from its cwd. So does
        // a package's file named with its extension (mypkg/lib/app.js), when no file of the
        // project has that path.
        if (isModulePath(module) && !(!existsSync(resolve(this.dir, module)) && isPackageFile(module, cwd))) {
          const abs = resolve(this.dir, module);
          values.app = `${abs}:${callable}`;
          try {
            if (statSync(abs).isDirectory()) p.add(where, "app", `${abs} is a folder, not a module`);
          } catch {
            p.add(where, "app", `${abs} does not exist`);
          }
        }
      }

      const written = values.listen as string[];
      if (written.length === 0 && !bad("listen")) {
        p.add(where, "listen", 'missing: every site needs at least one, listen = ["PROTO:HOST:PORT"] or ["PROTO:unix:PATH"]');
      }
      const listen: string[] = [];
      const specs: ListenSpec[] = [];
      for (const text of written) {
        let spec: ListenSpec;
        try {
          spec = parseListen(text);
        } catch (err) {
          p.add(origin("listen") ?? where, "listen", (err as Error).message);
          continue;
        }
        if ("path" in spec) {
          const path = this.path(spec.path, origin("listen"), "listen");
          spec = { ...spec, path, text: `${spec.protocol}:unix:${path}` };
        }
        listen.push(spec.text);
        specs.push(spec);
        bound.push({ site: name, text: spec.text, spec });
      }
      values.listen = listen;
      // Beyond loopback, who may connect is said, never assumed (DESIGN §4).
      const exposed = exposedListener(specs);
      if (exposed && origin("allow") === undefined && !bad("allow")) {
        p.add(where, "allow", `missing: ${exposedProblem(exposed, { key: "allow", example: 'allow = ["10.0.0.5"]', everyone: 'allow = ["0.0.0.0/0", "::/0"]' })}`);
      }
      if (values.status && values.status === values.metrics) {
        p.add(origin("metrics") ?? where, "metrics", `the same path as status (${JSON.stringify(values.status)}): give each its own`);
      }

      for (const key of ["access-log", "error-log"]) {
        if (typeof values[key] === "string") values[key] = this.log(values[key] as string, origin(key), key);
      }
      sites.push({ name, settings: values as SiteSettings });
    }

    for (let i = 0; i < bound.length; i++) {
      const b = bound[i]!;
      const a = bound.slice(0, i).find((earlier) => sameSocket(earlier.spec, b.spec));
      if (a) p.add(siteWhere(b.site), "listen", `${b.text} is the same socket as ${a.text} of site ${a.site}`);
    }

    if (p.list.length > 0) return null;
    // The error log cannot be turned off: "off" is the standard error (src/log.ts), for a site too.
    return { file: this.file, control, pidfile, errorLog: errorLog === "off" ? "-" : errorLog, sites };
  }
}

/** Reads and checks the file: the configuration, or null and every problem found. */
export function checkConfig(file: string): { config: DaemonConfig | null; problems: string[] } {
  const reader = new Reader(file);
  const config = reader.read();
  return { config, problems: reader.p.list };
}

/** Reads the file; throws TSGI_ERR_CONFIG_FILE listing every problem in `details.problems`. */
export function loadConfig(file: string): DaemonConfig {
  const { config, problems } = checkConfig(file);
  if (config) return config;
  throw tsgiError("TSGI_ERR_CONFIG_FILE", {
    file: resolve(file),
    count: problems.length,
    problems,
    problem: problems[0],
    more: problems.length > 1 ? ` (and ${problems.length - 1} more)` : "",
  });
}

/**
 * The control socket of the master running `file`, for `tsgi status|reload|stop`: read
 * from the file's top-level `control` alone, so it still answers while the rest of the file
 * is being edited and has problems.
 */
export function loadControlPath(file: string): string {
  const abs = resolve(file);
  let control: unknown;
  try {
    control = (parse(readFileSync(abs, "utf8")) as Record<string, unknown>).control;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw tsgiError("TSGI_ERR_CONFIG_FILE", { file: abs, count: 1, problems: [`${abs}: no such file`], problem: `${abs}: no such file`, more: "" });
    }
    control = undefined;
  }
  return resolve(dirname(abs), typeof control === "string" ? control : `${basename(abs, ".toml")}.ctl`);
}

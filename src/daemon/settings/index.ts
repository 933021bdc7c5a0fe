// Every site setting, declared once (gunicorn's way): its key in tsgi.toml, its type and
// default, its check and its summary. The `tsgi serve` flags, the TOML validation of
// `tsgi check` and the settings reference all derive from this table.

import { LOOPBACK_ALLOW, allowProblem } from "../allow.ts";

export type SettingType = "string" | "int" | "bool" | "duration" | "size" | "list" | "mode" | "table";

/** The TypeScript type of each kind of value, once coerced. */
interface ValueOf {
  string: string | null;
  int: number;
  bool: boolean;
  duration: number;
  size: number;
  list: string[];
  mode: number;
  table: Record<string, string>;
}

export interface Setting {
  key: string;
  type: SettingType;
  /** As a user writes it in tsgi.toml ("60s", "64k", "0660"); `defaults()` coerces it. */
  default: unknown;
  summary: string;
  /** Inclusive bounds for int/duration/size values. */
  min?: number;
  max?: number;
  /** Not a `tsgi serve` flag (the positional APP is `app`). */
  fileOnly?: boolean;
  /** A key of the daemon as a whole (outside `[site.*]` in tsgi.toml); a `tsgi serve` flag too. */
  daemon?: boolean;
  /** Beyond the type: the problem with a coerced value (what it allows), or null. */
  check?: (value: never) => string | null;
}

const MiB = 1024 * 1024;

/** `status` and `metrics`: "" (off) or a path the site's requests may have after the mount. */
function pagePath(value: string): string | null {
  return value === "" || /^\/[^\s?#]*$/.test(value) ? null : `must be "" (off) or a path such as "/tsgi-status", got ${JSON.stringify(value)}`;
}

export const SETTINGS = [
  { key: "app", type: "string", default: null, summary: "the application, MODULE:CALLABLE (`:application` may be left out)", fileOnly: true },
  { key: "listen", type: "list", default: [], summary: "where to listen: PROTO:HOST:PORT or PROTO:unix:PATH, PROTO one of fastcgi, uwsgi, http (repeatable)" },
  { key: "settings", type: "string", default: null, summary: "TSGI_SETTINGS_MODULE for this site's workers" },
  { key: "socket-mode", type: "mode", default: "0660", summary: "permissions of the site's unix sockets (octal)" },
  { key: "socket-owner", type: "string", default: null, summary: "owner of the site's unix sockets (default: the site's user)" },
  { key: "socket-group", type: "string", default: null, summary: "group of the site's unix sockets (default: the site's group)" },
  { key: "processes", type: "int", default: 1, min: 1, max: 1024, summary: "workers in the site's process group" },
  { key: "ondemand", type: "bool", default: false, summary: "start no worker until a connection waits (then up to `processes`); workers idle for inactivity-timeout stop (PHP-FPM's pm = ondemand)" },
  { key: "concurrency", type: "int", default: 100, min: 1, max: 65535, summary: "requests in the application at once per worker; more wait, and the worker stops accepting" },
  { key: "cwd", type: "string", default: null, summary: "working directory of the workers (default: tsgi.toml's folder; for `tsgi serve`, the current one)" },
  { key: "env", type: "table", default: {}, summary: "environment variables added for the workers (NAME=VALUE, repeatable)" },
  { key: "clear-env", type: "bool", default: false, summary: "start workers from an empty environment plus `env` (as PHP-FPM does), keeping only `PATH` unless `env` sets it" },
  { key: "user", type: "string", default: null, summary: "user the workers run as (when started as root)" },
  { key: "group", type: "string", default: null, summary: "group the workers run as (when started as root)" },
  { key: "run-as-root", type: "bool", default: false, summary: "let workers run as root when started as root without `user` (no warning)" },
  { key: "mount", type: "string", default: "", summary: "SCRIPT_NAME of the site: the path prefix it is served under" },
  { key: "max-requests", type: "int", default: 0, min: 0, summary: "recycle a worker after this many requests, with up to 10% jitter (0 = never)" },
  { key: "request-timeout", type: "duration", default: "60s", min: 0, summary: "abort a request running longer (504 if nothing was sent; 0 = never)" },
  { key: "graceful-timeout", type: "duration", default: "30s", min: 0, summary: "how long reload and stop wait for requests in flight" },
  { key: "header-timeout", type: "duration", default: "10s", min: 0, summary: "how long a connection may take to deliver a complete request head" },
  { key: "inactivity-timeout", type: "duration", default: "0", min: 0, summary: "restart a worker idle this long after its last request (0 = never); with ondemand, stop it (0 = 10s)" },
  { key: "max-connections", type: "int", default: 1024, min: 0, summary: "connections open at once per worker and listener (0 = no limit)" },
  { key: "max-params", type: "size", default: "64k", min: 1, max: MiB, summary: "largest params/vars block of a request, bytes (up to 1 MiB)" },
  { key: "max-body", type: "size", default: 0, min: 0, summary: "largest request body, bytes; over it 413 (0 = no limit)" },
  { key: "access-log", type: "string", default: "-", summary: 'where the access log goes: "-" (standard output), a file, or "off"; files reopen on SIGUSR1' },
  { key: "error-log", type: "string", default: "-", summary: 'where the error log goes: "-" (standard error) or a file; files reopen on SIGUSR1', daemon: true },
  { key: "debug", type: "bool", default: false, summary: "show exceptions to the client in 500 responses" },
  { key: "allow", type: "list", default: LOOPBACK_ALLOW, check: allowProblem, summary: 'peers that may connect to the TCP listeners (others are closed at accept), and REMOTE_ADDRs that may see the status page and metrics: addresses or networks, IPv4 or IPv6 ("10.0.0.5", "10.0.0.0/8", "fd00::/8"; repeatable; default loopback); a TCP listener on a non-loopback address needs it set' },
  { key: "status", type: "string", default: "", check: pagePath, summary: 'path (after the mount) of the site\'s status page, answered by tsgi to a REMOTE_ADDR in allow ("/tsgi-status"; `?json` for JSON); off ("") by default, as PHP-FPM\'s pm.status_path: see docs/status.md' },
  { key: "metrics", type: "string", default: "", check: pagePath, summary: 'path (after the mount) of the site\'s Prometheus metrics, answered by tsgi to a REMOTE_ADDR in allow ("/tsgi-metrics"); off ("") by default: see docs/status.md' },
] as const satisfies readonly Setting[];

/**
 * Keys of the daemon as a whole that are not site keys: only at the top of tsgi.toml, never
 * `tsgi serve` flags. (`error-log`, a site key flagged `daemon`, is accepted there too.)
 */
export const DAEMON_SETTINGS: readonly Setting[] = [
  { key: "control", type: "string", default: null, fileOnly: true, summary: "the control socket through which `tsgi status`, `reload` and `stop` reach the master (default: beside the file, /etc/tsgi/tsgi.toml → /etc/tsgi/tsgi.ctl)" },
  { key: "pidfile", type: "string", default: null, fileOnly: true, summary: "a file the master writes its pid to" },
];

/** The table as plain declarations, to walk. */
export const SETTING_LIST: readonly Setting[] = SETTINGS;

/** A site's settings once coerced, keyed as in tsgi.toml (derived from SETTINGS: no second list). */
export type SiteSettings = { [S in (typeof SETTINGS)[number] as S["key"]]: ValueOf[S["type"]] };

/** "60s", "500ms", "2m", "1h", or a plain number of seconds; to milliseconds. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value * 1000 : null;
  if (typeof value !== "string") return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!m) return null;
  const n = parseFloat(m[1]!);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"];
  return Math.round(n * unit);
}

/** "64k", "1m", "1g" (binary units) or a plain number of bytes. */
export function parseSize(value: unknown): number | null {
  if (typeof value === "number") return Number.isInteger(value) && value >= 0 ? value : null;
  if (typeof value !== "string") return null;
  const m = /^\s*(\d+)\s*([kmg]i?b?)?\s*$/i.exec(value);
  if (!m) return null;
  const unit = { "": 1, k: 1024, m: MiB, g: 1024 * MiB }[(m[2]?.[0] ?? "").toLowerCase() as "" | "k" | "m" | "g"];
  return parseInt(m[1]!, 10) * unit;
}

/**
 * Converts a raw value (from TOML or a command-line string) to the setting's type, or
 * returns the message that names the setting and what it allows.
 */
export function coerce(setting: Setting, raw: unknown, fromFlag = false): { value: unknown } | { error: string } {
  const r = coerceType(setting, raw, fromFlag);
  if ("error" in r || !setting.check) return r;
  const problem = (setting.check as (value: unknown) => string | null)(r.value);
  return problem === null ? r : { error: `${setting.key} ${problem}` };
}

function coerceType(setting: Setting, raw: unknown, fromFlag: boolean): { value: unknown } | { error: string } {
  const bad = (allowed: string) => ({ error: `${setting.key} must be ${allowed}, got ${JSON.stringify(raw)}` });
  const bounded = (n: number, what: string) => {
    if (setting.min !== undefined && n < setting.min) return bad(`${what} >= ${setting.min}`);
    if (setting.max !== undefined && n > setting.max) return bad(`${what} <= ${setting.max}`);
    return { value: n };
  };
  switch (setting.type) {
    case "string":
      return typeof raw === "string" ? { value: raw } : bad("a string");
    case "int": {
      const n = fromFlag && typeof raw === "string" && /^-?\d+$/.test(raw) ? Number(raw) : raw;
      return typeof n === "number" && Number.isInteger(n) ? bounded(n, "an integer") : bad("an integer");
    }
    case "bool": {
      if (typeof raw === "boolean") return { value: raw };
      if (fromFlag && (raw === "true" || raw === "false")) return { value: raw === "true" };
      return bad("true or false");
    }
    case "duration": {
      const ms = parseDuration(raw);
      return ms === null ? bad('a duration such as "30s", "500ms" or "2m"') : bounded(ms, "a duration");
    }
    case "size": {
      const n = parseSize(raw);
      return n === null ? bad('a size in bytes such as 65536 or "64k"') : bounded(n, "a size");
    }
    case "mode": {
      const s = typeof raw === "number" ? raw.toString(8) : raw;
      return typeof s === "string" && /^0?[0-7]{3}$/.test(s) ? { value: parseInt(s, 8) } : bad('an octal mode such as "0660"');
    }
    case "list":
      if (typeof raw === "string") return { value: [raw] };
      return Array.isArray(raw) && raw.every((x) => typeof x === "string") ? { value: raw } : bad("a list of strings");
    case "table": {
      // On the command line: NAME=VALUE, repeatable (a list of them).
      if (fromFlag && (typeof raw === "string" || Array.isArray(raw))) {
        const out: Record<string, string> = {};
        for (const item of typeof raw === "string" ? [raw] : raw) {
          const eq = typeof item === "string" ? item.indexOf("=") : -1;
          if (eq <= 0) return bad("NAME=VALUE");
          out[(item as string).slice(0, eq)] = (item as string).slice(eq + 1);
        }
        return { value: out };
      }
      return raw !== null && typeof raw === "object" && !Array.isArray(raw) && Object.values(raw).every((v) => typeof v === "string")
        ? { value: raw }
        : bad("a table of string values");
    }
  }
}

/** The defaults of every setting, coerced, keyed as in tsgi.toml. */
export function defaults(): SiteSettings {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS as readonly Setting[]) {
    const r = s.default === null ? { value: null } : coerce(s, structuredClone(s.default));
    if ("error" in r) throw new Error(`the default of ${s.key} is invalid: ${r.error}`);
    out[s.key] = r.value;
  }
  return out as SiteSettings;
}

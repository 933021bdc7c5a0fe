// The settings reference (docs/settings.md), generated from the tables in ./index.ts so that
// the documented keys are the accepted ones; `npm run docs:settings` writes the file, and
// test/unit/settings-reference.test.ts fails when it is stale.

import { DAEMON_SETTINGS, SETTING_LIST, type Setting } from "./index.ts";

/** What a key accepts, in a user's words. */
function typeOf(s: Setting): string {
  const range = s.min !== undefined && s.max !== undefined ? ` ${s.min}–${s.max}` : s.min !== undefined ? ` ≥ ${s.min}` : "";
  switch (s.type) {
    case "string":
      return "string";
    case "int":
      return `integer${range}`;
    case "bool":
      return "boolean";
    case "duration":
      return "duration";
    case "size":
      return "size";
    case "list":
      return "list of strings";
    case "mode":
      return "octal mode";
    case "table":
      return "table of strings";
  }
}

/** The default as a user writes it in tsgi.toml (declared that way), or "unset". */
function defaultOf(s: Setting): string {
  if (s.default === null) return "unset";
  const toml = typeof s.default === "object" && !Array.isArray(s.default) ? "{}" : JSON.stringify(s.default);
  return `\`${toml}\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

function table(settings: readonly Setting[]): string[] {
  const lines = ["| key | type | default | `tsgi serve` flag | what it does |", "|---|---|---|---|---|"];
  for (const s of settings) {
    const flag = s.fileOnly ? "—" : s.type === "bool" ? `\`--${s.key}\`` : `\`--${s.key} <value>\``;
    lines.push(`| ${[`\`${s.key}\``, typeOf(s), defaultOf(s), flag, cell(s.summary)].join(" | ")} |`);
  }
  return lines;
}

export function settingsReference(): string {
  const top = [...DAEMON_SETTINGS, ...SETTING_LIST.filter((s) => s.daemon)];
  return [
    "# tsgi.toml settings",
    "",
    "Generated from `src/daemon/settings/` by `npm run docs:settings`; do not edit by hand.",
    "`tsgi check -c tsgi.toml` checks a file against these tables and lists every problem.",
    "",
    "```toml",
    'error-log = "/var/log/tsgi/error.log"',
    "",
    "[defaults]                  # every site inherits these",
    "processes = 2",
    "",
    "[site.blog]",
    'app = "blog/tsgi.ts:application"',
    'listen = ["fastcgi:unix:/run/tsgi/blog.sock", "uwsgi:127.0.0.1:3031"]',
    'cwd = "blog"',
    'env = { NODE_ENV = "production" }',
    "```",
    "",
    "Relative paths (`cwd`, `app`'s module when it is a file, unix sockets in `listen`, log",
    "files, `control`, `pidfile`) are relative to the folder of tsgi.toml. A duration is",
    'a number of seconds or a string such as `"500ms"`, `"30s"`, `"2m"`, `"1h"`; a size is a',
    'number of bytes or a string such as `"64k"`, `"1m"`, `"1g"`; a mode is an octal string',
    'such as `"0660"`.',
    "",
    "## Top level",
    "",
    "Outside any table: the daemon's own keys. A site key that is also here (`error-log`) is",
    "every site's default as well.",
    "",
    ...table(top),
    "",
    "## Sites: `[site.NAME]` and `[defaults]`",
    "",
    "Each `[site.NAME]` (NAME: letters, digits, `_`, `.`, `-`) is one process group and needs",
    "`app` and at least one `listen`. `[defaults]` takes any site key but `app`; a site's own",
    "value replaces the one from `[defaults]` (a table such as `env` included, not merged).",
    "Every site key but `app` is also a `tsgi serve` flag (`app` is its positional argument).",
    "",
    ...table(SETTING_LIST),
    "",
  ].join("\n");
}

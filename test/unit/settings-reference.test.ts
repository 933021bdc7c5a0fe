// docs/settings.md is the settings tables as src/daemon/settings/reference.ts writes them, and
// the declared defaults (written as a user writes them) coerce to the values the code uses.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DAEMON_SETTINGS, SETTING_LIST, defaults } from "../../src/daemon/settings/index.ts";
import { settingsReference } from "../../src/daemon/settings/reference.ts";

describe("the settings reference", () => {
  it("docs/settings.md is settingsReference()", () => {
    const doc = readFileSync(join(import.meta.dirname, "..", "..", "docs", "settings.md"), "utf8");
    expect(doc, "docs/settings.md is stale: run `npm run docs:settings`").toBe(settingsReference());
  });

  it("has a row for every key of both tables, defaults as written in tsgi.toml", () => {
    const doc = settingsReference();
    for (const s of [...DAEMON_SETTINGS, ...SETTING_LIST]) expect(doc).toMatch(new RegExp(`^\\| \`${s.key}\` \\|`, "m"));
    expect(doc).toMatch(/^\| `request-timeout` \| duration \| `"60s"` \| `--request-timeout <value>` \|/m);
    expect(doc).toMatch(/^\| `socket-mode` \| octal mode \| `"0660"` \|/m);
    expect(doc).toMatch(/^\| `max-params` \| size \| `"64k"` \|/m);
    expect(doc).toMatch(/^\| `app` \| string \| unset \| — \|/m);
    expect(doc).toMatch(/^\| `pidfile` \| string \| unset \| — \|/m);
  });

  it("declared defaults coerce to milliseconds, bytes and modes", () => {
    const d = defaults();
    expect(d["request-timeout"]).toBe(60_000);
    expect(d["graceful-timeout"]).toBe(30_000);
    expect(d["header-timeout"]).toBe(10_000);
    expect(d["inactivity-timeout"]).toBe(0);
    expect(d["max-params"]).toBe(64 * 1024);
    expect(d["socket-mode"]).toBe(0o660);
  });
});

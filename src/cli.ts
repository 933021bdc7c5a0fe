// The `tsgi` command line (DESIGN §4): subcommands parsed by commander, every site key a
// `tsgi serve` flag, derived from the settings declared in src/daemon/settings/.

import { Command, Option } from "commander";
import { resolve } from "node:path";
import { basename } from "node:path";
import { splitAppSpec } from "./daemon/app.ts";
import { parseListen } from "./daemon/listen.ts";
import type { PoolConfig } from "./daemon/pool.ts";
import { serveSite } from "./daemon/serve.ts";
import { SETTINGS, coerce, defaults } from "./daemon/settings/index.ts";

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Settings (keyed as in tsgi.toml) to what a pool needs. */
export function poolConfig(site: string, values: Record<string, unknown>): PoolConfig {
  return {
    site,
    app: values.app as string,
    cwd: resolve((values.cwd as string | null) ?? "."),
    listen: values.listen as string[],
    mount: values.mount as string,
    debug: values.debug as boolean,
    maxParams: values["max-params"] as number,
    maxBody: values["max-body"] as number,
    requestTimeout: values["request-timeout"] as number,
    headerTimeout: values["header-timeout"] as number,
    gracefulTimeout: values["graceful-timeout"] as number,
    maxConnections: values["max-connections"] as number,
    processes: values.processes as number,
    socketMode: values["socket-mode"] as number,
    user: values.user as string | null,
    group: values.group as string | null,
    socketOwner: values["socket-owner"] as string | null,
    socketGroup: values["socket-group"] as string | null,
    env: values.env as Record<string, string>,
    clearEnv: values["clear-env"] as boolean,
    settings: values.settings as string | null,
  };
}

export function program(): Command {
  const cli = new Command("tsgi").description("serve TypeScript/JavaScript applications behind nginx and Apache over FastCGI and uwsgi");

  const serve = cli
    .command("serve")
    .description("run one site from the command line: every site key of tsgi.toml is also a flag")
    .argument("<app>", "the application, MODULE:CALLABLE (e.g. site/tsgi.ts:application)")
    .option("--name <name>", "the site's name in logs and process titles");
  for (const s of SETTINGS) {
    if (s.fileOnly) continue;
    const flag = s.type === "bool" ? `--${s.key}` : `--${s.key} <value>`;
    const option = new Option(flag, s.summary);
    if (s.type === "list") option.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    serve.addOption(option);
  }
  serve.action(async (app: string, flags: Record<string, unknown>) => {
    const values = defaults();
    values.app = app;
    for (const s of SETTINGS) {
      const raw = flags[camel(s.key)];
      if (raw === undefined || s.fileOnly) continue;
      const r = coerce(s, raw, true);
      if ("error" in r) cli.error(`tsgi serve: ${r.error}`);
      else values[s.key] = r.value;
    }
    const listen = values.listen as string[];
    if (listen.length === 0) cli.error("tsgi serve: give at least one --listen PROTO:HOST:PORT or PROTO:unix:PATH");
    for (const l of listen) {
      try {
        parseListen(l);
      } catch (err) {
        cli.error(`tsgi serve: ${(err as Error).message}`);
      }
    }
    const name = (flags.name as string | undefined) ?? basename(splitAppSpec(app).module).replace(/\.[^.]+$/, "");
    await serveSite(poolConfig(name, values));
  });

  return cli;
}

export async function main(argv: string[]): Promise<void> {
  await program().parseAsync(argv);
}

// The `tsgi` command line (DESIGN §4): subcommands parsed by commander, every site key a
// `tsgi serve` flag, derived from the settings declared in src/daemon/settings/. Nothing here
// loads the native bridge: `--help` and `--version` work without it.

import { Command, Option } from "commander";
import { readFileSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { exposedListener, exposedProblem } from "./daemon/allow.ts";
import { splitAppSpec } from "./daemon/app.ts";
import { parseListen } from "./daemon/listen.ts";
import type { ControlReply, ControlRequest } from "./daemon/control.ts";
import type { SiteDefinition } from "./daemon/master.ts";
import { SETTING_LIST, coerce, defaults, type SiteSettings } from "./daemon/settings/index.ts";
import { ROOT } from "./paths.ts";

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Settings (keyed as in tsgi.toml) to a site of the master: the same keys, `cwd` made absolute. */
export function siteDefinition(name: string, values: SiteSettings): SiteDefinition {
  return { name, settings: { ...values, cwd: resolve(values.cwd ?? ".") } };
}

export function version(): string {
  return (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

export function program(): Command {
  const cli = new Command("tsgi")
    .description("serve TypeScript/JavaScript applications behind nginx and Apache over FastCGI and uwsgi")
    .version(version(), "-V, --version", "print tsgi's version");

  const serve = cli
    .command("serve")
    .description("run one site from the command line: every site key of tsgi.toml is also a flag")
    .argument("<app>", "the application, MODULE:CALLABLE (e.g. site/tsgi.ts:application)")
    .option("--name <name>", "the site's name in logs and process titles");
  for (const s of SETTING_LIST) {
    if (s.fileOnly) continue;
    const flag = s.type === "bool" ? `--${s.key}` : `--${s.key} <value>`;
    const option = new Option(flag, s.summary);
    if (s.type === "list" || s.type === "table") option.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    serve.addOption(option);
  }
  serve.action(async (app: string, flags: Record<string, unknown>) => {
    const values = defaults() as Record<string, unknown>;
    values.app = app;
    for (const s of SETTING_LIST) {
      const raw = flags[camel(s.key)];
      if (raw === undefined || s.fileOnly) continue;
      const r = coerce(s, raw, true);
      if ("error" in r) cli.error(`tsgi serve: TSGI_ERR_CONFIG_INVALID: ${r.error}`);
      else values[s.key] = r.value;
    }
    const listen = values.listen as string[];
    if (listen.length === 0) cli.error("tsgi serve: TSGI_ERR_CONFIG_INVALID: listen: give at least one --listen PROTO:HOST:PORT or PROTO:unix:PATH");
    const specs = listen.map((l) => {
      try {
        return parseListen(l);
      } catch (err) {
        return cli.error(`tsgi serve: ${(err as Error & { code?: string }).code}: ${(err as Error).message}`);
      }
    });
    const exposed = exposedListener(specs);
    if (exposed && flags.allow === undefined) {
      cli.error(`tsgi serve: TSGI_ERR_CONFIG_INVALID: allow: missing: ${exposedProblem(exposed, { key: "--allow", example: "--allow 10.0.0.5", everyone: "--allow 0.0.0.0/0 --allow ::/0" })}`);
    }
    if (values.status && values.status === values.metrics) cli.error("tsgi serve: TSGI_ERR_CONFIG_INVALID: metrics: the same path as --status: give each its own");
    const name = (flags.name as string | undefined) ?? basename(splitAppSpec(app).module).replace(/\.[^.]+$/, "");
    // Loaded only now: it needs the native bridge.
    const { serveSite } = await import("./daemon/serve.ts");
    await serveSite(siteDefinition(name, values as SiteSettings));
  });

  cli
    .command("runserver")
    .description("serve the project over HTTP for development: its settings' TSGI_APPLICATION, restarted on a source change, errors shown in the browser (never for production)")
    .argument("[addrport]", "PORT, ADDR:PORT or [IPv6]:PORT", "127.0.0.1:8000")
    .option("--settings <module>", "the settings module (default: TSGI_SETTINGS_MODULE, else tsgi.toml's sites' settings, else the project's one DIR/settings.ts)")
    .option("--root <dir>", "the project root: module paths start here (default: the working directory)")
    .action(async (addrport: string, flags: { settings?: string; root?: string }) => {
      // Loaded only now: it needs the native bridge.
      const { runserver } = await import("./project/runserver.ts");
      await runserver({ addrport, settings: flags.settings, root: flags.root, version: version() });
    });

  cli
    .command("check")
    .description("check a tsgi.toml: every problem on its own line (with its site and key), exit 1 if any")
    .option("-c, --config <file>", "the file to check", "tsgi.toml")
    .action(async (flags: { config: string }) => {
      const { checkConfig } = await import("./daemon/config.ts");
      const { config, problems } = checkConfig(flags.config);
      if (!config) {
        for (const problem of problems) process.stderr.write(`${problem}\n`);
        process.exitCode = 1;
        return;
      }
      const names = config.sites.map((s) => s.name);
      process.stdout.write(`${flags.config}: ${names.length} site${names.length === 1 ? "" : "s"}, no problems (${names.join(", ")})\n`);
    });

  cli
    .command("conf")
    .description("print the nginx, Apache or systemd configuration that matches a site of a tsgi.toml")
    .argument("<front>", "nginx, apache or systemd")
    .argument("<site>", "the site's NAME, as in [site.NAME]")
    .option("-c, --config <file>", "the configuration file", "tsgi.toml")
    .option("--listen <entry>", "the listen entry the front server connects to: its number (1 = the first) or its text (default: FastCGI, then uwsgi, then HTTP; unix sockets first)")
    .option("--port <port>", "the port the front server listens on", "80")
    .option("--server-name <name>", "nginx server_name / Apache ServerName")
    .option("--apache-modules <dir>", "Apache's module folder for LoadModule (default: the first of Debian's, RHEL's, openSUSE's, a source build's that exists here)")
    .action(async (front: string, site: string, flags: { config: string; listen?: string; port: string; serverName?: string; apacheModules?: string }) => {
      const { tsgiError } = await import("./errors.ts");
      const port = Number(flags.port);
      if (!/^\d{1,5}$/.test(flags.port) || port < 1 || port > 65535) {
        throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: "--port", reason: `a port from 1 to 65535, got ${JSON.stringify(flags.port)}` });
      }
      const { loadConfig } = await import("./daemon/config.ts");
      const conf = await import("./daemon/front-conf.ts");
      const { BIN } = await import("./paths.ts");
      // Before the file is read: a mistyped front is named even when the file has problems.
      conf.frontKind(front);
      const text = conf.frontConf(front, loadConfig(flags.config), site, {
        listen: flags.listen,
        port,
        serverName: flags.serverName,
        apacheModules: flags.apacheModules,
        execPath: process.execPath,
        bin: BIN,
        version: version(),
      });
      process.stdout.write(text);
    });

  cli
    .command("startproject")
    .description("write a new project: package.json, tsgi.toml, settings, the application, deploy/ files for nginx, Apache and systemd")
    .argument("<name>", "the project's name: an identifier (its package folder and its site)")
    .argument("[dir]", "the project root (default: ./NAME); never overwritten")
    .option("--tsgi-spec <spec>", "what package.json's dependency on tsgi says (default: the tsgi running — the tarball or folder it was installed from, ^VERSION from a registry, a checkout itself)")
    .action(async (name: string, dir: string | undefined, flags: { tsgiSpec?: string }) => {
      const { linkTsgi, startProject, writeDeployFiles } = await import("./project/startproject.ts");
      const made = startProject(name, { dir, tsgiSpec: flags.tsgiSpec, version: version(), tsgiRoot: ROOT });
      const deploy = await writeDeployFiles(made.root, name, version());
      const linked = linkTsgi(made.root, ROOT);
      const cd = relative(process.cwd(), made.root) || ".";
      process.stdout.write(
        [
          `wrote project ${name} in ${made.root}:`,
          ...[...made.files.filter((f) => !f.endsWith(".gitignore")), ...deploy].map((f) => `  ${f}`),
          "",
          ...(linked ? [`node_modules/tsgi links to this tsgi (${ROOT}), so the project runs at once; npm install puts its dependency there.`] : []),
          "",
          "next:",
          `  cd ${cd}`,
          "  npx tsgi runserver              # http://127.0.0.1:8000/, reloading on every change",
          "  npx tsgi daemon -c tsgi.toml    # the site on its sockets (deploy/ has the nginx, Apache and systemd files)",
          "",
        ].join("\n"),
      );
    });

  cli
    .command("daemon")
    .description("run every site of a tsgi.toml, a process group each, in the foreground")
    .option("-c, --config <file>", "the configuration file", "tsgi.toml")
    .option("--pidfile <file>", "write the master's pid here (removed at stop)")
    .action(async (flags: { config: string; pidfile?: string }) => {
      const { runDaemon } = await import("./daemon/daemon.ts");
      await runDaemon(flags.config, flags.pidfile ? resolve(flags.pidfile) : null);
    });

  const control = async (file: string, request: ControlRequest) => {
    const { loadControlPath } = await import("./daemon/config.ts");
    const { controlRequest } = await import("./daemon/control.ts");
    const { tsgiError } = await import("./errors.ts");
    const reply = await controlRequest(loadControlPath(file), request).catch((err: Error) => {
      throw tsgiError("TSGI_ERR_MASTER_UNREACHABLE", { reason: err.message });
    });
    if (!reply.ok) throw tsgiError("TSGI_ERR_MASTER_UNREACHABLE", { reason: reply.error });
    return reply as Extract<ControlReply, { ok: true }>;
  };
  // The commands that reach a running master: it is found from the same -c file.
  const controlCommand = (name: string, description: string) =>
    cli.command(name).description(description).option("-c, --config <file>", "the configuration file of the running master", "tsgi.toml");
  controlCommand("status", "the state of every site and worker of the running master")
    .option("--json", "print it as JSON")
    .action(async (flags: { config: string; json?: boolean }) => {
      const reply = await control(flags.config, { command: "status" });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ master: reply.master, sites: reply.sites }, null, 2)}\n`);
        return;
      }
      const { formatStatus } = await import("./daemon/status-text.ts");
      process.stdout.write(formatStatus(reply.master!, reply.sites ?? []));
    });
  controlCommand("reload", "reload the running master: the file is reread, every site's workers (or SITE's) replaced with none lost")
    .argument("[site]", "only this site")
    .action(async (site: string | undefined, flags: { config: string }) => {
      const reply = await control(flags.config, site ? { command: "reload", site } : { command: "reload" });
      process.stdout.write(`${reply.message}\n`);
    });
  controlCommand("stop", "stop the running master gracefully").action(async (flags: { config: string }) => {
    const reply = await control(flags.config, { command: "stop" });
    process.stdout.write(`${reply.message}\n`);
  });

  return cli;
}

export async function main(argv: string[]): Promise<void> {
  await program().parseAsync(argv);
}

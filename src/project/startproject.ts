// `tsgi startproject NAME [DIR]` (DESIGN §3): writes a project laid out as Django's is, which
// runs as soon as its dependencies are installed — `npx tsgi runserver` for development,
// `npx tsgi daemon -c tsgi.toml` behind nginx or Apache:
//
//   DIR/                  the project root (DIR, default ./NAME): tsgi commands run here
//     node_modules/tsgi   a link to the tsgi that wrote it, until `npm install` (linkTsgi)
//     package.json        depends on tsgi; scripts dev (runserver), start (daemon), check
//     tsgi.toml           the daemon configuration: one site, NAME
//     run/                the site's sockets and the control socket
//     deploy/             nginx, Apache and systemd files for this very project (tsgi conf)
//     NAME/settings.ts    TSGI_APPLICATION, ROOT_APPLICATION, DEBUG, MIDDLEWARE, ALLOWED_HOSTS
//     NAME/tsgi.ts        the application callable: getTsgiApplication()
//     NAME/app.ts         a small example application
//
// Nothing is overwritten: when any file it would write is there, it writes none and says
// which. NAME must be an identifier that is no JavaScript keyword and no module a project
// imports by name (a Node built-in, tsgi).

import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";
import { tsgiError } from "../errors.ts";
import { resolveUser } from "../daemon/users.ts";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KEYWORDS = new Set(
  ("break case catch class const continue debugger default delete do else enum export extends false finally for function if " +
    "import in instanceof new null return super switch this throw true try typeof var void while with yield let static " +
    "implements interface package private protected public await arguments eval undefined")
    .split(" "),
);

export interface StartProjectOptions {
  /** The project root; default ./NAME. */
  dir?: string;
  /** What package.json's dependency on tsgi says; default: defaultTsgiSpec(). */
  tsgiSpec?: string;
  /** The running tsgi's package root (for defaultTsgiSpec). */
  tsgiRoot: string;
  /** tsgi's version (package.json). */
  version: string;
}

export interface StartProjectResult {
  root: string;
  files: string[];
}

/** Why NAME cannot name a project, or null. */
export function projectNameProblem(name: string): string | null {
  if (!IDENTIFIER.test(name)) return "it must be a valid identifier: a letter or _, then letters, digits or _";
  if (KEYWORDS.has(name)) return "it is a JavaScript keyword";
  if (name === "tsgi" || name === "node_modules" || builtinModules.includes(name)) return `it would shadow the module "${name}" the project imports`;
  return null;
}

/** Whether the user www-data exists (through the name service, as the daemon resolves users): the workers' user when the daemon is started as root (Debian's nginx and Apache run as it). */
function wwwData(): boolean {
  try {
    resolveUser("www-data");
    return true;
  } catch {
    return false;
  }
}

function files(name: string, o: Required<Pick<StartProjectOptions, "tsgiSpec">> & { asRoot: boolean }): Record<string, string> {
  const pkg = {
    name: name.toLowerCase().replace(/_/g, "-"),
    private: true,
    type: "module",
    scripts: {
      dev: "tsgi runserver",
      start: "tsgi daemon -c tsgi.toml",
      check: "tsgi check -c tsgi.toml",
    },
    dependencies: { tsgi: o.tsgiSpec },
  };
  const user = o.asRoot
    ? `# Started as root (systemd), the master runs the workers as this user: Debian's nginx and
# Apache run as www-data too, so they reach the sockets.
user = "www-data"
group = "www-data"
`
    : `# Started as root (systemd), the master must be told the workers' user:
# user = "www-data"
# group = "www-data"
`;
  return {
    "package.json": `${JSON.stringify(pkg, null, 2)}\n`,
    "tsgi.toml": `# The daemon configuration of ${name}: one site, a process group of two workers.
#   npx tsgi daemon -c tsgi.toml     (npm start) in the foreground; Ctrl-C stops it
#   npx tsgi status -c tsgi.toml     reload and stop likewise; SIGHUP reloads with no request lost
#   npx tsgi conf nginx ${name}      the nginx file for this site (deploy/ holds one of each)
# Relative paths are relative to this file's folder. Every key: tsgi's docs/settings.md.

[site.${name}]
# TSGI_SETTINGS_MODULE of this site's workers: they serve its TSGI_APPLICATION.
settings = "${name}/settings"
listen = [
  "fastcgi:unix:run/${name}.sock",       # nginx fastcgi_pass, Apache mod_proxy_fcgi
  "uwsgi:unix:run/${name}-uwsgi.sock",   # nginx uwsgi_pass, Apache mod_proxy_uwsgi
]
processes = 2
# The front server's workers connect to the sockets as another user than the site's:
# in production give them a group (socket-group = "www-data") and 0660.
socket-mode = "0666"
${user}`,
    "run/.gitignore": "*\n!.gitignore\n",
    ".gitignore": "node_modules/\n",
    [`${name}/settings.ts`]: `// The settings of ${name}, found through TSGI_SETTINGS_MODULE="${name}/settings" (tsgi.ts sets it
// when the environment does not; tsgi.toml's settings key sets it for the site's workers).

/** What \`tsgi runserver\` and the site serve. */
export const TSGI_APPLICATION = "${name}/tsgi.ts:application";

/** What getTsgiApplication() wraps in MIDDLEWARE. */
export const ROOT_APPLICATION = "${name}/app.ts:application";

/** Errors shown in the browser by runserver, and the development warnings. SECURITY WARNING: false in production. */
export const DEBUG = true;

/** MODULE:EXPORT of each middleware, the first outermost: a function (app) => application, or a class. */
export const MIDDLEWARE: string[] = [];

/** The hosts this site answers for (".example.com": the domain and its subdomains); another gets 400. */
export const ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"];
`,
    [`${name}/tsgi.ts`]: `// The application callable of ${name}: what tsgi serves (TSGI_APPLICATION in settings.ts).
process.env.TSGI_SETTINGS_MODULE ??= "${name}/settings"; // setdefault: the environment wins
import { getTsgiApplication } from "tsgi";

export const application = await getTsgiApplication();
`,
    [`${name}/app.ts`]: `// A small example application: replace it with yours.
import type { Application } from "tsgi";

export const application: Application = (environ, startResponse) => {
  const body = \`Hello from ${name}: \${environ.REQUEST_METHOD} \${environ.SCRIPT_NAME}\${environ.PATH_INFO}\\n\`;
  startResponse("200 OK", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(Buffer.byteLength(body))],
  ]);
  return [body];
};
`,
  };
}

/**
 * What the new project's package.json depends on when --tsgi-spec does not say: the tsgi that
 * is running, so that `npm install` in the project gets the same one, offline when it can.
 * Installed from a tarball or a folder (node_modules/.package-lock.json says "file:…"): that
 * file, as an absolute path; installed from a registry: `^VERSION`; run from a checkout (not
 * under node_modules): the checkout itself.
 */
export function defaultTsgiSpec(tsgiRoot: string, version: string): string {
  const modules = dirname(tsgiRoot);
  if (basename(modules) !== "node_modules") return `file:${tsgiRoot}`;
  try {
    const lock = JSON.parse(readFileSync(join(modules, ".package-lock.json"), "utf8")) as { packages?: Record<string, { resolved?: string }> };
    const entry = Object.entries(lock.packages ?? {}).find(([key]) => key === "node_modules/tsgi" || key.endsWith("/node_modules/tsgi"));
    const resolved = entry?.[1].resolved;
    if (resolved?.startsWith("file:")) return `file:${resolve(dirname(modules), resolved.slice("file:".length))}`;
  } catch {
    // No hidden lockfile (an old npm, a global install without one): the registry's version.
  }
  return `^${version}`;
}

/** Writes the project; the deploy/ files come after, from its tsgi.toml (see writeDeployFiles). */
export function startProject(name: string, o: StartProjectOptions): StartProjectResult {
  const problem = projectNameProblem(name);
  if (problem) throw tsgiError("TSGI_ERR_PROJECT_NAME", { name: JSON.stringify(name), reason: problem });
  const root = resolve(o.dir ?? name);
  if (!o.dir && existsSync(root) && readdirSync(root).length > 0) {
    throw tsgiError("TSGI_ERR_PROJECT_EXISTS", { root, files: "a folder of that name with files in it (give DIR to write into a folder that has some)" });
  }
  const asRoot = process.getuid?.() === 0 && wwwData();
  const wanted = files(name, { tsgiSpec: o.tsgiSpec ?? defaultTsgiSpec(o.tsgiRoot, o.version), asRoot });
  const there = [...Object.keys(wanted), ...deployFiles(name)].filter((f) => existsSync(join(root, f)));
  if (there.length > 0) throw tsgiError("TSGI_ERR_PROJECT_EXISTS", { root, files: there.join(", ") });
  for (const [file, text] of Object.entries(wanted)) {
    const path = join(root, file);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, text, { flag: "wx" });
  }
  return { root, files: Object.keys(wanted) };
}

/** The files writeDeployFiles writes. */
function deployFiles(name: string): string[] {
  return ["nginx.conf", "nginx-uwsgi.conf", "apache.conf", "tsgi.service", `tsgi-${name}.socket`].map((f) => join("deploy", f));
}

/**
 * node_modules/tsgi, a link to the tsgi that wrote the project (and node_modules/.bin/tsgi), so
 * that the project runs at once — `npx tsgi runserver`, `import … from "tsgi"` — before any
 * `npm install`, which later puts the dependency package.json names in its place. Nothing is
 * linked where a node_modules/tsgi is already.
 */
export function linkTsgi(root: string, tsgiRoot: string): boolean {
  const modules = join(root, "node_modules");
  if (existsSync(join(modules, "tsgi"))) return false;
  mkdirSync(join(modules, ".bin"), { recursive: true });
  symlinkSync(realpathSync(tsgiRoot), join(modules, "tsgi"), "dir");
  if (!existsSync(join(modules, ".bin", "tsgi"))) symlinkSync(join("..", "tsgi", "bin", "tsgi.js"), join(modules, ".bin", "tsgi"));
  return true;
}

/** deploy/: what `tsgi conf nginx|apache|systemd NAME` writes for the project's tsgi.toml. */
export async function writeDeployFiles(root: string, name: string, version: string): Promise<string[]> {
  const { loadConfig } = await import("../daemon/config.ts");
  const { frontConf } = await import("../daemon/front-conf.ts");
  const config = loadConfig(join(root, "tsgi.toml"));
  // The tsgi the project depends on, once `npm install` put it there.
  const bin = join(root, "node_modules", "tsgi", "bin", "tsgi.js");
  const written: string[] = [];
  const deploy = join(root, "deploy");
  mkdirSync(deploy, { recursive: true });
  const out: [string, string, string | undefined][] = [
    ["nginx.conf", "nginx", "1"],
    ["nginx-uwsgi.conf", "nginx", "2"],
    ["apache.conf", "apache", "1"],
    ["(systemd units)", "systemd", undefined],
  ];
  for (const [file, front, listen] of out) {
    const text = frontConf(front, config, name, { listen, port: 80, serverName: "localhost", execPath: process.execPath, bin, version });
    // systemd's text is two units, each after a "# --- file: NAME ---" line.
    const parts = front === "systemd" ? splitUnits(text) : [[file, text] as const];
    for (const [f, t] of parts) {
      writeFileSync(join(deploy, f), t, { flag: "wx" });
      written.push(relative(root, join(deploy, f)));
    }
  }
  return written;
}

function splitUnits(text: string): (readonly [string, string])[] {
  const parts: (readonly [string, string])[] = [];
  for (const chunk of text.split(/^# --- file: /m).filter(Boolean)) {
    const newline = chunk.indexOf("\n");
    parts.push([chunk.slice(0, newline).replace(/ ---$/, ""), chunk.slice(newline + 1)] as const);
  }
  return parts;
}

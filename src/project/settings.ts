// A project's settings module (DESIGN §3): named by TSGI_SETTINGS_MODULE, a path from the
// project root without its extension ("mysite/settings") or a package specifier, as Django's
// DJANGO_SETTINGS_MODULE. The environment wins: the project's tsgi.ts sets the variable only
// when it is unset (`??=`), and a site's `settings` key sets it for that site's workers only,
// so two sites never share one process's settings.
//
//   TSGI_APPLICATION   "mysite/tsgi.ts:application": what `tsgi runserver` and a site serve
//   ROOT_APPLICATION   "mysite/app.ts:application": what getTsgiApplication() wraps
//   DEBUG              true: an empty ALLOWED_HOSTS allows the loopback names; default false
//                      (errors are shown in the browser by `tsgi runserver` whatever it says,
//                      and by a site only with its `debug` key)
//   MIDDLEWARE         ["mysite/mw.ts:timing", …]: the first is the outermost
//   ALLOWED_HOSTS      ["example.com", ".example.com", "*"]: a request for another Host is 400

import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { tsgiError } from "../errors.ts";
import type { Application } from "../gateway/request.ts";
import { importModule, isModulePath, loadApplication } from "../daemon/app.ts";
import { allowedHosts } from "./allowed-hosts.ts";
import { buildChain, type ChainEntry } from "../gateway/middleware.ts";

export interface ProjectSettings {
  /** The module as TSGI_SETTINGS_MODULE names it, and the file it was read from. */
  module: string;
  url: string;
  TSGI_APPLICATION: string | null;
  ROOT_APPLICATION: string | null;
  DEBUG: boolean;
  MIDDLEWARE: string[];
  ALLOWED_HOSTS: string[];
  /** Every export, for the project's own settings. */
  all: Readonly<Record<string, unknown>>;
}

/** The extensions a settings module's file may have (runserver looks for DIR/settings with them too). */
export const MODULE_EXTENSIONS = [".ts", ".mts", ".cts", ".js", ".mjs", ".cjs"] as const;
const EXTENSIONS = ["", ...MODULE_EXTENSIONS, "/index.ts", "/index.js"];

/** The files "mysite/settings" may be under `root`, as a reason's text. */
export function settingsTried(module: string, root: string): string {
  return `no file ${resolve(root, module)}{${EXTENSIONS.filter(Boolean).join(",")}}`;
}

/** The file "mysite/settings" names under `root` (any of the module extensions), or null. */
export function settingsFile(module: string, root: string): string | null {
  for (const ext of EXTENSIONS) {
    const path = resolve(root, module + ext);
    if (existsSync(path) && statSync(path).isFile()) return path;
  }
  return null;
}

function invalid(module: string, key: string, expected: string, got: unknown): Error {
  const what = got === null ? "null" : Array.isArray(got) ? "an array" : typeof got;
  return tsgiError("TSGI_ERR_SETTINGS_INVALID", { module, key, expected, got: what });
}

function stringOrNull(module: string, all: Record<string, unknown>, key: string): string | null {
  const v = all[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || v === "") throw invalid(module, key, "a non-empty string (MODULE:CALLABLE)", v);
  return v;
}

function stringList(module: string, all: Record<string, unknown>, key: string): string[] {
  const v = all[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string" && x !== "")) throw invalid(module, key, "an array of non-empty strings", v);
  return [...v] as string[];
}

/** Reads the settings module TSGI_SETTINGS_MODULE names (relative to `root`, the project root). */
export async function loadSettings(root: string = process.cwd(), module = process.env.TSGI_SETTINGS_MODULE): Promise<ProjectSettings> {
  if (!module) throw tsgiError("TSGI_ERR_SETTINGS_UNSET", {});
  const file = settingsFile(module, root);
  const tried = settingsTried(module, root);
  if (!file && isModulePath(module)) throw tsgiError("TSGI_ERR_SETTINGS_MODULE", { module, root, reason: tried });
  let imported: Awaited<ReturnType<typeof importModule>>;
  try {
    imported = await importModule(file ?? module, root);
  } catch (err) {
    // Not a file of the project, and no package of that name either.
    if (file) throw err;
    throw tsgiError("TSGI_ERR_SETTINGS_MODULE", { module, root, reason: `${tried}, and no package: ${(err as Error).message}` });
  }
  const { url, mod } = imported;
  // A CommonJS settings module arrives as { default: module.exports }.
  const all = (mod.TSGI_APPLICATION === undefined && mod.default && typeof mod.default === "object" ? mod.default : mod) as Record<string, unknown>;
  const debug = all.DEBUG ?? false;
  if (typeof debug !== "boolean") throw invalid(module, "DEBUG", "true or false", debug);
  return {
    module,
    url,
    TSGI_APPLICATION: stringOrNull(module, all, "TSGI_APPLICATION"),
    ROOT_APPLICATION: stringOrNull(module, all, "ROOT_APPLICATION"),
    DEBUG: debug,
    MIDDLEWARE: stringList(module, all, "MIDDLEWARE"),
    ALLOWED_HOSTS: stringList(module, all, "ALLOWED_HOSTS"),
    all,
  };
}

/**
 * The project's application, as its tsgi.ts exports it: ROOT_APPLICATION wrapped in the
 * MIDDLEWARE (the first outermost), behind the ALLOWED_HOSTS check. The settings module is
 * TSGI_SETTINGS_MODULE's, read from the working directory (the project root).
 */
export async function getTsgiApplication(): Promise<Application> {
  const root = process.cwd();
  const settings = await loadSettings(root);
  if (!settings.ROOT_APPLICATION) throw tsgiError("TSGI_ERR_SETTINGS_NO_ROOT", { module: settings.module });
  const app = await loadApplication(settings.ROOT_APPLICATION, root);
  // A middleware of MIDDLEWARE: a class (`new M(app)`) or a function (`m(app)`); errors and the
  // dropped-close warning name it by its spec.
  const entries: ChainEntry[] = [];
  for (const spec of settings.MIDDLEWARE) entries.push({ middleware: await loadApplication(spec, root, "middleware"), name: spec, spec });
  const chain = entries.length === 0 ? app : buildChain(app, entries, settings.DEBUG);
  return allowedHosts(settings.ALLOWED_HOSTS, chain, { debug: settings.DEBUG });
}

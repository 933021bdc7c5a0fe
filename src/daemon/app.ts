// Loads a site's application from `MODULE:CALLABLE` (DESIGN §3): MODULE a path relative to
// the working directory or absolute (.ts, .mts, .cts, .js, .mjs, .cjs — TypeScript without a
// build step, through tsx) or a package specifier; CALLABLE defaults to `application`.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { tsgiError } from "../errors.ts";
import type { Application } from "../gateway/request.ts";
import { importFailure } from "./app-error.ts";

const IDENTIFIER = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;

export function splitAppSpec(spec: string): { module: string; callable: string } {
  const colon = spec.lastIndexOf(":");
  if (colon > 0 && IDENTIFIER.test(spec.slice(colon + 1))) {
    return { module: spec.slice(0, colon), callable: spec.slice(colon + 1) };
  }
  return { module: spec, callable: "application" };
}

/** Whether MODULE names a file (relative or absolute) rather than a package specifier. */
export function isModulePath(module: string): boolean {
  return module.startsWith(".") || isAbsolute(module) || /\.(m|c)?(t|j)s$/.test(module);
}

function moduleUrl(module: string, cwd: string): string {
  if (isModulePath(module)) {
    const path = resolve(cwd, module);
    if (!existsSync(path)) throw tsgiError("TSGI_ERR_APP_IMPORT", { module, reason: `${path} does not exist` });
    return pathToFileURL(path).href;
  }
  try {
    return pathToFileURL(createRequire(resolve(cwd, "package.json")).resolve(module)).href;
  } catch (err) {
    throw tsgiError("TSGI_ERR_APP_IMPORT", { module, reason: (err as Error).message });
  }
}

// Set by bin/tsgi.js when it registered tsx (both halves) to run tsgi from src/; the two ends
// of this flag are that file and this one.
const TSX_REGISTERED = Symbol.for("tsgi.tsx-registered");
const tsxFlag = globalThis as { [TSX_REGISTERED]?: boolean };

/**
 * TypeScript applications load through tsx, both halves of it: the ESM hooks for `import`,
 * the CommonJS ones for what Node hands its CommonJS loader — a `.ts` file outside an ESM
 * package is such a module, and with the ESM half alone it fails there
 * (`ERR_REQUIRE_CYCLE_MODULE` on Node 20). tsx is registered only for TypeScript (or when
 * TSGI_TSX=1, for a JavaScript module that imports TypeScript): its ESM loader runs in a
 * thread of its own, which a plain JavaScript site need not pay for in every worker.
 */
async function registerTsx(url: string): Promise<void> {
  if (!/\.(m|c)?ts$/.test(url) && process.env.TSGI_TSX !== "1") return;
  await preloadTypeScript();
}

/** tsx registered now, before the first module needs it (a `tsgi runserver` standby pays for it ahead of the change). */
export async function preloadTypeScript(): Promise<void> {
  if (tsxFlag[TSX_REGISTERED] || process.env.TSGI_TSX === "0") return;
  const [esm, cjs] = await Promise.all([import("tsx/esm/api"), import("tsx/cjs/api")]);
  esm.register();
  cjs.register();
  tsxFlag[TSX_REGISTERED] = true;
}

/** Imports the module (running its top-level code) and returns the callable. */
export async function loadApplication(spec: string, cwd: string = process.cwd()): Promise<Application> {
  const { module, callable } = splitAppSpec(spec);
  const url = moduleUrl(module, cwd);
  await registerTsx(url);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw importFailure(module, url, err, cwd, tsxFlag[TSX_REGISTERED] ? ["--import", import.meta.resolve("tsx")] : []);
  }
  let value: unknown = mod;
  for (const part of callable.split(".")) value = (value as Record<string, unknown> | undefined)?.[part];
  // A CommonJS module arrives as { default: module.exports }.
  if (value === undefined && mod.default && typeof mod.default === "object") {
    value = (mod.default as Record<string, unknown>)[callable];
  }
  value = await value;
  if (typeof value !== "function") {
    throw tsgiError("TSGI_ERR_APP_NOT_CALLABLE", {
      callable,
      module,
      found: value === undefined ? `nothing (exports: ${Object.keys(mod).join(", ") || "none"})` : typeof value,
    });
  }
  return value as Application;
}

/** Imports a module as the application loader does (tsx for TypeScript, errors with file and line): a settings module. */
export async function importModule(module: string, cwd: string): Promise<{ url: string; mod: Record<string, unknown> }> {
  const url = moduleUrl(module, cwd);
  await registerTsx(url);
  try {
    return { url, mod: (await import(url)) as Record<string, unknown> };
  } catch (err) {
    throw importFailure(module, url, err, cwd, tsxFlag[TSX_REGISTERED] ? ["--import", import.meta.resolve("tsx")] : []);
  }
}

// Loads a site's application from `MODULE:CALLABLE` (DESIGN §3): MODULE a path relative to
// the working directory or absolute (.ts, .mts, .cts, .js, .mjs, .cjs — TypeScript without a
// build step, through tsx) or a package specifier (found by app-resolve.ts); CALLABLE
// defaults to `application` (picked and checked by app-callable.ts).

import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import type { Application } from "../gateway/request.ts";
import { pickCallable, type CallableKind } from "./app-callable.ts";
import { importFailure } from "./app-error.ts";
import { resolveModule } from "./app-resolve.ts";

export { isModulePath } from "./app-resolve.ts";

const IDENTIFIER = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;

export function splitAppSpec(spec: string): { module: string; callable: string } {
  const colon = spec.lastIndexOf(":");
  if (colon > 0 && IDENTIFIER.test(spec.slice(colon + 1))) {
    return { module: spec.slice(0, colon), callable: spec.slice(colon + 1) };
  }
  return { module: spec, callable: "application" };
}

function moduleUrl(module: string, cwd: string): string {
  return pathToFileURL(resolveModule(module, cwd)).href;
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

/** tsx's loader file, for the `node --import` line an import failure suggests. */
function tsxLoader(): string {
  // createRequire, not import.meta.resolve: this file is bundled to CommonJS too (dist/index.cjs).
  return createRequire(import.meta.url).resolve("tsx");
}

/** Imports the module (running its top-level code) and returns the callable; a MIDDLEWARE entry may be a class. */
export async function loadApplication(spec: string, cwd: string = process.cwd(), kind: CallableKind = "application"): Promise<Application> {
  const { module, callable } = splitAppSpec(spec);
  const url = moduleUrl(module, cwd);
  await registerTsx(url);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw importFailure(module, url, err, cwd, tsxFlag[TSX_REGISTERED] ? ["--import", tsxLoader()] : []);
  }
  return pickCallable(mod, module, callable, kind);
}

/** Imports a module as the application loader does (tsx for TypeScript, errors with file and line): a settings module. */
export async function importModule(module: string, cwd: string): Promise<{ url: string; mod: Record<string, unknown> }> {
  const url = moduleUrl(module, cwd);
  await registerTsx(url);
  try {
    return { url, mod: (await import(url)) as Record<string, unknown> };
  } catch (err) {
    throw importFailure(module, url, err, cwd, tsxFlag[TSX_REGISTERED] ? ["--import", tsxLoader()] : []);
  }
}

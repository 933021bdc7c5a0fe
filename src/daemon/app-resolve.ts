// Finds the file a site's MODULE names (DESIGN §3): a path relative to the site's cwd (or
// absolute), or a package specifier (`mypkg`, `mypkg/sub`, `@scope/pkg`) looked up as Node
// looks up an `import` from a module in the cwd — the package itself when the cwd's
// package.json names it (self-reference), then node_modules of the cwd and of each folder
// above, a package's `exports` (conditions node, import, require, default, in the order the
// package lists them; subpath patterns) or else its `main`. Resolution is ours rather than
// `require.resolve`'s so that an ESM-only package (exports with `import` alone) and a
// TypeScript one (exports naming .ts) are found, and so that each failure says what was
// tried: the package and every folder looked in, the subpath its exports lack, the file that
// does not exist. An npm workspace linked into node_modules resolves to its real path, as
// Node's loader does.

import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { tsgiError } from "../errors.ts";

/** Conditions an application import matches (Node's for `import`, plus `require`: either entry loads). */
const CONDITIONS = new Set(["node", "import", "require", "module-sync", "default"]);
/** What an extension-less file or folder path may end with, in order (CommonJS's list, then TypeScript). */
const EXTENSIONS = ["", ".js", ".json", ".node", ".mjs", ".cjs", ".ts", ".mts", ".cts"];

interface PackageJson {
  name?: string;
  main?: string;
  exports?: unknown;
}

const isFile = (p: string) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

function readPackageJson(dir: string): PackageJson | null {
  const file = join(dir, "package.json");
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as PackageJson;
  } catch {
    return null;
  }
}

/** `@scope/pkg/a/b` → { name: "@scope/pkg", subpath: "./a/b" }. */
export function splitSpecifier(specifier: string): { name: string; subpath: string } {
  const parts = specifier.split("/");
  const n = specifier.startsWith("@") ? 2 : 1;
  const rest = parts.slice(n).join("/");
  return { name: parts.slice(0, n).join("/"), subpath: rest ? `./${rest}` : "." };
}

/** A target of `exports` for the conditions above: a string, a conditions object or a fallback array. */
function pickTarget(target: unknown, star: string | null): string | null | undefined {
  if (typeof target === "string") return star === null ? target : target.replaceAll("*", star);
  if (Array.isArray(target)) {
    for (const t of target) {
      const r = pickTarget(t, star);
      if (r) return r;
    }
    return null;
  }
  if (target && typeof target === "object") {
    for (const [condition, value] of Object.entries(target)) {
      if (!CONDITIONS.has(condition)) continue;
      const r = pickTarget(value, star);
      if (r !== undefined) return r;
    }
    return undefined;
  }
  return null; // null: explicitly not exported
}

/** The target `exports` maps `subpath` to; null when it does not export it. */
function exportsTarget(exports: unknown, subpath: string): string | null {
  const isSubpathMap = exports && typeof exports === "object" && !Array.isArray(exports) && Object.keys(exports).some((k) => k.startsWith("."));
  if (!isSubpathMap) return subpath === "." ? (pickTarget(exports, null) ?? null) : null;
  const map = exports as Record<string, unknown>;
  if (subpath in map && !subpath.includes("*")) return pickTarget(map[subpath], null) ?? null;
  // The longest pattern prefix wins (Node's PATTERN_KEY_COMPARE).
  let best: { key: string; star: string } | null = null;
  for (const key of Object.keys(map)) {
    const star = key.indexOf("*");
    if (star < 0) continue;
    const before = key.slice(0, star);
    const after = key.slice(star + 1);
    if (subpath.length >= key.length - 1 && subpath.startsWith(before) && subpath.endsWith(after) && (!best || before.length > best.key.indexOf("*"))) {
      best = { key, star: subpath.slice(before.length, subpath.length - after.length) };
    }
  }
  return best ? (pickTarget(map[best.key], best.star) ?? null) : null;
}

/** A file, with CommonJS's extension and index lookup for a package without `exports`. */
function fileOrIndex(path: string): string | null {
  for (const ext of EXTENSIONS) if (isFile(path + ext)) return path + ext;
  const main = readPackageJson(path)?.main;
  if (main) {
    const found = fileOrIndex(resolve(path, main));
    if (found) return found;
  }
  for (const ext of EXTENSIONS.slice(1)) if (isFile(join(path, `index${ext}`))) return join(path, `index${ext}`);
  return null;
}

/** The file of `subpath` in the package at `dir` (its package.json `pkg`), or a coded error naming what is missing. */
function fileInPackage(specifier: string, name: string, subpath: string, dir: string, pkg: PackageJson | null): string {
  if (pkg?.exports !== undefined) {
    const target = exportsTarget(pkg.exports, subpath);
    if (!target) {
      const map = pkg.exports && typeof pkg.exports === "object" && !Array.isArray(pkg.exports) ? Object.keys(pkg.exports).filter((k) => k.startsWith(".")) : ["."];
      throw tsgiError("TSGI_ERR_APP_PACKAGE_EXPORTS", { module: specifier, package: name, dir, subpath, exported: map.join(", ") || "none" });
    }
    const file = resolve(dir, target);
    if (!isFile(file)) throw notFound(specifier, file, ` (package ${name} exports ${subpath} as ${target})`);
    return file;
  }
  const wanted = subpath === "." ? dir : resolve(dir, subpath);
  const file = fileOrIndex(wanted);
  if (!file) {
    if (subpath !== ".") throw notFound(specifier, wanted, `, nor with ${EXTENSIONS.slice(1).join(", ")}, nor as a folder with an index (package ${name})`);
    throw notFound(specifier, pkg?.main ? resolve(dir, pkg.main) : join(dir, "index.js"), ` (package ${name}'s ${pkg?.main ? "main" : "index, it has no main or exports"})`);
  }
  return file;
}

function notFound(module: string, path: string, why: string): Error {
  return tsgiError("TSGI_ERR_APP_MODULE_NOT_FOUND", { module, path, reason: `${path} does not exist${why}` });
}

/** The nearest package.json at or above `dir`: its folder and content. */
function enclosingPackage(dir: string): { dir: string; pkg: PackageJson } | null {
  for (let d = dir; ; d = dirname(d)) {
    const pkg = readPackageJson(d);
    if (pkg) return { dir: d, pkg };
    if (dirname(d) === d) return null;
  }
}

/** The folder of the installed package `name` in node_modules of `cwd` or a folder above, or null. */
function installedPackage(name: string, cwd: string): string | null {
  for (let d = cwd; ; d = dirname(d)) {
    const dir = join(d, "node_modules", name);
    if (!d.endsWith("/node_modules") && existsSync(dir)) return dir;
    if (dirname(d) === d) return null;
  }
}

/**
 * Whether MODULE, which reads as a relative path with an extension (`mypkg/lib/app.js`),
 * names no file from `cwd` but a file of an installed package: then it is that package's.
 */
export function isPackageFile(module: string, cwd: string): boolean {
  if (module.startsWith(".") || isAbsolute(module) || existsSync(resolve(cwd, module))) return false;
  return installedPackage(splitSpecifier(module).name, cwd) !== null;
}

/** The file a package specifier names, resolved from `cwd`. */
export function resolvePackage(specifier: string, cwd: string): string {
  const { name, subpath } = splitSpecifier(specifier);
  const own = enclosingPackage(cwd);
  if (own && own.pkg.name === name && own.pkg.exports !== undefined) return realpathSync(fileInPackage(specifier, name, subpath, own.dir, own.pkg));
  const looked: string[] = [];
  for (let d = cwd; ; d = dirname(d)) {
    if (!d.endsWith("/node_modules")) {
      const dir = join(d, "node_modules", name);
      looked.push(join(d, "node_modules"));
      if (existsSync(dir)) return realpathSync(fileInPackage(specifier, name, subpath, dir, readPackageJson(dir)));
    }
    if (dirname(d) === d) break;
  }
  throw tsgiError("TSGI_ERR_APP_PACKAGE_NOT_FOUND", { module: specifier, package: name, cwd, looked: looked.join(", ") });
}

/** Whether MODULE names a file (relative or absolute) rather than a package specifier. */
export function isModulePath(module: string): boolean {
  return module.startsWith(".") || isAbsolute(module) || /\.(m|c)?(t|j)s$/.test(module);
}

/** The absolute file MODULE names, from the site's cwd. */
export function resolveModule(module: string, cwd: string): string {
  if (!isModulePath(module) || isPackageFile(module, cwd)) return resolvePackage(module, cwd);
  const path = resolve(cwd, module);
  if (!existsSync(path)) throw notFound(module, path, "");
  if (!isFile(path)) throw tsgiError("TSGI_ERR_APP_MODULE_NOT_FOUND", { module, path, reason: `${path} is a folder, not a module` });
  return path;
}

// Picks CALLABLE out of an imported application module (DESIGN §3) and refuses, at load
// rather than on every request, what cannot serve: a missing export (with the exports there
// are and the closest name), a value that is not a function (what it is, and a method of it
// that may be meant), and a Node `(req, res)` handler such as an Express app, which tsgi
// would call with (environ, startResponse) — each request failing with
// `res.setHeader is not a function` — and which `fromNodeHandler` wraps.
//
// The default name: when CALLABLE is `application` (written or left out) and the module has
// no `application`, a function exported as `default` serves — `export default app` in ESM,
// `module.exports = app` in CommonJS. When both exist, `application` wins.

import { tsgiError } from "../errors.ts";
import type { Application } from "../gateway/request.ts";
import { summarize } from "../log.ts";

type Namespace = Record<string, unknown>;

/**
 * Whether `mod` is a CommonJS module's namespace: { default: module.exports } plus the names
 * Node's lexer found, each the same value as module.exports' property (an ES module's default
 * object is not its exports).
 */
function isCommonJs(mod: Namespace): boolean {
  const def = mod.default as Namespace | undefined;
  if (!def || typeof def !== "object" || Array.isArray(def)) return false;
  return Object.keys(mod).every((k) => k === "default" || k === "module.exports" || (k in def && def[k] === mod[k]));
}

/** The names a module offers: its named exports, those of a CommonJS module.exports object, `default` last. */
export function exportNames(mod: Namespace): string[] {
  const names = new Set(Object.keys(mod).filter((k) => k !== "default" && k !== "module.exports"));
  if (isCommonJs(mod)) for (const k of Object.keys(mod.default as Namespace)) names.add(k);
  if ("default" in mod) names.add("default");
  return [...names];
}

/** Levenshtein distance, case-insensitive (App ~ app). */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** The export whose name is closest to `wanted`, if one is close enough to be a typo or a near synonym. */
export function closestName(wanted: string, names: string[]): string | null {
  let best: { name: string; d: number } | null = null;
  for (const name of names) {
    const d = distance(wanted, name);
    if (!best || d < best.d) best = { name, d };
  }
  if (!best) return null;
  const close = best.d <= Math.max(2, Math.floor(wanted.length / 3));
  // handler/handle, app/application: one name the start of the other.
  const prefix = names.find((n) => n.length >= 3 && wanted.length >= 3 && (n.toLowerCase().startsWith(wanted.toLowerCase()) || wanted.toLowerCase().startsWith(n.toLowerCase())));
  return close ? best.name : (prefix ?? null);
}

/** What a non-function value is, as a user would say it. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return `an array (of ${value.length})`;
  switch (typeof value) {
    case "string":
      return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`;
    case "number":
    case "bigint":
    case "boolean":
      return `a ${typeof value} (${String(value)})`;
    case "symbol":
      return "a symbol";
    default: {
      const ctor = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name;
      return ctor && ctor !== "Object" ? `an object (an instance of ${ctor})` : "an object";
    }
  }
}

/** Function-valued properties of an object, own and inherited (not Object.prototype's). */
function methods(value: object): string[] {
  const out = new Set<string>();
  for (let o: object | null = value; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === "constructor") continue;
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d && typeof d.value === "function") out.add(k);
    }
  }
  return [...out];
}

const LIKELY_METHODS = ["application", "app", "handler", "handle", "fetch", "callback", "default", "serve", "listener"];

/** A hint for an object: a Node framework's app object (callback()/listen()), or a method that may be the application. */
function objectHint(module: string, callable: string, value: object): string {
  const m = methods(value);
  if (m.includes("callback") && m.includes("listen")) {
    return `; it looks like a Koa-style app object: export const application = fromNodeHandler(${callable}.callback()) (import { fromNodeHandler } from "tsgi")`;
  }
  const likely = LIKELY_METHODS.find((k) => m.includes(k));
  if (likely) return `; it has a method ${likely}(): if that is the application, name it as ${module}:${callable}.${likely}`;
  return m.length ? `; its methods: ${m.slice(0, 8).join(", ")}` : "";
}

/** The parameter names of a function, from its source (empty when it cannot be read, e.g. native or bound). */
export function parameterNames(fn: Function): string[] {
  const src = Function.prototype.toString.call(fn);
  const m =
    /^(?:async\s+)?function\b[^(]*\(([^)]*)\)/.exec(src) ??
    /^(?:async\s*)?\(([^)]*)\)\s*=>/.exec(src) ??
    /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(src) ??
    /^(?:async\s+)?\*?\s*[A-Za-z_$][\w$]*\s*\(([^)]*)\)\s*\{/.exec(src);
  if (!m) return [];
  return m[1]!
    .replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, "")
    .split(",")
    .map((p) => p.trim().replace(/[=:?].*$/s, "").trim())
    .filter(Boolean);
}

/**
 * Why `fn` looks like a Node `(req, res)` handler rather than a TSGI application, or null.
 * Express and Connect apps (and routers) carry handle() and use(); an Express app also
 * listen(); a plain handler names its parameters req and res. Arity alone says nothing: a
 * TSGI application takes two parameters too.
 */
export function nodeHandlerEvidence(fn: Function): string | null {
  const props = fn as unknown as Record<string, unknown>;
  const has = (k: string) => typeof props[k] === "function";
  if (has("handle") && has("use")) return `it has handle() and use()${has("listen") ? " and listen()" : ""}, as an Express or Connect app`;
  if (has("listen") && (has("use") || has("get"))) return "it has listen() and use(), as an Express app";
  const params = parameterNames(fn);
  if (params.length >= 2 && params.length <= 3 && /^(req|request)$/i.test(params[0]!) && /^(res|response|reply)$/i.test(params[1]!)) {
    return `its parameters are (${params.join(", ")})`;
  }
  return null;
}

/** What the loaded value is for: the site's application, or a MIDDLEWARE entry (a class is one). */
export type CallableKind = "application" | "middleware";

const isClass = (fn: Function) => /^class\b/.test(Function.prototype.toString.call(fn));

/** CALLABLE (dotted for a method of an export: object.method, bound to the object) out of `mod`. */
export async function pickCallable(mod: Namespace, module: string, callable: string, kind: CallableKind = "application"): Promise<Application> {
  const parts = callable.split(".");
  // A CommonJS module arrives as { default: module.exports }: its properties are exports too.
  const def = mod.default;
  let root: Namespace = mod;
  if (!(parts[0]! in mod) && def && (typeof def === "object" || typeof def === "function") && parts[0]! in def) root = def as Namespace;
  let name = callable;
  let value: unknown;
  let owner: unknown = undefined;
  let missing = "";
  if (parts[0]! in root) {
    value = root[parts[0]!];
    for (const [i, part] of parts.slice(1).entries()) {
      owner = value;
      value = value === null || value === undefined ? undefined : (value as Namespace)[part];
      if (value === undefined && !missing) {
        const parent = parts.slice(0, i + 1).join(".");
        missing = ` (${parent} has no ${part}${owner && typeof owner === "object" ? objectHint(module, parent, owner) : ""})`;
      }
    }
  } else if (callable === "application" && typeof def === "function") {
    name = "default";
    value = def;
  } else {
    const names = exportNames(mod);
    const close = closestName(parts[0]!, names);
    throw tsgiError("TSGI_ERR_APP_NO_EXPORT", {
      module,
      callable: parts[0],
      suggestion: close ? ` (did you mean ${module}:${close}?)` : "",
      exports: names.join(", ") || "none",
    });
  }
  try {
    value = await value;
  } catch (err) {
    // An export that is a promise (export const application = await-less setup()) which rejected: a failed import.
    throw tsgiError("TSGI_ERR_APP_IMPORT", { module, reason: `its export ${name} is a promise that rejected: ${summarize(err)}` }, err);
  }
  if (typeof value !== "function") {
    throw tsgiError("TSGI_ERR_APP_NOT_CALLABLE", {
      module,
      callable: name,
      found: describe(value) + missing,
      hint: value && typeof value === "object" ? objectHint(module, name, value) : "",
    });
  }
  if (kind === "application" && isClass(value)) {
    throw tsgiError("TSGI_ERR_APP_NOT_CALLABLE", {
      module,
      callable: name,
      found: `a class (${value.name || "anonymous"})`,
      hint: "; tsgi calls the application, which a class cannot be without new: export a function, e.g. one that calls a method of an instance",
    });
  }
  const evidence = nodeHandlerEvidence(value);
  if (evidence) throw tsgiError("TSGI_ERR_APP_NODE_HANDLER", { module, callable: name, evidence });
  return (owner && typeof owner === "object" ? value.bind(owner) : value) as Application;
}

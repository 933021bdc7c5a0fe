// ALLOWED_HOSTS (DESIGN §3), as Django's: the Host a request names must be one of the
// project's, or the request is answered 400 before the application runs — so a forged Host
// never reaches links, redirects or password-reset mails the application builds from it.
// "example.com" matches that name, ".example.com" the name and every subdomain, "*" any.
// An empty list allows only the loopback names with DEBUG, and nothing without it.

import { tsgiError } from "../errors.ts";
import type { Environ } from "../gateway/environ.ts";
import type { Application } from "../gateway/request.ts";

const DEBUG_DEFAULT = ["localhost", "127.0.0.1", "[::1]", ".localhost"];

/** The host of a Host header or SERVER_NAME, lower case, without its port: "[::1]:8000" → "[::1]". */
export function hostOf(value: string): string {
  const v = value.trim().toLowerCase();
  if (v.startsWith("[")) {
    const end = v.indexOf("]");
    return end < 0 ? v : v.slice(0, end + 1);
  }
  const colon = v.lastIndexOf(":");
  const host = colon < 0 ? v : v.slice(0, colon);
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

/** Whether `host` (as hostOf gives it) is one of `patterns`. */
export function hostAllowed(host: string, patterns: readonly string[]): boolean {
  if (host === "" || /[^a-z0-9.\-[\]:]/.test(host)) return false;
  for (const raw of patterns) {
    const p = raw.toLowerCase();
    if (p === "*" || p === host) return true;
    if (p.startsWith(".") && (host.endsWith(p) || host === p.slice(1))) return true;
  }
  return false;
}

/** `app` behind the ALLOWED_HOSTS check; `["*"]` is `app` itself. */
export function allowedHosts(patterns: readonly string[], app: Application, options: { debug?: boolean } = {}): Application {
  const list = patterns.length === 0 && options.debug ? DEBUG_DEFAULT : patterns;
  if (list.includes("*")) return app;
  return (environ: Environ, startResponse) => {
    const header = environ.HTTP_HOST;
    const host = hostOf(typeof header === "string" && header !== "" ? header : String(environ.SERVER_NAME ?? ""));
    if (hostAllowed(host, list)) return app(environ, startResponse);
    const err = tsgiError("TSGI_ERR_SETTINGS_HOST", { host: JSON.stringify(host) });
    environ["tsgi.errors"].write(`${err.code}: ${err.message}\n`);
    startResponse("400 Bad Request", [["Content-Type", "text/plain; charset=utf-8"]]);
    return ["Bad Request (400)\n"];
  };
}

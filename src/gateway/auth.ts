// Authenticating against the application's own users from Apache (DESIGN §3), as mod_wsgi's
// auth scripts do: `authenticator(checkPassword)` and `authorizer(groupsForUser)` are TSGI
// applications that answer mod_authnz_fcgi's calls (the FastCGI AUTHORIZER role) from two
// callbacks, and hand back `Variable-NAME` headers that Apache puts into the request's
// environment, so the protected application (served by mod_proxy_fcgi) sees them as environ
// keys. Every failure answers 500 with a coded line in the error log: a helper never lets a
// request pass by accident.
//
// What mod_authnz_fcgi sends (modules/aaa/mod_authnz_fcgi.c, setupenv and req_rsp), in every
// call FCGI_ROLE=AUTHORIZER and the request's CGI variables, minus CONTENT_LENGTH, PATH_INFO,
// SCRIPT_NAME; no body:
// - `authn` provider on AuthBasicProvider: FCGI_APACHE_ROLE=AUTHENTICATOR, REMOTE_USER,
//   REMOTE_PASSWD. 200 grants; 500 is Apache's AUTH_GENERAL_ERROR; anything else denies
//   (401), and stops the AuthBasicProvider list: Apache cannot be told "unknown user".
// - `authnz` provider (the generic FastCGI authorizer): the same without FCGI_APACHE_ROLE.
// - `authz` provider on `Require NAME` (no arguments allowed): FCGI_APACHE_ROLE=AUTHORIZER,
//   REMOTE_USER, no password; only called once a user is authenticated. 200 grants, anything
//   else denies (401, or 403 with `AuthzSendForbiddenOnFailure On`).
// A 200 answer's headers other than Variable-* reach the client's response (Apache keeps
// them in err_headers_out), and a non-200 answer's body replaces Apache's error page in the
// check_user_id mode; so the helpers send Variable-* headers on a 200 and nothing else.

import { tsgiError, type ErrorCode } from "../errors.ts";
import type { Body, Environ } from "./environ.ts";
import type { Application } from "./request.ts";
import type { StartResponse } from "./start-response.ts";

/** Variables handed back to Apache: each becomes `Variable-NAME: value`, then the environ key NAME of the protected application. */
export type AuthVariables = Record<string, string>;

/**
 * `true` or an object of variables: the password is right. `false`: it is wrong. `null` or
 * `undefined`: no such user. Anything else, or a throw, is an error (500).
 */
export type PasswordCheck = boolean | null | undefined | AuthVariables;
export type CheckPassword = (environ: Environ, user: string, password: string) => PasswordCheck | Promise<PasswordCheck>;

/** The user's groups (an array or any iterable of names, not a string), or `null`/`undefined` for no such user. */
export type UserGroups = Iterable<string> | null | undefined;
export type GroupsForUser = (environ: Environ, user: string) => UserGroups | Promise<UserGroups>;

/**
 * The request variable that names the group(s) an authorizer call requires: mod_authnz_fcgi's
 * `Require NAME` takes no arguments, so Apache's configuration sets it per location with
 * mod_setenvif (which runs before the auth phases; mod_env's SetEnv runs after them, too late).
 * Several names, separated by spaces or commas, mean any one of them.
 */
export const REQUIRE_GROUP = "TSGI_REQUIRE_GROUP";

// The helpers built here: only to them does a helper hand an authorizer call it does not answer.
const helpers = new WeakSet<Application>();

// A variable name becomes a CGI variable (Apache: subprocess_env) and a FastCGI param.
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * An application answering mod_authnz_fcgi's `authn` (and `authnz`) calls with
 * `checkPassword(environ, user, password)`: 200 (with the returned variables) for a right
 * password, 401 for a wrong one or an unknown user, 500 when the callback throws or returns
 * something else. Other requests go to `next`: requests of the responder role to any
 * application, authorizer calls only to `authorizer()` (so pages never answer one).
 */
export function authenticator(checkPassword: CheckPassword, next?: Application): Application {
  checkSetup("authenticator", "checkPassword", checkPassword, next);
  const app: Application = (environ, startResponse) => {
    const role = callRole(environ);
    if (role !== "AUTHENTICATOR" && role !== "") return pass(environ, startResponse, role, next, "authenticator", "authn (FCGI_APACHE_ROLE=AUTHENTICATOR) and authnz");
    return authenticate(checkPassword, environ, startResponse);
  };
  helpers.add(app);
  return app;
}

/**
 * An application answering mod_authnz_fcgi's `authz` calls with `groupsForUser(environ, user)`:
 * 200 when one of the user's groups is one the request requires (`TSGI_REQUIRE_GROUP`), 403
 * when none is or the user is unknown, 500 when the callback throws or returns something else,
 * or when Apache named no group. Other requests go to `next`, as for authenticator().
 */
export function authorizer(groupsForUser: GroupsForUser, next?: Application): Application {
  checkSetup("authorizer", "groupsForUser", groupsForUser, next);
  const app: Application = (environ, startResponse) => {
    const role = callRole(environ);
    if (role !== "AUTHORIZER") return pass(environ, startResponse, role, next, "authorizer", "authz (FCGI_APACHE_ROLE=AUTHORIZER)");
    return authorize(groupsForUser, environ, startResponse);
  };
  helpers.add(app);
  return app;
}

function checkSetup(helper: string, callback: string, fn: unknown, next: unknown): void {
  if (typeof fn !== "function") throw tsgiError("TSGI_ERR_APP_AUTH_SETUP", { helper, what: `a ${callback} function`, got: typeName(fn) });
  if (next !== undefined && typeof next !== "function") throw tsgiError("TSGI_ERR_APP_AUTH_SETUP", { helper, what: "an application as its next argument, or none", got: typeName(next) });
}

/** null: not an authorizer call (a responder request); "": the generic AUTHORIZER (authnz); else FCGI_APACHE_ROLE. */
function callRole(environ: Environ): string | null {
  if (environ.FCGI_ROLE !== "AUTHORIZER") return null;
  return typeof environ.FCGI_APACHE_ROLE === "string" ? environ.FCGI_APACHE_ROLE : "";
}

function pass(environ: Environ, startResponse: StartResponse, role: string | null, next: Application | undefined, helper: string, answers: string): Body | Promise<Body> {
  if (next !== undefined && (role === null || helpers.has(next))) return next(environ, startResponse);
  if (role === null) return answer(startResponse, "404 Not Found");
  return fail(environ, startResponse, "TSGI_ERR_APP_AUTH_ROLE", { role: role === "" ? "(none: authnz)" : role, helper, answers });
}

async function authenticate(checkPassword: CheckPassword, environ: Environ, startResponse: StartResponse): Promise<Body> {
  const user = text(environ.REMOTE_USER);
  const password = text(environ.REMOTE_PASSWD);
  // No credentials, or credentials that are not text: no user store holds them.
  if (user === null || password === null) return answer(startResponse, "401 Unauthorized");
  let result: unknown;
  try {
    result = await checkPassword(environ, user, password);
  } catch (err) {
    return fail(environ, startResponse, "TSGI_ERR_APP_AUTH_CALLBACK", { callback: "checkPassword", user: JSON.stringify(user), reason: reasonOf(err) });
  }
  if (result === false || result === null || result === undefined) return answer(startResponse, "401 Unauthorized");
  if (result === true) return answer(startResponse, "200 OK");
  const headers = typeof result === "object" && !Array.isArray(result) ? variableHeaders(result as Record<string, unknown>) : "not true, false, null or an object of variables";
  if (typeof headers === "string") {
    return fail(environ, startResponse, "TSGI_ERR_APP_AUTH_RESULT", { callback: "checkPassword", user: JSON.stringify(user), got: describe(result), reason: headers });
  }
  return answer(startResponse, "200 OK", headers);
}

async function authorize(groupsForUser: GroupsForUser, environ: Environ, startResponse: StartResponse): Promise<Body> {
  const required = typeof environ[REQUIRE_GROUP] === "string" ? (text(environ[REQUIRE_GROUP]) ?? "").split(/[\s,]+/).filter(Boolean) : [];
  if (required.length === 0) return fail(environ, startResponse, "TSGI_ERR_APP_AUTH_NO_GROUP", { uri: JSON.stringify(String(environ.REQUEST_URI ?? "")) });
  const user = text(environ.REMOTE_USER);
  if (user === null) return answer(startResponse, "403 Forbidden");
  let result: unknown;
  try {
    result = await groupsForUser(environ, user);
  } catch (err) {
    return fail(environ, startResponse, "TSGI_ERR_APP_AUTH_CALLBACK", { callback: "groupsForUser", user: JSON.stringify(user), reason: reasonOf(err) });
  }
  if (result === null || result === undefined) return answer(startResponse, "403 Forbidden");
  const groups = groupList(result);
  if (groups === null) {
    return fail(environ, startResponse, "TSGI_ERR_APP_AUTH_RESULT", { callback: "groupsForUser", user: JSON.stringify(user), got: describe(result), reason: "not an array (or iterable) of group names, null or undefined" });
  }
  return answer(startResponse, required.some((g) => groups.has(g)) ? "200 OK" : "403 Forbidden");
}

/** The Variable-* headers of an object of variables, or why it cannot be one. */
function variableHeaders(vars: Record<string, unknown>): [string, string][] | string {
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(vars)) {
    if (!VARIABLE_NAME.test(name)) return `variable name ${JSON.stringify(name)} is not letters, digits and underscores`;
    if (typeof value !== "string") return `variable ${name} is ${typeName(value)}, not a string`;
    if (/[\r\n\0]/.test(value)) return `variable ${name} holds a CR, LF or NUL`;
    // Header values are byte strings (PEP 3333's latin-1): text goes as its UTF-8 bytes.
    headers.push([`Variable-${name}`, Buffer.from(value, "utf8").toString("latin1")]);
  }
  return headers;
}

function groupList(result: unknown): Set<string> | null {
  if (typeof result === "string" || typeof result !== "object" || result === null || typeof (result as Iterable<unknown>)[Symbol.iterator] !== "function") return null;
  const groups = new Set<string>();
  for (const g of result as Iterable<unknown>) {
    if (typeof g !== "string") return null;
    groups.add(g);
  }
  return groups;
}

/** An environ value (a byte string) as text, or null when absent or not UTF-8. */
function text(value: unknown): string | null {
  if (typeof value !== "string") return null;
  if (!/[^\x00-\x7f]/.test(value)) return value;
  try {
    return utf8.decode(Buffer.from(value, "latin1"));
  } catch {
    return null;
  }
}

function answer(startResponse: StartResponse, status: string, headers: [string, string][] = []): Body {
  startResponse(status, headers);
  return [];
}

function fail(environ: Environ, startResponse: StartResponse, code: ErrorCode, details: Record<string, unknown>): Body {
  environ["tsgi.errors"].write(`${code}: ${tsgiError(code, details).message}\n`);
  return answer(startResponse, "500 Internal Server Error");
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
}

function typeName(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return typeName(value);
}

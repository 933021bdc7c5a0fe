// The error catalogue: every error tsgi raises or logs has a stable code here, with its
// message template, the HTTP status a client sees and the FastCGI protocolStatus used when it
// ends a request. Callers match on `.code`, never on classes or messages. Native decoder
// statuses (native/status.h) map here by name through `nativeStatusCode`.

export const FCGI_REQUEST_COMPLETE = 0;
export const FCGI_CANT_MPX_CONN = 1;
export const FCGI_OVERLOADED = 2;
export const FCGI_UNKNOWN_ROLE = 3;

interface ErrorSpec {
  /** Message template; `{name}` is replaced from the details. */
  message: string;
  /** What the client sees when this error ends a request, if it does. */
  httpStatus?: number;
  /** FastCGI protocolStatus in FCGI_END_REQUEST, when this error ends a FastCGI request. */
  protocolStatus?: number;
  /** How to fix it: shown in docs/errors.md. */
  fix: string;
}

export const ERRORS = {
  // ---- FastCGI wire (one connection closed; the peer is named in the log line) ----
  TSGI_ERR_FCGI_VERSION: {
    message: "FastCGI record with version {version} (only 1 exists)",
    fix: "The peer does not speak FastCGI 1.0 (or is not FastCGI at all): check that the front server's fastcgi_pass / ProxyPass points at a FastCGI listener, not a uwsgi or HTTP one.",
  },
  TSGI_ERR_FCGI_UNEXPECTED_RECORD: {
    message: "FastCGI record out of place: {reason}",
    fix: "The peer broke FastCGI's record order (spec §3.3, §5); a stock nginx or Apache never does. Capture the connection and report it.",
  },
  TSGI_ERR_FCGI_BEGIN_BODY: {
    message: "FCGI_BEGIN_REQUEST whose body is not 8 bytes",
    fix: "The peer sends malformed FastCGI: capture the connection and report it.",
  },
  TSGI_ERR_FCGI_DUPLICATE_REQUEST: {
    message: "FCGI_BEGIN_REQUEST for a request id that is still active",
    fix: "The peer reused a request id before FCGI_END_REQUEST: a client bug.",
  },
  TSGI_ERR_FCGI_PARAMS_TOO_LARGE: {
    message: "FastCGI params larger than max-params ({limit} bytes)",
    httpStatus: 431,
    fix: "Raise the site's max-params (up to 1 MiB), or send fewer/smaller headers.",
  },
  TSGI_ERR_FCGI_PARAMS_MALFORMED: {
    message: "FastCGI name-value pairs run past their block",
    fix: "The peer sends malformed FastCGI params: capture the connection and report it.",
  },
  TSGI_ERR_FCGI_NAME_TOO_LONG: {
    message: "FastCGI param name longer than 8192 bytes",
    httpStatus: 431,
    fix: "A header name that long is not one any client sends; find what produces it.",
  },
  TSGI_ERR_FCGI_TRUNCATED: {
    message: "FastCGI connection closed inside a record",
    fix: "The front server went away mid-record (restart, crash, timeout); check its error log.",
  },
  TSGI_ERR_FCGI_HEADER_TIMEOUT: {
    message: "no complete FastCGI request within header-timeout ({timeout}s)",
    fix: "A peer opened a connection and sent too little; raise header-timeout if a slow front server really needs it.",
  },
  TSGI_ERR_FCGI_OVERLOADED: {
    message: "more than max-requests FastCGI requests active on one connection",
    protocolStatus: FCGI_OVERLOADED,
    fix: "The front server multiplexes more requests per connection than allowed; lower its multiplexing or raise the limit.",
  },
  TSGI_ERR_FCGI_UNKNOWN_ROLE: {
    message: "FastCGI role {role} is not served (RESPONDER and AUTHORIZER are)",
    protocolStatus: FCGI_UNKNOWN_ROLE,
    fix: "Use the RESPONDER role (fastcgi_pass, mod_proxy_fcgi) or AUTHORIZER (mod_authnz_fcgi).",
  },
  // ---- uwsgi wire ----
  TSGI_ERR_UWSGI_MODIFIER: {
    message: "uwsgi packet with modifier1 {modifier1} (only 0, a WSGI-style request, is served)",
    fix: "Remove uwsgi_modifier1 from the nginx configuration (or set it to 0).",
  },
  TSGI_ERR_UWSGI_VARS_TOO_LARGE: {
    message: "uwsgi vars block larger than max-params ({limit} bytes)",
    httpStatus: 431,
    fix: "Raise the site's max-params, or send fewer/smaller headers.",
  },
  TSGI_ERR_UWSGI_VARS_MALFORMED: {
    message: "uwsgi vars run past their block",
    fix: "The peer sends malformed uwsgi packets: check that it speaks uwsgi (uwsgi_pass, mod_proxy_uwsgi).",
  },
  TSGI_ERR_UWSGI_NAME_TOO_LONG: {
    message: "uwsgi var name longer than 8192 bytes",
    httpStatus: 431,
    fix: "A header name that long is not one any client sends; find what produces it.",
  },
  TSGI_ERR_UWSGI_CONTENT_LENGTH: {
    message: "uwsgi CONTENT_LENGTH is not a length",
    httpStatus: 400,
    fix: "The front server sent an invalid or conflicting CONTENT_LENGTH; check any uwsgi_param that sets it.",
  },
  TSGI_ERR_UWSGI_TRAILING_DATA: {
    message: "bytes after the end of a uwsgi request (one request per connection)",
    fix: "The peer pipelines requests on a uwsgi connection, which the protocol does not allow.",
  },
  TSGI_ERR_UWSGI_HEADER_TIMEOUT: {
    message: "no complete uwsgi request head within header-timeout ({timeout}s)",
    fix: "A peer opened a connection and sent too little; raise header-timeout if a slow front server really needs it.",
  },
  TSGI_ERR_UWSGI_TRUNCATED: {
    message: "uwsgi connection closed before the request was complete",
    fix: "The front server went away mid-request (client abort, restart, timeout); check its error log.",
  },
  // ---- environ (the request stops before the application) ----
  TSGI_ERR_ENVIRON_PATH_NOT_UTF8: {
    message: "the request path does not decode as UTF-8",
    httpStatus: 400,
    fix: "The client sent percent-escapes that are not UTF-8 (e.g. %FF); nothing to fix on the server.",
  },
  TSGI_ERR_ENVIRON_OUTSIDE_MOUNT: {
    message: "path {path} is outside the site's mount {mount}",
    httpStatus: 404,
    fix: "The front server passes paths the site does not own: align its location/ProxyPass prefix with the site's mount.",
  },
  // ---- the application's side of the contract ----
  TSGI_ERR_APP_BODY_TYPE: {
    message: "the application returned {type} as its body; {hint}",
    httpStatus: 500,
    fix: "Return an iterable (or async iterable) of Uint8Array/string chunks, e.g. [body].",
  },
  TSGI_ERR_APP_NO_START_RESPONSE: {
    message: "the application produced body data (or ended) without calling start_response",
    httpStatus: 500,
    fix: "Call startResponse(status, headers) before yielding the first chunk.",
  },
  TSGI_ERR_APP_BODY_TOO_LARGE: {
    message: "the request body is larger than max-body ({limit} bytes)",
    httpStatus: 413,
    fix: "Raise the site's max-body, or send a smaller body.",
  },
  TSGI_ERR_APP_BODY_INCOMPLETE: {
    message: "the request body ended after {received} of its {expected} bytes (CONTENT_LENGTH)",
    httpStatus: 400,
    fix: "The front server ended the body before its declared length (a FastCGI FCGI_STDIN end too early): the request is not whole, and is answered 400 when the application lets the error through.",
  },
  TSGI_ERR_APP_TIMEOUT: {
    message: "the request ran longer than request-timeout ({timeout})",
    httpStatus: 504,
    fix: "Make the handler faster, or raise the site's request-timeout.",
  },
  TSGI_ERR_APP_CLIENT_GONE: {
    message: "the client or the front server gave up on the request ({reason})",
    fix: "Nothing to fix: tsgi.signal told the application; check the front server's timeouts if it happens often.",
  },
  TSGI_ERR_APP_IMPORT: {
    message: "cannot import the application module {module}: {reason}",
    fix: "The module was found but did not import: the message gives a syntax error's file and line, or the exception its top-level code threw (where, and its stack follows in the error log). Fix it there; node --import tsx MODULE shows the same error outside tsgi.",
  },
  TSGI_ERR_APP_MODULE_NOT_FOUND: {
    message: "cannot find the application module {module}: {reason}",
    fix: "MODULE is a file relative to the site's cwd (or absolute), with its extension (mysite/tsgi.ts), or a package specifier (mypkg, mypkg/sub, @scope/pkg): check the path the message names. For a package, the file its exports or main names must exist (build the package, or point exports at its .ts sources).",
  },
  TSGI_ERR_APP_PACKAGE_NOT_FOUND: {
    message: "cannot find package {package} (for {module}) from {cwd}: looked in {looked}",
    fix: "Install the package in the project (npm install, which also links an npm workspace into node_modules), or run the site from the project's folder: set the site's cwd (--cwd) to the folder whose node_modules holds it.",
  },
  TSGI_ERR_APP_PACKAGE_EXPORTS: {
    message: "package {package} ({dir}) does not export {subpath} (for {module}); its exports: {exported}",
    fix: "Name a subpath the package's exports list (mypkg/sub for \"./sub\"), or add the subpath to the exports of its package.json.",
  },
  TSGI_ERR_APP_NO_EXPORT: {
    message: "{module} has no export {callable}{suggestion}; exports: {exports}",
    fix: "Name an export the module has after a colon (MODULE:handler), or export the application under that name: export const application = ... (a module whose only function is its default export serves without a name).",
  },
  TSGI_ERR_APP_NOT_CALLABLE: {
    message: "{module}'s export {callable} is {found}, not a function{hint}",
    fix: "The application is a function (environ, startResponse) => body: export it (export const application = ...), or name the export that is one after a colon: module.ts:name (a method of an exported object: module.ts:object.method).",
  },
  TSGI_ERR_APP_NODE_HANDLER: {
    message: "{module}'s export {callable} is a Node (req, res) handler ({evidence}), not a TSGI application: wrap it with import { fromNodeHandler } from \"tsgi\" and export const application = fromNodeHandler(app)",
    fix: "An Express, Connect or node:http handler takes (req, res[, next]); tsgi calls an application with (environ, startResponse), so served as it is every request would fail (res.setHeader is not a function). Export the wrapped handler: import { fromNodeHandler } from \"tsgi\"; export const application = fromNodeHandler(app).",
  },
  TSGI_ERR_APP_MIDDLEWARE: {
    message: "middleware {name}: {reason}",
    fix: "A middleware is a function (app) => application or a class whose instances are applications (extend Middleware from \"tsgi\"); applyMiddleware(app, [m1, m2]) takes the application first, then the list, the first outermost.",
  },
  TSGI_ERR_APP_MIDDLEWARE_CLASS: {
    message: "middleware {name} is a class whose instances are not applications: {reason}",
    fix: "A JavaScript class instance is not callable: write `class M extends Middleware { handle(environ, startResponse) { … this.app(environ, startResponse) … } }` with Middleware from \"tsgi\" (README: Middleware and request_finished).",
  },
  TSGI_ERR_APP_CLOSE_DROPPED: {
    message: "middleware {name} did not call close() of the body its application returned; tsgi closed it after the response",
    fix: "A middleware that returns a body of its own must forward close() to the inner one: return closing(innerBody, fn), or give the new body close: () => innerBody.close?.(). Shown in development only (settings DEBUG, or TSGI_DEBUG=1).",
  },
  TSGI_ERR_APP_REQUEST_FINISHED: {
    message: "requestFinished: {reason}",
    fix: "requestFinished.connect() takes a function (environ) => void; a listener that throws is logged (its stack above) and the response and the other listeners are not affected: fix the listener.",
  },
  TSGI_ERR_APP_CONTRACT: {
    message: "the application broke the TSGI contract: {reason}",
    httpStatus: 500,
    fix: "Reported by validate(): the message says which rule of the interface (docs/interface.md) the application broke.",
  },
  TSGI_ERR_APP_AUTH_SETUP: {
    message: "{helper}() needs {what}: got {got}",
    fix: "Pass authenticator() a checkPassword(environ, user, password) function and authorizer() a groupsForUser(environ, user) function, and as the optional second argument the application that serves everything else (docs/apache-auth.md).",
  },
  TSGI_ERR_APP_AUTH_CALLBACK: {
    message: "{callback} threw for user {user}; the request is refused (500): {reason}",
    httpStatus: 500,
    fix: "Fix the callback (the stack above is its error): a user store that cannot be read or a malformed user record refuses everyone it touches, never lets them pass.",
  },
  TSGI_ERR_APP_AUTH_RESULT: {
    message: "{callback} returned {got} for user {user}: {reason}; the request is refused (500)",
    httpStatus: 500,
    fix: "checkPassword returns true, false, null (no such user) or an object of string variables whose names are letters, digits and underscores; groupsForUser returns an array of group names or null (docs/apache-auth.md).",
  },
  TSGI_ERR_APP_AUTH_ROLE: {
    message: "a mod_authnz_fcgi call with FCGI_APACHE_ROLE {role} reached {helper}(), which answers {answers}; refused (500)",
    httpStatus: 500,
    fix: "Apache calls this site as a provider type it does not serve: define the AuthnzFcgiDefineProvider types the application answers (authn for authenticator(), authz for authorizer()), or chain the missing helper: authenticator(checkPassword, authorizer(groupsForUser, app)).",
  },
  TSGI_ERR_APP_AUTH_NO_GROUP: {
    message: "an authorizer call for {uri} names no group in TSGI_REQUIRE_GROUP; refused (500)",
    httpStatus: 500,
    fix: "mod_authnz_fcgi's `Require PROVIDER` takes no arguments: name the group the location requires with `SetEnvIf Request_URI \"^\" TSGI_REQUIRE_GROUP=GROUP` beside the Require line (docs/apache-auth.md).",
  },
  TSGI_ERR_ENVIRON_CONTRACT: {
    message: "the server broke the TSGI contract: {reason}",
    httpStatus: 500,
    fix: "Reported by validate(): a bug in tsgi (or in a middleware that rewrites the environ); report it with the message.",
  },
  // ---- the response ----
  TSGI_ERR_RESPONSE_STATUS: {
    message: "invalid status {status}: expected three digits, a space and a reason, e.g. \"200 OK\"",
    httpStatus: 500,
    fix: "Pass startResponse a status like \"404 Not Found\".",
  },
  TSGI_ERR_RESPONSE_HEADER: {
    message: "invalid response header: {reason}",
    httpStatus: 500,
    fix: "Headers are [name, value] pairs of strings; names are HTTP tokens, values have no CR, LF or NUL.",
  },
  TSGI_ERR_RESPONSE_HOP_BY_HOP: {
    message: "hop-by-hop header {name} is not allowed in a response (the front server owns the connection)",
    httpStatus: 500,
    fix: "Remove the header: Connection, Keep-Alive, Transfer-Encoding, Upgrade, TE, Trailer and Proxy-* belong to the front server.",
  },
  TSGI_ERR_RESPONSE_STARTED_TWICE: {
    message: "start_response called a second time without excInfo",
    httpStatus: 500,
    fix: "Call startResponse again only from an error handler, passing the caught error as excInfo.",
  },
  TSGI_ERR_RESPONSE_CHUNK: {
    message: "a body chunk of type {type}: chunks are Uint8Array or string",
    httpStatus: 500,
    fix: "Yield Buffers, Uint8Arrays or strings from the body.",
  },
  // ---- configuration ----
  TSGI_ERR_CONFIG_LISTEN: {
    message: "listen {listen} is not PROTO:HOST:PORT or PROTO:unix:PATH with PROTO fastcgi, uwsgi or http",
    fix: "Write it as fastcgi:127.0.0.1:9000, uwsgi:unix:/run/tsgi/site.sock or http:[::1]:8000.",
  },
  TSGI_ERR_CONFIG_INVALID: {
    message: "{where}: {reason}",
    fix: "The message names the site and key; `tsgi check -c tsgi.toml` lists every error at once.",
  },
  TSGI_ERR_CONFIG_FILE: {
    message: "{problem}{more}",
    fix: "Each problem names the file, the site (or [defaults], or the top level) and the key; `tsgi check -c tsgi.toml` lists them all, one a line. The keys and what they accept are in docs/settings.md.",
  },
  TSGI_ERR_CONFIG_NO_SITE: {
    message: "{file} has no site {site}; its sites: {sites}",
    fix: "Give the name of one of the file's [site.NAME] tables, as `tsgi check -c tsgi.toml` lists them.",
  },
  TSGI_ERR_CONFIG_UNKNOWN_FRONT: {
    message: "tsgi conf writes no configuration for {front}; it writes one for {fronts}",
    fix: "Write `tsgi conf nginx SITE`, `tsgi conf apache SITE` or `tsgi conf systemd SITE` (docs/conf.md).",
  },
  TSGI_ERR_CONFIG_FRONT: {
    message: "tsgi conf {front} {site}: {reason}",
    fix: "The message names the setting of the site to change (its listen entries or mount), or the --listen option that names none of its listen entries.",
  },
  // ---- a project's settings module ----
  TSGI_ERR_SETTINGS_UNSET: {
    message: "TSGI_SETTINGS_MODULE is not set: getTsgiApplication() does not know which settings module to read",
    fix: "Set it before the call, the environment winning: process.env.TSGI_SETTINGS_MODULE ??= \"mysite/settings\" in tsgi.ts, or the site's `settings` key in tsgi.toml.",
  },
  TSGI_ERR_SETTINGS_MODULE: {
    message: "cannot find the settings module {module} (TSGI_SETTINGS_MODULE) from {root}: {reason}",
    fix: "TSGI_SETTINGS_MODULE is a path from the project root without its extension (mysite/settings for mysite/settings.ts) or a package name; run tsgi from the project root or set the site's cwd.",
  },
  TSGI_ERR_SETTINGS_NOT_FOUND: {
    message: "tsgi runserver: no settings module: neither --settings nor TSGI_SETTINGS_MODULE names one, tsgi.toml in {root} names none and no folder of it has a settings.{ts,mts,cts,js,mjs,cjs}",
    fix: "Run tsgi runserver from the project root (or give --root DIR), or name the module: tsgi runserver --settings mysite/settings, or TSGI_SETTINGS_MODULE=mysite/settings.",
  },
  TSGI_ERR_SETTINGS_AMBIGUOUS: {
    message: "tsgi runserver: several settings modules in {root} ({found}): which one to serve?",
    fix: "Name the one to serve: tsgi runserver --settings mysite/settings (or TSGI_SETTINGS_MODULE=mysite/settings).",
  },
  TSGI_ERR_SETTINGS_INVALID: {
    message: "settings {module}: {key} must be {expected}, not {got}",
    fix: "Export the setting with that type from the settings module (README: Settings).",
  },
  TSGI_ERR_SETTINGS_NO_ROOT: {
    message: "settings {module} export no ROOT_APPLICATION: getTsgiApplication() has nothing to wrap",
    fix: "Name the project's application in the settings module: export const ROOT_APPLICATION = \"mysite/app.ts:application\".",
  },
  TSGI_ERR_SETTINGS_NO_APPLICATION: {
    message: "the site has no app, and settings {module} export no TSGI_APPLICATION",
    fix: "Give the site app = \"MODULE:CALLABLE\" in tsgi.toml, or name it in the settings module: export const TSGI_APPLICATION = \"mysite/tsgi.ts:application\".",
  },
  TSGI_ERR_PROJECT_NAME: {
    message: "cannot start a project named {name}: {reason}",
    fix: "Name the project with an identifier such as mysite or my_site (it becomes the package folder and the site's name).",
  },
  TSGI_ERR_PROJECT_EXISTS: {
    message: "startproject writes nothing into {root}: there already is {files}",
    fix: "Give an empty or new folder (tsgi startproject NAME DIR), or move those files away; startproject never overwrites.",
  },
  TSGI_ERR_SETTINGS_MIDDLEWARE: {
    message: "middleware {spec} returned {got}, not an application",
    fix: "A MIDDLEWARE entry names a function (app) => application or a class whose instances are applications (new M(app)).",
  },
  TSGI_ERR_SETTINGS_HOST: {
    message: "the Host {host} is not in ALLOWED_HOSTS; refused (400) before the application",
    httpStatus: 400,
    fix: "If it is a name of this site, add it to ALLOWED_HOSTS in the settings module (\".example.com\" allows the domain and every subdomain, \"*\" any host); otherwise a client or a scanner sent a Host it should not, and the 400 is meant.",
  },
  // ---- process groups ----
  TSGI_ERR_POOL_BOOT: {
    message: "site {site}: a worker failed to start: {reason}",
    fix: "Fix the error shown (usually the application's import), then reload.",
  },
  TSGI_ERR_POOL_PEER_REFUSED: {
    message: "{peer} is not in allow: its connection to {listener} was closed{more}",
    fix: "A TCP peer the site's `allow` does not list connected. If it is your front server, add its address (or network) to `allow`; anything else (a scan, a stray client) is kept out as meant. At most one such line a second per worker and listener: the line counts those left out.",
  },
  // ---- the master ----
  TSGI_ERR_MASTER_SOCKET_IN_USE: {
    message: "unix socket {path} is in use: {reason}",
    fix: "Another process (another tsgi, or another server) answers on that path: stop it, or give this site a socket of its own. A stale socket file that nothing answers on (left by a crash) is replaced by itself.",
  },
  TSGI_ERR_MASTER_LISTEN: {
    message: "cannot listen on {address}: {reason}",
    fix: "EADDRINUSE: another process holds the address (`ss -ltnp` names it); EACCES: a port below 1024 needs root, a unix socket a folder the master may write.",
  },
  TSGI_ERR_MASTER_UNREACHABLE: {
    message: "{reason}",
    fix: "`tsgi status`, `tsgi reload` and `tsgi stop` talk to the master through the control socket of the same -c tsgi.toml: start it with `tsgi daemon -c tsgi.toml`, give the same file, and run them as the master's user (the socket is 0600).",
  },
  // ---- native bridge ----
  TSGI_ERR_NATIVE_LOAD: {
    message: "the native bridge does not load ({reason}): build it with `npm rebuild tsgi` (or `npm run build:native` in a clone of tsgi)",
    fix: "Run `npm rebuild tsgi` (it needs python3, make and g++), or `npm run build:native` in a checkout.",
  },
  TSGI_ERR_NATIVE_ARGUMENT: {
    message: "invalid argument to the native bridge: {reason}",
    fix: "A bug in the caller: the message names the argument.",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export interface TsgiError extends Error {
  code: ErrorCode;
  details: Record<string, unknown>;
}

/**
 * Builds the error for `code`, filling `{name}` placeholders from `details`; `cause` is the
 * error behind it (the error log prints the application's frames of it).
 */
export function tsgiError(code: ErrorCode, details: Record<string, unknown> = {}, cause?: unknown): TsgiError {
  const spec: ErrorSpec = ERRORS[code];
  const message = spec.message.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in details ? String(details[name]) : whole,
  );
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code, details });
}

/** Maps a native decoder status name (native/status.h) to its code. */
export function nativeStatusCode(status: string): ErrorCode {
  const code = `TSGI_ERR_${status}`;
  if (!(code in ERRORS)) throw new Error(`native status ${status} has no entry in src/errors.ts`);
  return code as ErrorCode;
}

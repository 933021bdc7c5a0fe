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
  TSGI_ERR_UWSGI_TRUNCATED: {
    message: "uwsgi connection closed before the request was complete",
    fix: "The front server went away mid-request (client abort, restart, timeout); check its error log.",
  },
  // ---- native bridge ----
  TSGI_ERR_NATIVE_LOAD: {
    message: "cannot load the native bridge ({reason})",
    fix: "Run `npm rebuild tsgi` (it needs python3, make and g++), or `npm run build:cmake` in a checkout.",
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

/** Builds the error for `code`, filling `{name}` placeholders from `details`. */
export function tsgiError(code: ErrorCode, details: Record<string, unknown> = {}): TsgiError {
  const spec: ErrorSpec = ERRORS[code];
  const message = spec.message.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in details ? String(details[name]) : whole,
  );
  return Object.assign(new Error(message), { code, details });
}

/** Maps a native decoder status name (native/status.h) to its code. */
export function nativeStatusCode(status: string): ErrorCode {
  const code = `TSGI_ERR_${status}`;
  if (!(code in ERRORS)) throw new Error(`native status ${status} has no entry in src/errors.ts`);
  return code as ErrorCode;
}

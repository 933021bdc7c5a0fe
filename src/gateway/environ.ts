// Builds a request's `environ` (DESIGN §1) from the params any protocol delivered: the CGI
// keys as the front server sent them, the path split at the site's mount into SCRIPT_NAME
// and PATH_INFO, and the `tsgi.*` keys. Every normalisation rule below says where the key
// comes from and why it is changed; params are byte strings (one char per byte) from the
// native decoders.

import { tsgiError, type TsgiError } from "../errors.ts";
import type { RequestAbort } from "./abort.ts";
import type { TsgiInput } from "./input.ts";

export interface ErrorStream {
  write(text: string): void;
  flush(): void;
}

export type Chunk = Uint8Array | string;
export type Body = (Iterable<Chunk> | AsyncIterable<Chunk>) & { close?: () => void | Promise<void> };
export type FileWrapper = (pathOrFd: string | number, blockSize?: number) => Body;

export interface Environ {
  [key: string]: unknown;
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  "tsgi.version": [1, 0];
  "tsgi.url_scheme": "http" | "https";
  "tsgi.input": TsgiInput;
  "tsgi.errors": ErrorStream;
  "tsgi.multithread": false;
  "tsgi.multiprocess": boolean;
  "tsgi.run_once": false;
  "tsgi.input_terminated": true;
  "tsgi.signal": AbortSignal;
  "tsgi.file_wrapper": FileWrapper;
}

export interface EnvironContext {
  /** The site's mount point: "" or "/prefix" without a trailing slash. */
  mount: string;
  input: TsgiInput;
  errors: ErrorStream;
  multiprocess: boolean;
  abort: RequestAbort;
  fileWrapper: FileWrapper;
}

/** Normalises a `mount` setting: "" or "/a/b" (no trailing slash). */
export function normalizeMount(mount: string): string {
  const trimmed = mount.replace(/\/+$/, "");
  if (trimmed === "") return "";
  return trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
}

const NON_ASCII = /[^\x00-\x7f]/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A byte string (one char per byte) read as UTF-8; null when the bytes are not UTF-8. */
function fromBytes(bytes: string): string | null {
  if (!NON_ASCII.test(bytes)) return bytes;
  try {
    return utf8.decode(Buffer.from(bytes, "latin1"));
  } catch {
    return null;
  }
}

/** Percent-decodes a byte string into a byte string (a bad escape stays as written, as nginx does). */
function percentDecode(raw: string): string {
  if (!raw.includes("%")) return raw;
  return raw.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * Resolves "." and ".." segments (RFC 3986 §5.2.4) after decoding, so that an encoded
 * "%2e%2e" cannot climb either; ".." at the root stays at the root. Repeated slashes are kept
 * as sent (DESIGN §1): nginx merges them itself unless told not to, and then means it.
 */
function removeDotSegments(path: string): string {
  if (!path.includes(".")) return path;
  const segments = path.split("/");
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === ".") {
      if (last) out.push("");
    } else if (s === "..") {
      if (out.length > 1) out.pop();
      if (last) out.push("");
    } else {
      out.push(s);
    }
  }
  return out.join("/");
}

/**
 * The decoded path the front server decided on (DESIGN §1), as a byte string:
 * - nginx `fastcgi_params` sends DOCUMENT_URI ($document_uri: decoded, after rewrites) and a
 *   SCRIPT_NAME that is the same path; no PATH_INFO.
 * - nginx `uwsgi_params` sends PATH_INFO = $document_uri and no SCRIPT_NAME; Apache
 *   mod_proxy_uwsgi sends both, split at the ProxyPass prefix; Apache mod_proxy_fcgi sends
 *   the whole decoded path as SCRIPT_NAME (PATH_INFO only with `proxy-fcgi-pathinfo`).
 *   In each case SCRIPT_NAME + PATH_INFO is the whole decoded path.
 * - REQUEST_URI (raw, as the client sent it) only where none of those came.
 */
function decidedPath(params: Record<string, string>): string {
  if (params.DOCUMENT_URI) return params.DOCUMENT_URI;
  if (params.SCRIPT_NAME || params.PATH_INFO) return (params.SCRIPT_NAME ?? "") + (params.PATH_INFO ?? "");
  const uri = params.REQUEST_URI;
  if (uri) {
    const q = uri.indexOf("?");
    return percentDecode(q < 0 ? uri : uri.slice(0, q));
  }
  return "/";
}

/**
 * A name sent twice. nginx before 1.23 passes a repeated request header as two params
 * (1.23+ merges them itself), so HTTP_* values are combined as HTTP does (RFC 9110 §5.3:
 * ", "; cookies with "; ", RFC 6265 §5.4) and every front server gives the same environ.
 * Any other repeated name keeps its last value, as PHP-FPM does.
 */
function repeated(name: string, prev: string, value: string): string {
  if (!name.startsWith("HTTP_")) return value;
  return name === "HTTP_COOKIE" ? `${prev}; ${value}` : `${prev}, ${value}`;
}

/** `tsgi.version`: one frozen array for every environ (as WSGI's is a tuple), not an array a request. */
const VERSION: [1, 0] = Object.freeze([1, 0]) as unknown as [1, 0];

export type EnvironResult = { environ: Environ } | { error: TsgiError; httpStatus: 400 | 404 };

/** Where an environ keeps its request's abort, for the one getter all environs share. */
const ABORT = Symbol("tsgi.abort");

/**
 * `tsgi.signal` is made on first use (most applications never look: see abort.ts), so it is
 * a getter — one function for every environ, reading the request's abort from a symbol-keyed
 * property. A getter of its own per environ (a closure in the literal, or given to
 * defineProperty) made V8 allocate every environ's accessor and closure in the old
 * generation: about 210 KB promoted a scavenge (≈ 300 bytes a request), 2–3 µs of GC a
 * request under W1 and the mark-compacts after it, where node:http promotes next to nothing.
 */
const SIGNAL: PropertyDescriptor = {
  get(this: { [ABORT]: RequestAbort }) {
    return this[ABORT].signal;
  },
  enumerable: true,
  configurable: true,
};

/** A request's CGI params, in the object that becomes its environ (buildEnviron). */
export type Params = Record<string, string>;

/**
 * What newParams makes an environ with: a constructor that never stores anything (under `new`
 * `this` is never undefined) but names 64 `this.` stores, by which V8 sizes the objects it
 * makes (trimmed, after the first few, to what those used). A request's params and tsgi.*
 * keys then fit in the object itself, where one from `{}` holds 4 and grows an array for the
 * rest 3 slots at a time: 1.8 -> 1.0 KB allocated an environ (the values included). Its
 * prototype is Object's: an environ is still a plain object (its prototype, `constructor`,
 * util.inspect and JSON see no difference). Without code made from strings (node
 * --disallow-code-generation-from-strings) environs are made as `{}` would be.
 */
const EnvironObject: new () => Params = (() => {
  let make: new () => Params;
  try {
    const stores = Array.from({ length: 64 }, (_, i) => `this.slot${i} = 0;`).join(" ");
    make = new Function(`if (this === undefined) { ${stores} }`) as unknown as new () => Params;
  } catch {
    make = function EnvironObject() {} as unknown as new () => Params;
  }
  make.prototype = Object.prototype;
  return make;
})();

/**
 * The object a request's params are stored into, which becomes its environ. The getter goes
 * first, on the empty object: defined there it costs what a literal's does (defineProperty on
 * the finished environ cost 2 µs, half of building it).
 */
export function newParams(abort: RequestAbort): Params {
  const params: Params = new EnvironObject();
  (params as unknown as { [ABORT]: RequestAbort })[ABORT] = abort;
  Object.defineProperty(params, "tsgi.signal", SIGNAL);
  return params;
}

/**
 * An empty CONTENT_TYPE/CONTENT_LENGTH is nginx's `$content_type` of a request without one:
 * absent, not "" (DESIGN §1), so `"CONTENT_LENGTH" in environ` means a length was given.
 */
export function absentWhenEmpty(name: string): boolean {
  return name === "CONTENT_LENGTH" || name === "CONTENT_TYPE";
}

/**
 * Stores one param as the environ keeps it. `fresh`: the name is known not to have come
 * before in this request (the native listeners know, src/protocol/native-listener.ts), so
 * nothing is looked up first.
 */
export function addParam(params: Params, name: string, value: string, fresh = false): void {
  // The tsgi.* keys are the gateway's: a front server's param of that name is dropped.
  if (name.startsWith("tsgi.")) return;
  if (value === "" && absentWhenEmpty(name)) return;
  if (fresh) {
    params[name] = value;
    return;
  }
  const prev = params[name];
  params[name] = prev === undefined ? value : repeated(name, prev, value);
}

/** The params of a list [name0, value0, name1, …] (the HTTP listener's, the decoders'). */
export function paramsOf(list: string[], abort: RequestAbort): Params {
  const params = newParams(abort);
  for (let i = 0; i + 1 < list.length; i += 2) addParam(params, list[i]!, list[i + 1]!);
  return params;
}

/**
 * The environ of one request, or the client error that stops it before the application:
 * from its params as a list, or as newParams/addParam stored them (then with `ctx.abort` as
 * the abort they were made with).
 */
export function buildEnviron(source: string[] | Params, ctx: EnvironContext): EnvironResult {
  const params = Array.isArray(source) ? paramsOf(source, ctx.abort) : source;

  const path = fromBytes(decidedPath(params));
  if (path === null) {
    return { error: tsgiError("TSGI_ERR_ENVIRON_PATH_NOT_UTF8", {}), httpStatus: 400 };
  }
  const resolved = removeDotSegments(path);
  const mount = ctx.mount;
  if (mount !== "" && resolved !== mount && !resolved.startsWith(`${mount}/`)) {
    return { error: tsgiError("TSGI_ERR_ENVIRON_OUTSIDE_MOUNT", { path: resolved, mount }), httpStatus: 404 };
  }

  const environ = params as unknown as Environ;
  environ.SCRIPT_NAME = mount;
  environ.PATH_INFO = resolved.slice(mount.length);
  environ.REQUEST_METHOD ??= "GET";
  environ.QUERY_STRING ??= "";

  const https = params.HTTPS?.toLowerCase();
  environ["tsgi.version"] = VERSION;
  environ["tsgi.url_scheme"] =
    https === "on" || https === "1" || params.REQUEST_SCHEME?.toLowerCase() === "https" ? "https" : "http";
  environ["tsgi.input"] = ctx.input;
  environ["tsgi.errors"] = ctx.errors;
  environ["tsgi.multithread"] = false;
  environ["tsgi.multiprocess"] = ctx.multiprocess;
  environ["tsgi.run_once"] = false;
  environ["tsgi.input_terminated"] = true;
  environ["tsgi.file_wrapper"] = ctx.fileWrapper;
  return { environ };
}

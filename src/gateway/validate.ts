// `validate(app)`: a checker in the spirit of Python's wsgiref.validate. It wraps an
// application and reports every breach of the TSGI contract (DESIGN §1) by either side: the
// server's (an environ key missing or mistyped, close() called twice, an input that reads past
// its length) and the application's (a bad status or header, start_response called twice
// without excInfo, a string returned as the body, a chunk that is not bytes, data before
// start_response). Each report is a TsgiError whose code says which side broke it.

import { tsgiError, type TsgiError } from "../errors.ts";
import type { Body, Chunk, Environ } from "./environ.ts";
import type { Application } from "./request.ts";
import { checkResponseHead, type StartResponse } from "./start-response.ts";

export type Report = (err: TsgiError) => void;

const throwIt: Report = (err) => {
  throw err;
};

const CGI_STRINGS = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING"];
const OPTIONAL_STRINGS = ["CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REQUEST_URI", "REMOTE_ADDR"];

function checkEnviron(environ: Environ, server: (reason: string) => void): void {
  if (environ === null || typeof environ !== "object" || Array.isArray(environ)) return server("environ is not a plain object");
  for (const key of CGI_STRINGS) if (typeof environ[key] !== "string") server(`environ.${key} is missing or not a string`);
  for (const key of OPTIONAL_STRINGS) {
    if (key in environ && typeof environ[key] !== "string") server(`environ.${key} is not a string`);
    if (key in environ && environ[key] === "" && (key === "CONTENT_TYPE" || key === "CONTENT_LENGTH")) {
      server(`environ.${key} is "" (absent, not empty, when the front server sent none)`);
    }
  }
  for (const [key, value] of Object.entries(environ)) {
    if (key.startsWith("HTTP_") && typeof value !== "string") server(`environ.${key} is not a string`);
  }
  if (typeof environ.CONTENT_LENGTH === "string" && !/^\d+$/.test(environ.CONTENT_LENGTH)) {
    server(`environ.CONTENT_LENGTH ${JSON.stringify(environ.CONTENT_LENGTH)} is not digits`);
  }
  const script = environ.SCRIPT_NAME;
  const path = environ.PATH_INFO;
  if (typeof script === "string" && script !== "" && (!script.startsWith("/") || script.endsWith("/"))) {
    server(`SCRIPT_NAME ${JSON.stringify(script)} must be "" or start with "/" and not end with it`);
  }
  if (typeof path === "string" && path !== "" && !path.startsWith("/")) server(`PATH_INFO ${JSON.stringify(path)} must be "" or start with "/"`);
  if (script === "" && path === "") server('SCRIPT_NAME and PATH_INFO are both "": PATH_INFO should be "/"');
  const v = environ["tsgi.version"];
  if (!Array.isArray(v) || v[0] !== 1 || v[1] !== 0) server("tsgi.version is not [1, 0]");
  if (environ["tsgi.url_scheme"] !== "http" && environ["tsgi.url_scheme"] !== "https") server('tsgi.url_scheme is not "http" or "https"');
  const input = environ["tsgi.input"] as unknown as Record<string | symbol, unknown> | undefined;
  for (const m of ["read", "readline", "readlines"]) if (typeof input?.[m] !== "function") server(`tsgi.input.${m} is not a function`);
  if (typeof input?.[Symbol.asyncIterator] !== "function") server("tsgi.input is not async iterable");
  const errors = environ["tsgi.errors"] as unknown as Record<string, unknown> | undefined;
  for (const m of ["write", "flush"]) if (typeof errors?.[m] !== "function") server(`tsgi.errors.${m} is not a function`);
  for (const key of ["tsgi.multithread", "tsgi.multiprocess", "tsgi.run_once", "tsgi.input_terminated"]) {
    if (typeof environ[key] !== "boolean") server(`${key} is not a boolean`);
  }
  if (!(environ["tsgi.signal"] instanceof AbortSignal)) server("tsgi.signal is not an AbortSignal");
  if (typeof environ["tsgi.file_wrapper"] !== "function") server("tsgi.file_wrapper is not a function");
}

/** Wraps `app`; breaches go to `report` (by default they are thrown, as wsgiref raises). */
export function validate(app: Application, report: Report = throwIt): Application {
  return async (environ, startResponse) => {
    const server = (reason: string) => report(tsgiError("TSGI_ERR_ENVIRON_CONTRACT", { reason }));
    const application = (reason: string) => report(tsgiError("TSGI_ERR_APP_CONTRACT", { reason }));
    checkEnviron(environ, server);

    let started = false;
    const checkedStart: StartResponse = (status, headers, excInfo) => {
      try {
        checkResponseHead(status, headers);
      } catch (err) {
        application((err as Error).message);
      }
      if (started && (excInfo === undefined || excInfo === null)) application("start_response called a second time without excInfo");
      if (excInfo !== undefined && excInfo !== null && !started) application("start_response called with excInfo before any first call");
      started = true;
      const write = startResponse(status, headers, excInfo);
      return (chunk: Chunk) => {
        if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) application(`write() given ${typeof chunk}, not bytes or a string`);
        return write(chunk);
      };
    };

    const body = await app(environ, checkedStart);
    if (typeof body === "string" || body instanceof Uint8Array) {
      application("the body is a string or a Uint8Array; return an iterable of chunks, e.g. [body]");
      return body as unknown as Body;
    }
    if (body === null || typeof body !== "object" || !(Symbol.iterator in body || Symbol.asyncIterator in body)) {
      application(`the body is ${body === null ? "null" : typeof body}, not an iterable of chunks`);
      return body;
    }

    const checkChunk = (chunk: unknown) => {
      if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) application(`a body chunk is ${typeof chunk}, not bytes or a string`);
      else if (chunk.length > 0) {
        if (!started) application("a non-empty body chunk came before start_response");
      }
    };
    let closes = 0;
    const close = async () => {
      closes++;
      if (closes > 1) server("close() of the body was called more than once");
      await body.close?.();
    };
    if (Symbol.asyncIterator in body) {
      const source = body as AsyncIterable<Chunk>;
      return {
        async *[Symbol.asyncIterator]() {
          for await (const chunk of source) {
            checkChunk(chunk);
            yield chunk;
          }
        },
        close,
      };
    }
    const source = body as Iterable<Chunk>;
    return {
      *[Symbol.iterator]() {
        for (const chunk of source) {
          checkChunk(chunk);
          yield chunk;
        }
      },
      close,
    };
  };
}

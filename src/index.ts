// The package's face (DESIGN §3): what an application imports from "tsgi". Published as
// built JavaScript (dist/index.mjs, dist/index.cjs) with .d.ts files, so a JavaScript
// application, ESM or CommonJS, needs no TypeScript loader to import it. Nothing here loads
// the native bridge: an application imports these helpers in any process, tsgi's or not.

// The interface (TSGI 1.0, DESIGN §1).
export type { Application } from "./gateway/request.ts";
export type { Body, Chunk, Environ, ErrorStream, FileWrapper } from "./gateway/environ.ts";
export type { Headers, StartResponse, Write } from "./gateway/start-response.ts";
export type { TsgiInput } from "./gateway/input.ts";
export { fileWrapper, type FileBody } from "./gateway/body.ts";
export { validate, type Report } from "./gateway/validate.ts";

// Errors: every one tsgi raises has a code (docs/errors.md).
export type { ErrorCode, TsgiError } from "./errors.ts";

// Projects: settings and the application they name.
export { getTsgiApplication, loadSettings, type ProjectSettings } from "./project/settings.ts";
export { allowedHosts, hostAllowed } from "./project/allowed-hosts.ts";

// Authenticating from Apache (mod_authnz_fcgi, the FastCGI AUTHORIZER role).
export {
  authenticator,
  authorizer,
  REQUIRE_GROUP,
  type AuthVariables,
  type CheckPassword,
  type GroupsForUser,
  type PasswordCheck,
  type UserGroups,
} from "./gateway/auth.ts";

// Middleware and request_finished (DESIGN §3): a chain of middleware, the base class that
// makes `new M(app)` an application, closing() to forward close(), and the event fired once
// per request after its body was closed.
export {
  applyMiddleware,
  closing,
  Middleware,
  type ApplyMiddlewareOptions,
  type MiddlewareFactory,
} from "./gateway/middleware.ts";
export { requestFinished, type RequestFinished, type RequestFinishedListener } from "./gateway/request-finished.ts";

// Combining frameworks (DESIGN §3): a node:http handler (Express, Connect, Fastify) as an
// application, an application as a node:http handler, and dispatch on a path prefix.
export { fromNodeHandler, mount, toNodeHandler, type NodeHandler } from "./gateway/adapters.ts";

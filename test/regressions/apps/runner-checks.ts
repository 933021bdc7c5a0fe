// The application of issue-8-request-runner.test.ts (issue 8, point 14): a synchronous
// application (no promise anywhere unless ?async=1, then the same answer from an async
// function), with one route per mistake the server itself must refuse. No validator in front.
//
//   /array          200 "sync array" (a plain array)
//   /bad-status     start_response("200", …)
//   /hop            a Connection header
//   /status-header  a Status header
//   /string         a string body
//   /bytes          a Uint8Array body
//   /null           a null body
//   /number         a body [42]
//   /no-start       a body without start_response
//   /twice          start_response twice without excInfo

import type { Environ } from "../../../src/gateway/environ.ts";
import type { Application } from "../../../src/gateway/request.ts";
import type { StartResponse } from "../../../src/gateway/start-response.ts";

const plain: [string, string][] = [["Content-Type", "text/plain"]];

function sync(environ: Environ, start: StartResponse): unknown {
  switch (environ.PATH_INFO) {
    case "/array":
      start("200 OK", [...plain, ["Content-Length", "10"]]);
      return ["sync array"];
    case "/bad-status":
      start("200", plain);
      return ["never"];
    case "/hop":
      start("200 OK", [...plain, ["Connection", "close"]]);
      return ["never"];
    case "/status-header":
      start("200 OK", [...plain, ["Status", "201 Created"]]);
      return ["never"];
    case "/string":
      start("200 OK", plain);
      return "a string";
    case "/bytes":
      start("200 OK", plain);
      return new TextEncoder().encode("bytes");
    case "/null":
      start("200 OK", plain);
      return null;
    case "/number":
      start("200 OK", plain);
      return [42];
    case "/no-start":
      return ["data before start_response"];
    case "/twice":
      start("200 OK", plain);
      start("200 OK", plain);
      return ["never"];
    default:
      start("404 Not Found", plain);
      return ["no route\n"];
  }
}

function app(environ: Environ, start: StartResponse): unknown {
  if (environ.QUERY_STRING === "async=1") return (async () => sync(environ, start))();
  return sync(environ, start);
}

export const application = app as unknown as Application;

// What `tsgi runserver` serves while the project cannot be imported: every request is a 500
// whose body is the import error (its code, the file and line, the application's frames),
// until a file changes and a new server process imports the project again. The error comes
// from the supervisor in TSGI_RUNSERVER_ERROR (JSON, `BootFailure` of runserver.ts: the two
// ends of that variable are these two files); this module runs as the application of a
// server process of its own, so the supervisor never accepts a connection itself.

import type { Application } from "../gateway/request.ts";

export interface BootFailure {
  code: string;
  message: string;
  frames: string[];
}

export function errorPage(failure: BootFailure): string {
  return [
    "500 Internal Server Error (tsgi runserver)",
    "",
    "The project could not be imported. Fix the error and save: the server restarts by itself.",
    "",
    `${failure.code}: ${failure.message}`,
    ...failure.frames,
    "",
  ].join("\n");
}

const failure = JSON.parse(process.env.TSGI_RUNSERVER_ERROR ?? "null") as BootFailure | null;
const body = Buffer.from(errorPage(failure ?? { code: "TSGI_ERR_APP_IMPORT", message: "(the supervisor gave no error)", frames: [] }));

export const application: Application = (_environ, startResponse) => {
  startResponse("500 Internal Server Error", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Cache-Control", "no-store"],
  ]);
  return [body];
};

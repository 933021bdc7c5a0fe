// Why an application module could not be imported, as one line a user can act on: the file
// and line of a syntax error (esbuild's for TypeScript, Node's for JavaScript) or the
// exception its top-level code threw, with that exception kept as the cause so that the
// error log prints the application's own frames of it — never a bundler's or Node's stack.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { tsgiError, type TsgiError } from "../errors.ts";
import { applicationFrames, summarize } from "../log.ts";

/** file:///x/y.mjs → /x/y.mjs (other strings as they are). */
function pathOf(location: string): string {
  if (!location.startsWith("file://")) return location;
  try {
    return fileURLToPath(location);
  } catch {
    return location;
  }
}

// esbuild (tsx): "Transform failed with 1 error:\n/srv/app.ts:2:12: ERROR: Unexpected ";"".
const ESBUILD_ERROR = /^(.+?):(\d+):(\d+): ERROR: (.*)$/m;
// Node, first line of a SyntaxError's stack where it says where: "/srv/app.cjs:2" or "file:///srv/app.mjs:2".
const NODE_LOCATION = /^(file:\/\/\S+|\/\S*?):(\d+)$/m;
// A frame "at f (/srv/app.mjs:1:7)" or "at /srv/app.mjs:1:7".
const FRAME_LOCATION = /\(?((?:file:\/\/)?\/[^\s()]+:\d+:\d+)\)?$/;

/**
 * Node keeps an ES module's syntax error location in a private field, printed only when the
 * error is uncaught: import the module again in a child process (the same loader flags) and
 * read the location from what it prints. Only on a failed boot, so the cost does not matter.
 */
function locateModuleSyntaxError(url: string, cwd: string, loaderArgs: string[]): string | null {
  const r = spawnSync(process.execPath, [...loaderArgs, "--input-type=module", "-e", `await import(${JSON.stringify(url)})`], {
    cwd,
    encoding: "utf8",
    timeout: 10_000,
    env: { ...process.env, TSGI_WORKER: "" },
  });
  const m = NODE_LOCATION.exec(r.stderr ?? "");
  return m ? `${pathOf(m[1]!)}:${m[2]}` : null;
}

/** TSGI_ERR_APP_IMPORT for `module` (imported as `url`) failing with `err`. */
export function importFailure(module: string, url: string, err: unknown, cwd: string, loaderArgs: string[]): TsgiError {
  let reason: string;
  const e = err instanceof Error ? err : null;
  const esbuild = e ? ESBUILD_ERROR.exec(e.message) : null;
  if (esbuild) {
    reason = `${pathOf(esbuild[1]!)}:${esbuild[2]}:${esbuild[3]}: SyntaxError: ${esbuild[4]}`;
  } else if (e?.name === "SyntaxError") {
    const first = NODE_LOCATION.exec((e.stack ?? "").split("\n")[0] ?? "");
    const where = first ? `${pathOf(first[1]!)}:${first[2]}` : locateModuleSyntaxError(url, cwd, loaderArgs);
    reason = `${where ? `${where}: ` : ""}SyntaxError: ${e.message}`;
  } else {
    // An exception of the module's top-level code: where it was thrown, then its frames.
    const top = applicationFrames(e?.stack)[0];
    const at = top ? FRAME_LOCATION.exec(top.trim()) : null;
    reason = `${summarize(err)}${at ? ` (at ${pathOf(at[1]!)})` : ""}`;
  }
  return tsgiError("TSGI_ERR_APP_IMPORT", { module, reason }, e && !esbuild && e.name !== "SyntaxError" ? e : undefined);
}

// Issue 10, part 2: loading, through a real `tsgi serve`. An Express app exported as the
// application is refused when the workers start — one TSGI_ERR_APP_NODE_HANDLER line with
// the fromNodeHandler hint, exit 1 — never accepted and failed on every request with
// `res.setHeader is not a function`; a missing export is one TSGI_ERR_APP_NO_EXPORT line
// listing the exports and the closest name; a package that is not installed names itself
// and where it was looked for; and a scoped TypeScript package installed in the site's
// folder serves when the site's cwd is that folder (`app = "@scope/pkg"`).

import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { request } from "../integration/client.ts";
import { lines, ROOT, runTsgi, serve, stopAll } from "./support/serve.ts";

const APPS = join(ROOT, "test", "regressions", "apps");
/** A worker that cannot start is retried (issue 9): one short warn line per retry, the error once at the end. */
const RETRY = /\[warn\] \[[^\]]+\] worker \d+ could not start; retrying in \d+ ms \(attempt \d+ of \d+\)$/;

let project: string;

beforeAll(() => {
  project = realpathSync(mkdtempSync(join(tmpdir(), "tsgi-issue-10-")));
  const pkg = join(project, "node_modules", "@acme", "site-app");
  mkdirSync(join(pkg, "src"), { recursive: true });
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "project", private: true }));
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "@acme/site-app", type: "module", exports: { ".": { types: "./src/app.ts", import: "./src/app.ts" } } }));
  writeFileSync(
    join(pkg, "src", "app.ts"),
    `type StartResponse = (status: string, headers: [string, string][]) => void;\nexport default function (environ: Record<string, unknown>, startResponse: StartResponse): string[] {\n  startResponse("200 OK", [["Content-Type", "text/plain"]]);\n  return [\`@acme/site-app \${String(environ.PATH_INFO)}\`];\n}\n`,
  );
});

afterAll(async () => {
  await stopAll();
  if (project) rmSync(project, { recursive: true, force: true });
});

/** Exit 1 and, besides the retry lines, exactly one line: the error, matching `pattern`; no stack. */
function expectOneFailure(r: { code: number | null; stderr: string }, pattern: RegExp): string {
  expect(r.code, r.stderr).toBe(1);
  const rest = lines(r.stderr).filter((l) => !RETRY.test(l));
  expect(rest, r.stderr).toHaveLength(1);
  expect(rest[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return rest[0]!;
}

test.concurrent("an Express app exported as application: refused at load, one TSGI_ERR_APP_NODE_HANDLER line with the fromNodeHandler hint, exit 1", async () => {
  const app = join(APPS, "express-like.mjs");
  const r = await runTsgi(["serve", app, "--listen", "http:127.0.0.1:0", "--run-as-root"]);
  const line = expectOneFailure(r, /^\S+ \[error\] \[express-like\] site express-like failed: its workers cannot start \(\d+ attempts\): TSGI_ERR_APP_NODE_HANDLER: /);
  expect(line).toContain(
    `TSGI_ERR_APP_NODE_HANDLER: ${app}'s export application is a Node (req, res) handler (it has handle() and use() and listen(), as an Express or Connect app), not a TSGI application: wrap it with import { fromNodeHandler } from "tsgi" and export const application = fromNodeHandler(app)`,
  );
  expect(r.stderr).not.toContain("setHeader");
});

test.concurrent("a missing export: one TSGI_ERR_APP_NO_EXPORT line with the exports there are and the closest name, exit 1", async () => {
  const app = join(APPS, "misnamed-export.mjs");
  const r = await runTsgi(["serve", app, "--listen", "http:127.0.0.1:0", "--run-as-root"]);
  const line = expectOneFailure(r, /\[error\] \[misnamed-export\] site misnamed-export failed: its workers cannot start \(\d+ attempts\): TSGI_ERR_APP_NO_EXPORT: /);
  expect(line).toMatch(new RegExp(`TSGI_ERR_APP_NO_EXPORT: \\S+misnamed-export\\.mjs has no export application \\(did you mean \\S+misnamed-export\\.mjs:app\\?\\); exports: app, handler, default$`));
  expect(line).toContain(`${app} has no export application (did you mean ${app}:app?)`);
});

test.concurrent("a package that is not installed: one TSGI_ERR_APP_PACKAGE_NOT_FOUND line naming the package, the site's cwd and the node_modules looked in", async () => {
  const r = await runTsgi(["serve", "@acme/not-installed", "--name", "missing", "--cwd", project, "--listen", "http:127.0.0.1:0", "--run-as-root"]);
  const line = expectOneFailure(r, /\[error\] \[missing\] site missing failed: its workers cannot start \(\d+ attempts\): TSGI_ERR_APP_PACKAGE_NOT_FOUND: /);
  expect(line).toContain(`cannot find package @acme/not-installed (for @acme/not-installed) from ${project}: looked in ${join(project, "node_modules")}, `);
});

test.concurrent("a scoped TypeScript package, its default export the application, serves from the site's cwd", async () => {
  const site = await serve("@acme/site-app", ["--name", "acme", "--cwd", project, "--listen", "http:127.0.0.1:0", "--run-as-root"]);
  try {
    const r = await request(`${site.url()}/hello`);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe("@acme/site-app /hello");
  } finally {
    await site.stop();
  }
});

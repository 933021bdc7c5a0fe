// Issue 10, part 2: loadApplication against a project laid out in a temp folder — package
// specifiers resolved from the site's cwd (node_modules; a CommonJS package with main; an
// ESM-only package whose exports have `import` alone; a scoped package; a TypeScript package
// whose exports name .ts; an npm workspace symlinked into node_modules), a default export
// that serves without `:default`, and each failure a user can make, asserted on the message
// they read: the package and the folders looked in, the path tried, the exports there are
// and the closest name, what a non-function is, an Express-style app refused with the
// fromNodeHandler hint, the file and line of a syntax error (.ts, .js ESM, .cjs), and the
// application's own frames of an exception at import. The loads run in one child process
// (app-load-child.ts): a real Node loader with tsx, as in a worker, not vitest's.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

type Outcome = { ok: true; status: string; body: string } | { ok: false; code: string; message: string; cause: string | null };

let tmp: string;
let site: string;
const outcomes = new Map<string, Outcome>();

const answer = (text: string) => `(environ, startResponse) => { startResponse("200 OK", [["Content-Type", "text/plain"]]); return [${JSON.stringify(text)}]; }`;

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** Every spec loaded, from the site's folder (the worker's cwd). */
const SPECS = [
  "mypkg",
  "mypkg/sub:handler",
  "mypkg/sub.js:handler",
  "esm-only",
  "esm-only/sub:handler",
  "@scope/pkg",
  "tspkg",
  "tspkg/extra:handler",
  "ws-app",
  "nopkg",
  "@scope/nopkg/deep",
  "esm-only/nothere",
  "broken",
  "./missing.mjs",
  "missing-export.mjs",
  "missing-export.mjs:handlr",
  "not-callable.mjs",
  "not-callable.mjs:name",
  "not-callable.mjs:count",
  "not-callable.mjs:application.handler",
  "express-like.mjs",
  "req-res.ts",
  "default-only.mjs",
  "default-only.ts",
  "both.mjs",
  "cjs-fn.cjs",
  "cjs-object.cjs",
  "syntax.ts",
  "syntax-esm.js",
  "syntax.cjs",
  "throws.mjs",
  "envelope.mjs",
  "class.mjs",
  "not-callable.mjs:application.serve",
  "rejects.mjs",
  "cjs-fn-prop.cjs:handler",
];

beforeAll(() => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), "tsgi-app-load-")));
  site = join(tmp, "site");
  const nm = join(site, "node_modules");
  write(join(site, "package.json"), JSON.stringify({ name: "site", type: "module", workspaces: ["packages/*"] }));
  // A CommonJS package: main, and a subpath without exports.
  write(join(nm, "mypkg/package.json"), JSON.stringify({ name: "mypkg", main: "lib/index.js" }));
  write(join(nm, "mypkg/lib/index.js"), `exports.application = ${answer("mypkg")};\n`);
  write(join(nm, "mypkg/sub.js"), `exports.handler = ${answer("mypkg/sub")};\n`);
  // ESM only: require.resolve cannot find it (no `require` condition).
  write(join(nm, "esm-only/package.json"), JSON.stringify({ name: "esm-only", type: "module", exports: { ".": { import: "./dist/index.js" }, "./sub": { import: "./dist/sub.js" } } }));
  write(join(nm, "esm-only/dist/index.js"), `export const application = ${answer("esm-only")};\n`);
  write(join(nm, "esm-only/dist/sub.js"), `export const handler = ${answer("esm-only/sub")};\n`);
  // Scoped, types first in its conditions, the application its default export.
  write(join(nm, "@scope/pkg/package.json"), JSON.stringify({ name: "@scope/pkg", exports: { ".": { types: "./index.d.ts", default: "./index.mjs" } } }));
  write(join(nm, "@scope/pkg/index.mjs"), `export default ${answer("@scope/pkg")};\n`);
  // TypeScript sources named by exports, with a pattern.
  write(join(nm, "tspkg/package.json"), JSON.stringify({ name: "tspkg", type: "module", exports: { ".": "./src/index.ts", "./*": "./src/*.ts" } }));
  write(join(nm, "tspkg/src/index.ts"), `export const application = (environ: unknown, startResponse: (s: string, h: [string, string][]) => void): string[] => { startResponse("200 OK", []); return ["tspkg"]; };\n`);
  write(join(nm, "tspkg/src/extra.ts"), `export const handler = (environ: unknown, startResponse: (s: string, h: [string, string][]) => void): string[] => { startResponse("200 OK", []); return ["tspkg/extra"]; };\n`);
  // An npm workspace: packages/ws-app linked as node_modules/ws-app, TypeScript.
  write(join(site, "packages/ws-app/package.json"), JSON.stringify({ name: "ws-app", type: "module", exports: "./app.ts" }));
  write(join(site, "packages/ws-app/app.ts"), `const greeting: string = "ws-app";\nexport const application = (environ: unknown, startResponse: (s: string, h: [string, string][]) => void) => { startResponse("200 OK", []); return [greeting]; };\n`);
  symlinkSync("../packages/ws-app", join(nm, "ws-app"));
  // exports pointing at a build that was not made.
  write(join(nm, "broken/package.json"), JSON.stringify({ name: "broken", exports: { ".": "./dist/index.js" } }));

  write(join(site, "missing-export.mjs"), `export const app = ${answer("app")};\nexport function handler() {}\nexport default { name: "config" };\n`);
  write(join(site, "not-callable.mjs"), `export const application = { handler: ${answer("method")}, port: 80 };\nexport const name = "my site";\nexport const count = 3;\n`);
  write(
    join(site, "express-like.mjs"),
    // express(): `function app(req, res, next) { app.handle(req, res, next); }` with its methods mixed in.
    `const app = function (req, res, next) { app.handle(req, res, next); };\napp.handle = function handle(req, res, callback) {};\napp.use = function use(fn) { return this; };\napp.listen = function listen() {};\nexport const application = app;\n`,
  );
  write(join(site, "req-res.ts"), `import type { IncomingMessage, ServerResponse } from "node:http";\nexport const application = (req: IncomingMessage, res: ServerResponse) => { res.setHeader("x", "y"); res.end("hi"); };\n`);
  write(join(site, "default-only.mjs"), `export default ${answer("default-only.mjs")};\n`);
  write(join(site, "default-only.ts"), `export default function (environ: unknown, startResponse: (s: string, h: [string, string][]) => void): string[] { startResponse("200 OK", []); return ["default-only.ts"]; }\n`);
  write(join(site, "both.mjs"), `export const application = ${answer("application wins")};\nexport default ${answer("default")};\n`);
  write(join(site, "cjs-fn.cjs"), `module.exports = ${answer("cjs-fn.cjs")};\n`);
  write(join(site, "cjs-object.cjs"), `module.exports = { app: ${answer("x")}, handler() {} };\n`);
  write(join(site, "syntax.ts"), `const n: number = 1;\nexport const application = () => {\n  return [ "x" ;\n};\n`);
  write(join(site, "syntax-esm.js"), `import { createHash } from "node:crypto";\nexport const application = () => {\n  return [ "x" ;\n};\n`);
  write(join(site, "syntax.cjs"), `const x = 1;\nmodule.exports = {\n  application() { return [ "x" ; }\n};\n`);
  write(join(site, "throws.mjs"), `function connect() {\n  throw new Error("database unreachable at boot");\n}\nconnect();\nexport function application() {}\n`);
  write(join(site, "class.mjs"), `export class application { handle() {} }\n`);
  write(join(site, "rejects.mjs"), `async function setup() { throw new Error("no configuration"); }\nexport const application = setup();\n`);
  write(join(site, "cjs-fn-prop.cjs"), `module.exports = ${answer("main")};\nmodule.exports["handler"] = ${answer("cjs-fn-prop handler")};\n`);
  // A function that takes (environ, startResponse): not mistaken for a Node handler.
  write(join(site, "envelope.mjs"), `export function application(environ, startResponse) { startResponse("200 OK", []); return ["envelope"]; }\n`);

  const child = join(import.meta.dirname, "app-load-child.ts");
  const r = spawnSync(process.execPath, ["--import", "tsx", child, JSON.stringify(SPECS.map((spec) => ({ spec, cwd: site })))], {
    cwd: join(import.meta.dirname, "..", ".."), // where --import tsx resolves; each load is given the site's folder
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, TSGI_WORKER: "" },
  });
  if (r.status !== 0) throw new Error(`app-load-child.ts failed (${r.status}): ${r.stderr}`);
  const results = JSON.parse(r.stdout) as Outcome[];
  SPECS.forEach((spec, i) => outcomes.set(spec, results[i]!));
}, 90_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function served(spec: string): string {
  const o = outcomes.get(spec)!;
  expect(o, JSON.stringify(o)).toMatchObject({ ok: true, status: "200 OK" });
  return (o as { body: string }).body;
}

function failed(spec: string, code: string): string {
  const o = outcomes.get(spec)!;
  expect(o, JSON.stringify(o)).toMatchObject({ ok: false, code });
  return (o as { message: string }).message;
}

describe("package specifiers, resolved from the site's cwd", () => {
  it.each([
    ["mypkg", "mypkg"],
    ["mypkg/sub:handler", "mypkg/sub"],
    ["mypkg/sub.js:handler", "mypkg/sub"],
    ["esm-only", "esm-only"],
    ["esm-only/sub:handler", "esm-only/sub"],
    ["@scope/pkg", "@scope/pkg"],
    ["tspkg", "tspkg"],
    ["tspkg/extra:handler", "tspkg/extra"],
    ["ws-app", "ws-app"],
  ])("%s serves", (spec, body) => {
    expect(served(spec)).toBe(body);
  });

  it("a package that is not installed: which package, from where, every node_modules looked in", () => {
    const message = failed("nopkg", "TSGI_ERR_APP_PACKAGE_NOT_FOUND");
    expect(message).toBe(`cannot find package nopkg (for nopkg) from ${site}: looked in ${join(site, "node_modules")}, ${join(tmp, "node_modules")}, ${message.slice(message.indexOf(join(tmp, "node_modules")) + join(tmp, "node_modules").length + 2)}`);
    expect(message).toMatch(/, \/node_modules$/);
    expect(failed("@scope/nopkg/deep", "TSGI_ERR_APP_PACKAGE_NOT_FOUND")).toMatch(/^cannot find package @scope\/nopkg \(for @scope\/nopkg\/deep\) from /);
  });

  it("a subpath the package's exports lack: the package's folder and the subpaths it exports", () => {
    expect(failed("esm-only/nothere", "TSGI_ERR_APP_PACKAGE_EXPORTS")).toBe(
      `package esm-only (${join(site, "node_modules", "esm-only")}) does not export ./nothere (for esm-only/nothere); its exports: ., ./sub`,
    );
  });

  it("exports naming a file that was not built: the absolute path tried", () => {
    expect(failed("broken", "TSGI_ERR_APP_MODULE_NOT_FOUND")).toBe(
      `cannot find the application module broken: ${join(site, "node_modules", "broken", "dist", "index.js")} does not exist (package broken exports . as ./dist/index.js)`,
    );
  });
});

describe("what a user gets wrong", () => {
  it("a module file that does not exist: the absolute path tried", () => {
    expect(failed("./missing.mjs", "TSGI_ERR_APP_MODULE_NOT_FOUND")).toBe(`cannot find the application module ./missing.mjs: ${join(site, "missing.mjs")} does not exist`);
  });

  it("a missing export: the exports there are and the closest name", () => {
    expect(failed("missing-export.mjs", "TSGI_ERR_APP_NO_EXPORT")).toBe(
      "missing-export.mjs has no export application (did you mean missing-export.mjs:app?); exports: app, handler, default",
    );
    expect(failed("missing-export.mjs:handlr", "TSGI_ERR_APP_NO_EXPORT")).toBe(
      "missing-export.mjs has no export handlr (did you mean missing-export.mjs:handler?); exports: app, handler, default",
    );
  });

  it("a CommonJS module.exports object without the name: its properties are the exports", () => {
    expect(failed("cjs-object.cjs", "TSGI_ERR_APP_NO_EXPORT")).toBe("cjs-object.cjs has no export application (did you mean cjs-object.cjs:app?); exports: app, handler, default");
  });

  it("an export that is not a function: what it is, and a method of an object that may be meant", () => {
    expect(failed("not-callable.mjs", "TSGI_ERR_APP_NOT_CALLABLE")).toBe(
      "not-callable.mjs's export application is an object, not a function; it has a method handler(): if that is the application, name it as not-callable.mjs:application.handler",
    );
    expect(failed("not-callable.mjs:name", "TSGI_ERR_APP_NOT_CALLABLE")).toBe('not-callable.mjs\'s export name is a string ("my site"), not a function');
    expect(failed("not-callable.mjs:count", "TSGI_ERR_APP_NOT_CALLABLE")).toBe("not-callable.mjs's export count is a number (3), not a function");
    expect(served("not-callable.mjs:application.handler")).toBe("method");
    expect(failed("not-callable.mjs:application.serve", "TSGI_ERR_APP_NOT_CALLABLE")).toBe(
      "not-callable.mjs's export application.serve is undefined (application has no serve; it has a method handler(): if that is the application, name it as not-callable.mjs:application.handler), not a function",
    );
  });

  it("a class is refused as the application (a MIDDLEWARE entry may be one)", () => {
    expect(failed("class.mjs", "TSGI_ERR_APP_NOT_CALLABLE")).toBe(
      "class.mjs's export application is a class (application), not a function; tsgi calls the application, which a class cannot be without new: export a function, e.g. one that calls a method of an instance",
    );
  });

  it("an export that is a promise which rejects: TSGI_ERR_APP_IMPORT with the reason, the error as its cause", () => {
    expect(failed("rejects.mjs", "TSGI_ERR_APP_IMPORT")).toBe("cannot import the application module rejects.mjs: its export application is a promise that rejected: Error: no configuration");
    expect((outcomes.get("rejects.mjs") as { cause: string }).cause).toContain(join(site, "rejects.mjs"));
  });

  it("a property of a CommonJS module.exports function, named after the colon", () => {
    expect(served("cjs-fn-prop.cjs:handler")).toBe("cjs-fn-prop handler");
  });

  it("an Express app (handle, use, listen) is refused at load with the fromNodeHandler hint", () => {
    expect(failed("express-like.mjs", "TSGI_ERR_APP_NODE_HANDLER")).toBe(
      'express-like.mjs\'s export application is a Node (req, res) handler (it has handle() and use() and listen(), as an Express or Connect app), not a TSGI application: wrap it with import { fromNodeHandler } from "tsgi" and export const application = fromNodeHandler(app)',
    );
  });

  it("a (req, res) function in TypeScript is refused the same way, by its parameter names", () => {
    expect(failed("req-res.ts", "TSGI_ERR_APP_NODE_HANDLER")).toContain("is a Node (req, res) handler (its parameters are (req, res))");
  });

  it("an (environ, startResponse) function is not taken for one", () => {
    expect(served("envelope.mjs")).toBe("envelope");
  });
});

describe("the default export", () => {
  it.each([
    ["default-only.mjs", "default-only.mjs"],
    ["default-only.ts", "default-only.ts"],
    ["@scope/pkg", "@scope/pkg"],
    ["cjs-fn.cjs", "cjs-fn.cjs"],
  ])("%s, whose only callable is its default export (module.exports = fn in CommonJS), serves without :default", (spec, body) => {
    expect(served(spec)).toBe(body);
  });

  it("with both, application wins", () => {
    expect(served("both.mjs")).toBe("application wins");
  });
});

describe("a module that does not import", () => {
  it.each([
    ["syntax.ts", 3],
    ["syntax-esm.js", 3],
    ["syntax.cjs", 3],
  ])("a syntax error in %s: the file and line", (spec, line) => {
    const message = failed(spec, "TSGI_ERR_APP_IMPORT");
    expect(message).toContain(`cannot import the application module ${spec}: ${join(site, spec)}:${line}`);
    expect(message).toContain("SyntaxError");
  });

  it("an import that throws: the message and where, the cause's stack with the application's frames", () => {
    const o = outcomes.get("throws.mjs")!;
    expect(failed("throws.mjs", "TSGI_ERR_APP_IMPORT")).toBe(`cannot import the application module throws.mjs: Error: database unreachable at boot (at ${join(site, "throws.mjs")}:2:9)`);
    const cause = (o as { cause: string }).cause;
    expect(cause).toContain(`${join(site, "throws.mjs")}:4:1`);
  });
});

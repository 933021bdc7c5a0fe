// Issue 10, part 1: the package's face as a user gets it. The project is packed (`npm pack`:
// prepack builds the prebuilt addon, prepare the JavaScript), the tarball installed into an
// empty folder, and an .mjs, a .cjs and a .ts application import "tsgi" and are served by the
// installed `tsgi serve` over HTTP — the JavaScript ones with plain node, no TypeScript
// loader; the .ts one type-checked by tsc against the published .d.ts files. The install
// compiles nothing: the addon is the prebuild node-gyp-build finds, and the package's install
// script, run as `npm rebuild tsgi` would, takes that prebuild and calls no node-gyp (a
// stand-in records calls) — unless the prebuild was made from other sources.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort, startApache, startNginx, type FrontServer } from "../support/front-servers.ts";
import { poll, runserverGet } from "../support/daemon.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;

let scratch: string;
let consumer: string;
let installed: string;
let tarball: string;

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, ...env }, timeout: 240_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", out: `${r.stdout}\n${r.stderr}` };
}

const npm = (args: string[], cwd: string) => run("npm", ["--no-audit", "--no-fund", "--loglevel=warn", ...args], cwd);

/** `tsgi serve FILE` from the installed package, on a kernel-chosen port: the body of GET /hello. */
async function serveOnce(file: string): Promise<{ body: string; stderr: string }> {
  const child = spawn(join(consumer, "node_modules", ".bin", "tsgi"), ["serve", file, "--listen", "http:127.0.0.1:0", "--run-as-root"], {
    cwd: consumer,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    const deadline = Date.now() + 20_000;
    let port: number | null = null;
    while (port === null) {
      const m = /listening on http 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) port = Number(m[1]);
      else if (Date.now() > deadline || child.exitCode !== null) throw new Error(`tsgi serve ${file} did not listen:\n${stderr}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
    const res = await fetch(`http://127.0.0.1:${port}/hello`);
    return { body: await res.text(), stderr };
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    if (child.exitCode === null) child.kill("SIGTERM");
    await exited;
  }
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "tsgi-pack-"));
  const packed = npm(["pack", "--pack-destination", scratch], ROOT);
  expect(packed.status, packed.out).toBe(0);
  tarball = join(scratch, `tsgi-${version}.tgz`);
  expect(existsSync(tarball), packed.out).toBe(true);

  consumer = join(scratch, "site");
  mkdirSync(consumer);
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "site", private: true }));
  // From npm's cache where it can (npm ci filled it), the registry otherwise; @types/node and
  // typescript as a TypeScript user has them, for the .d.ts check.
  const add = npm(["install", "--prefer-offline", tarball, "@types/node@20", "typescript@5.9"], consumer);
  expect(add.status, add.out).toBe(0);
  installed = join(consumer, "node_modules", "tsgi");

  writeFileSync(
    join(consumer, "app.mjs"),
    `import { validate } from "tsgi";
export const application = validate((environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["mjs " + environ.PATH_INFO];
});
`,
  );
  writeFileSync(
    join(consumer, "app.cjs"),
    `const { validate, REQUIRE_GROUP } = require("tsgi");
exports.application = validate((environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["cjs " + environ.PATH_INFO + " " + REQUIRE_GROUP];
});
`,
  );
  writeFileSync(
    join(consumer, "app.ts"),
    `import { validate, type Application, type Environ, type StartResponse } from "tsgi";
const hello: Application = (environ: Environ, startResponse: StartResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [\`ts \${environ.PATH_INFO}\`];
};
export const application: Application = validate(hello);
`,
  );
}, 300_000);

const background: ChildProcess[] = [];
const fronts: FrontServer[] = [];

afterAll(async () => {
  await Promise.all(fronts.map((f) => f.stop()));
  for (const child of background) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once("exit", r));
    process.kill(-child.pid!, "SIGTERM");
    await exited;
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("npm pack, then npm install of the tarball in an empty folder", () => {
  test("the tarball carries the built JavaScript, the .d.ts files and a prebuilt addon for this platform", () => {
    const list = run("tar", ["-tzf", tarball], scratch).stdout.split("\n");
    for (const f of ["dist/index.mjs", "dist/index.cjs", "dist/types/index.d.ts", "dist/tsgi.mjs", `prebuilds/${process.platform}-${process.arch}/tsgi.node`]) {
      expect(list).toContain(`package/${f}`);
    }
  });

  test("installing built nothing: no build/ folder, and the addon tsgi loads is the prebuild", () => {
    expect(existsSync(join(installed, "build"))).toBe(false);
    // src/native.ts is TypeScript: load it through the installed tsx, as tsgi's workers would.
    const loaded = run(process.execPath, ["--import", "tsx", "-e", `import(${JSON.stringify(join(installed, "src", "native.ts"))}).then((n) => console.log("events", Object.keys(n.binding.events).length))`], consumer);
    expect(loaded.status, loaded.out).toBe(0);
    expect(loaded.stdout).toMatch(/events \d+/);
  });

  test("an .mjs and a .cjs application import tsgi with plain node (no TypeScript loader)", () => {
    const esm = run(process.execPath, ["-e", 'import("./app.mjs").then((m) => console.log(typeof m.application))'], consumer);
    expect(esm.stdout.trim(), esm.out).toBe("function");
    const cjs = run(process.execPath, ["-e", 'console.log(typeof require("./app.cjs").application, Object.keys(require("tsgi")).sort().join(","))'], consumer);
    expect(cjs.status, cjs.out).toBe(0);
    const [kind, names] = cjs.stdout.trim().split(" ");
    expect(kind).toBe("function");
    for (const name of ["validate", "getTsgiApplication", "authenticator", "authorizer", "REQUIRE_GROUP", "fileWrapper", "closing", "applyMiddleware", "Middleware", "requestFinished"]) expect(names!.split(",")).toContain(name);
  });

  test("the .ts application type-checks against the published types, and a wrong one is refused", () => {
    writeFileSync(
      join(consumer, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, types: ["node"], allowImportingTsExtensions: true }, files: ["app.ts"] }),
    );
    const tsc = join(consumer, "node_modules", "typescript", "bin", "tsc");
    const ok = run(process.execPath, [tsc, "-p", "."], consumer);
    expect(ok.out.trim(), ok.out).toBe("");
    expect(ok.status).toBe(0);

    writeFileSync(join(consumer, "wrong.ts"), `import type { Application } from "tsgi";\nexport const application: Application = (environ, startResponse) => { startResponse("200 OK", []); return [42]; };\n`);
    const wrong = run(process.execPath, [tsc, "--noEmit", "--strict", "--module", "NodeNext", "--moduleResolution", "NodeNext", "wrong.ts"], consumer);
    expect(wrong.status).not.toBe(0);
    expect(wrong.stdout).toContain("not assignable to type 'Chunk'");
  });

  test.each([
    ["app.mjs", "mjs /hello"],
    ["app.cjs", "cjs /hello TSGI_REQUIRE_GROUP"],
    ["app.ts", "ts /hello"],
  ])("the installed tsgi serve runs %s", async (file, body) => {
    const served = await serveOnce(file);
    expect(served.body, served.stderr).toBe(body);
  }, 30_000);

  test("its install script (npm rebuild tsgi) takes the matching prebuild and compiles nothing; a prebuild of other sources is not used", () => {
    const gypLog = join(scratch, "gyp.log");
    const fakeGyp = join(scratch, "fake-node-gyp.mjs");
    writeFileSync(fakeGyp, `import { appendFileSync } from "node:fs";\nappendFileSync(${JSON.stringify(gypLog)}, process.argv[2] + "\\n");\n`);
    const env = { npm_config_node_gyp: fakeGyp };
    const calls = () => (existsSync(gypLog) ? readFileSync(gypLog, "utf8").split("\n").filter(Boolean) : []);

    const script = run(process.execPath, [join(installed, "scripts", "install.mjs")], installed, env);
    expect(script.status, script.out).toBe(0);
    expect(script.stdout).toContain(`using the prebuilt addon prebuilds/${process.platform}-${process.arch}/tsgi.node`);
    expect(calls()).toEqual([]);

    // The sources changed after the prebuild (a patched copy): it builds from source.
    appendFileSync(join(installed, "native", "status.h"), "// patched\n");
    const rebuilt = run(process.execPath, [join(installed, "scripts", "install.mjs")], installed, env);
    expect(calls()).toEqual(["configure", "build"]);
    expect(rebuilt.stdout).not.toContain("using the prebuilt addon");
    expect(readdirSync(join(installed, "prebuilds", `${process.platform}-${process.arch}`))).toContain("tsgi.stamp");
  });
});

// The README's "From nothing to a site", block by block, on the packed install: shell lines
// as written (npm from its cache where it can; the long-running commands in the background,
// runserver on a free port instead of 8000; the sudo lines that install the front servers'
// files replaced by nginx and Apache started with those files, only their port changed), the
// tsgi.toml line and the TypeScript file as shown, the Apache block beside the site's file in
// the server configuration; FastCGI's TCP port 9000 moved to a free one.
describe("the README's steps, from nothing to a site behind nginx and Apache with authentication", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## From nothing to a site"), readme.indexOf("\n## ", readme.indexOf("## From nothing to a site") + 5));
  const steps = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ kind: m[1]!, text: m[2]! }));
  let cwd: string;
  let fcgiPort: number;
  let apacheAuth = "";
  let daemonErr = "";
  const env = { ...process.env, npm_config_prefer_offline: "true", npm_config_audit: "false", npm_config_fund: "false" };

  async function runLine(line: string): Promise<void> {
    line = line.replaceAll("/path/to/tsgi-0.1.0.tgz", tarball);
    if (line === "npx tsgi runserver") {
      const { body } = await runserverGet(cwd, "/", { env });
      expect(body).toBe("Hello from mysite: GET /\n");
      return;
    }
    if (line === "npx tsgi daemon -c tsgi.toml") {
      const d = spawn("npx", ["tsgi", "daemon", "-c", "tsgi.toml"], { cwd, env, stdio: ["ignore", "ignore", "pipe"], detached: true });
      d.stderr!.setEncoding("utf8").on("data", (x: string) => (daemonErr += x));
      background.push(d);
      await poll(`the daemon ready (${daemonErr})`, 30_000, () => /ready: 1 of 1 sites? running/.test(daemonErr) || d.exitCode !== null);
      expect(d.exitCode, daemonErr).toBe(null);
      return;
    }
    if (line.startsWith("sudo cp deploy/nginx.conf")) {
      const conf = readFileSync(join(cwd, "deploy", "nginx.conf"), "utf8").replace("listen 80;", "listen {{HOST}}:{{PORT}};");
      fronts.push(await startNginx({ conf }));
      return;
    }
    if (line.startsWith("sudo cp deploy/apache.conf")) return; // started below, with the authentication block
    const r = spawnSync("bash", ["-c", `${line}\npwd`], { cwd, env, encoding: "utf8", timeout: 180_000 });
    expect(r.status, `${line}\n${r.stdout}\n${r.stderr}`).toBe(0);
    cwd = r.stdout.trim().split("\n").at(-1)!;
  }

  beforeAll(async () => {
    cwd = join(scratch, "walk");
    mkdirSync(cwd);
    chmodSync(scratch, 0o755);
    fcgiPort = await freePort();
  });

  test("the section holds the steps this test takes", () => {
    expect(steps.map((s) => s.kind)).toEqual(["sh", "toml", "sh", "ts", "sh", "apache"]);
  });

  test("every step works as written", async () => {
    for (const step of steps) {
      const text = step.text.replaceAll("127.0.0.1:9000", `127.0.0.1:${fcgiPort}`);
      if (step.kind === "sh") {
        for (const line of text.split("\n").filter((l) => l.trim() !== "")) await runLine(line.trim());
      } else if (step.kind === "toml") {
        const file = join(cwd, "tsgi.toml");
        const before = readFileSync(file, "utf8");
        const after = before.replace(/^listen = \[[\s\S]*?^\]\n/m, text);
        expect(after).not.toBe(before);
        writeFileSync(file, after);
      } else if (step.kind === "ts") {
        const name = /^\/\/ (\S+)\n/.exec(text)![1]!;
        mkdirSync(dirname(join(cwd, name)), { recursive: true });
        writeFileSync(join(cwd, name), text);
      } else if (step.kind === "apache") {
        apacheAuth = text;
      }
    }

    // nginx: the site, to anyone.
    const nginx = fronts[0]!;
    const open = await fetch(`http://127.0.0.1:${nginx.port}/page`);
    expect(open.status).toBe(200);
    expect(await open.text()).toBe("Hello from mysite: GET /page\n");

    // Apache: the site deploy/apache.conf, the authentication in the server configuration.
    const site = readFileSync(join(cwd, "deploy", "apache.conf"), "utf8").replace("<VirtualHost *:80>", "<VirtualHost *:{{PORT}}>");
    const conf = `${site}\n${apacheAuth}`;
    const apache = await startApache({ conf, modules: ["proxy", "proxy_fcgi", "authnz_fcgi", "auth_basic", "authn_core", "authz_user"] });
    fronts.push(apache);
    const url = `http://127.0.0.1:${apache.port}/private`;
    expect((await fetch(url)).status).toBe(401);
    const basic = (user: string, password: string) => ({ headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` } });
    expect((await fetch(url, basic("alice", "wrong"))).status).toBe(401);
    expect((await fetch(url, basic("bob", "s3cret"))).status).toBe(401);
    const ok = await fetch(url, basic("alice", "s3cret"));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("Hello from mysite: GET /private\n");
  }, 300_000);
});

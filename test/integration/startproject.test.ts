// Issue 10, part 3: `tsgi startproject NAME [DIR]` writes a project that runs at once. The
// project depends on this checkout (`--tsgi-spec file:…`, so npm links it, offline); after its
// `npm install`, `npx tsgi check` passes, `tsgi daemon -c tsgi.toml` serves it on its
// sockets, and the deploy/ files it wrote are what real nginx and Apache are started with
// (only the port they listen on changed). Names that are no identifiers, and any file that is
// already there, are refused before anything is written.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort, startApache, startNginx, type FrontServer } from "../support/front-servers.ts";
import { poll, runserverGet } from "../support/daemon.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");

let scratch: string;
let project: string;
const fronts: FrontServer[] = [];
let daemon: ChildProcess | null = null;
let daemonErr = "";

function tsgi(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "tsgi-startproject-"));
  // Started as root, the project's workers run as www-data and read the project from here.
  chmodSync(scratch, 0o755);
  const made = tsgi(["startproject", "mysite", "--tsgi-spec", `file:${ROOT}`], scratch);
  expect(made.status, made.stderr).toBe(0);
  project = join(scratch, "mysite");
  const install = spawnSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=warn"], { cwd: project, encoding: "utf8", timeout: 120_000 });
  expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
}, 180_000);

afterAll(async () => {
  await Promise.all(fronts.map((f) => f.stop()));
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon!.once("exit", r));
    daemon.kill("SIGTERM");
    await exited;
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("tsgi startproject mysite", () => {
  test("writes the project of DESIGN §3 and says what to run next", () => {
    for (const f of ["package.json", "tsgi.toml", "mysite/settings.ts", "mysite/tsgi.ts", "mysite/app.ts", "deploy/nginx.conf", "deploy/nginx-uwsgi.conf", "deploy/apache.conf", "deploy/tsgi.service", "deploy/tsgi-mysite.socket"]) {
      expect(existsSync(join(project, f)), f).toBe(true);
    }
    const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8"));
    expect(pkg.scripts).toMatchObject({ dev: "tsgi runserver", start: "tsgi daemon -c tsgi.toml" });
    expect(pkg.dependencies.tsgi).toBe(`file:${ROOT}`);
    const entry = readFileSync(join(project, "mysite", "tsgi.ts"), "utf8");
    expect(entry).toContain('process.env.TSGI_SETTINGS_MODULE ??= "mysite/settings";');
    expect(entry).toContain("export const application = await getTsgiApplication();");
    expect(readFileSync(join(project, "mysite", "settings.ts"), "utf8")).toContain('export const TSGI_APPLICATION = "mysite/tsgi.ts:application";');
    const unit = readFileSync(join(project, "deploy", "tsgi.service"), "utf8");
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(project, "node_modules", "tsgi", "bin", "tsgi.js")} daemon -c ${join(project, "tsgi.toml")}`);
    expect(readFileSync(join(project, "deploy", "tsgi-mysite.socket"), "utf8")).toContain(`ListenStream=${join(project, "run", "mysite.sock")}`);
  });

  test("refuses to overwrite: a second run, or a DIR holding one of its files, writes nothing", () => {
    const again = tsgi(["startproject", "mysite"], scratch);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain("TSGI_ERR_PROJECT_EXISTS");

    const dir = join(scratch, "half");
    mkdirSync(join(dir, "deploy"), { recursive: true });
    writeFileSync(join(dir, "deploy", "nginx.conf"), "# mine\n");
    const into = tsgi(["startproject", "blog", dir], scratch);
    expect(into.status).toBe(1);
    expect(into.stderr).toMatch(/TSGI_ERR_PROJECT_EXISTS: .*there already is deploy\/nginx\.conf/);
    expect(readdirSync(dir)).toEqual(["deploy"]);
    expect(readFileSync(join(dir, "deploy", "nginx.conf"), "utf8")).toBe("# mine\n");
  });

  test.each([
    ["my-site", "valid identifier"],
    ["1site", "valid identifier"],
    ["class", "JavaScript keyword"],
    ["http", 'shadow the module "http"'],
    ["tsgi", 'shadow the module "tsgi"'],
  ])("refuses the name %s", (name, why) => {
    const r = tsgi(["startproject", name, join(scratch, `n-${name}`)], scratch);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("TSGI_ERR_PROJECT_NAME");
    expect(r.stderr).toContain(why);
    expect(existsSync(join(scratch, `n-${name}`))).toBe(false);
  });

  test("it runs at once, before npm install: node_modules/tsgi links to the tsgi that wrote it, npx tsgi runserver answers", async () => {
    const quick = join(scratch, "quick");
    const made = tsgi(["startproject", "quick", quick], scratch);
    expect(made.status, made.stderr).toBe(0);
    expect(made.stdout).toContain("node_modules/tsgi links to this tsgi");
    const { body } = await runserverGet(quick, "/now", { npxArgs: ["--offline"] });
    expect(body).toBe("Hello from quick: GET /now\n");
  }, 60_000);

  test("npx tsgi check passes on its tsgi.toml", () => {
    const r = spawnSync("npx", ["tsgi", "check", "-c", "tsgi.toml"], { cwd: project, encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("tsgi.toml: 1 site, no problems (mysite)");
  });

  test("npx tsgi runserver answers with the example application", async () => {
    const { body, output } = await runserverGet(project, "/dev");
    expect(body).toBe("Hello from mysite: GET /dev\n");
    expect(output).toContain("using settings 'mysite/settings'");
  }, 60_000);

  describe("tsgi daemon -c tsgi.toml, behind the deploy/ files", () => {
    beforeAll(async () => {
      daemon = spawn(join(project, "node_modules", ".bin", "tsgi"), ["daemon", "-c", "tsgi.toml"], { cwd: project, stdio: ["ignore", "ignore", "pipe"] });
      daemon.stderr!.setEncoding("utf8").on("data", (d: string) => (daemonErr += d));
      await poll(`the daemon ready (stderr: ${daemonErr})`, 30_000, () => /ready: 1 of 1 sites? running/.test(daemonErr) || daemon!.exitCode !== null);
      expect(daemon.exitCode, daemonErr).toBe(null);
    }, 60_000);

    test("nginx with deploy/nginx.conf (fastcgi_pass) serves the example application", async () => {
      const conf = readFileSync(join(project, "deploy", "nginx.conf"), "utf8").replace("listen 80;", "listen {{HOST}}:{{PORT}};");
      const nginx = await startNginx({ conf });
      fronts.push(nginx);
      const res = await fetch(`http://127.0.0.1:${nginx.port}/hello?x=1`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("Hello from mysite: GET /hello\n");
      // ALLOWED_HOSTS of the settings: another Host is 400 before the application runs.
      // Asked without blocking this process: the daemon's stderr is a pipe it reads.
      const other = await new Promise<number | undefined>((resolve, reject) => {
        http.get({ host: "127.0.0.1", port: nginx.port, path: "/", headers: { Host: "evil.example" }, timeout: 10_000 }, (res) => {
          res.resume();
          resolve(res.statusCode);
        }).on("error", reject);
      });
      expect(other).toBe(400);
    }, 30_000);

    test("nginx with deploy/nginx-uwsgi.conf (uwsgi_pass) serves it too", async () => {
      const conf = readFileSync(join(project, "deploy", "nginx-uwsgi.conf"), "utf8").replace("listen 80;", "listen {{HOST}}:{{PORT}};");
      const nginx = await startNginx({ conf });
      fronts.push(nginx);
      const res = await fetch(`http://127.0.0.1:${nginx.port}/u`, { method: "POST", body: "x" });
      expect(await res.text()).toBe("Hello from mysite: POST /u\n");
    }, 30_000);

    test("Apache with deploy/apache.conf (mod_proxy_fcgi) serves it", async () => {
      const conf = readFileSync(join(project, "deploy", "apache.conf"), "utf8").replace("<VirtualHost *:80>", "<VirtualHost *:{{PORT}}>");
      const apache = await startApache({ conf });
      fronts.push(apache);
      const res = await fetch(`http://127.0.0.1:${apache.port}/a/b`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("Hello from mysite: GET /a/b\n");
    }, 30_000);
  });
});

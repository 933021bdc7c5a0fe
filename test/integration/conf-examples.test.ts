// The complete configuration files in conf-examples/ (nginx/nginx.conf, apache/httpd.conf)
// work as they are: `nginx -t` and `apache2 -t` accept the files themselves, and a copy in
// which only the listen ports, the log and pid paths and tsgi's socket paths were rewritten
// serves real requests to one `tsgi serve`, over FastCGI (port 80's server) and over uwsgi
// (port 8080's), through each front server.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort, startFromFile, type FrontServer, type FrontServerKind } from "../support/front-servers.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const FILES: Record<FrontServerKind, string> = {
  nginx: join(ROOT, "conf-examples", "nginx", "nginx.conf"),
  apache: join(ROOT, "conf-examples", "apache", "httpd.conf"),
};

describe("the complete files pass the front server's own check, unchanged", () => {
  test("nginx -t -c conf-examples/nginx/nginx.conf", () => {
    const run = spawnSync("nginx", ["-t", "-c", FILES.nginx], { encoding: "utf8" });
    expect(run.stderr).toContain("test is successful");
    expect(run.status).toBe(0);
  });

  test("tsgi check -c conf-examples/demo/tsgi.toml (the file npm start runs)", () => {
    const run = spawnSync(process.execPath, [join(ROOT, "bin", "tsgi.js"), "check", "-c", join(ROOT, "conf-examples", "demo", "tsgi.toml")], { encoding: "utf8" });
    expect(run.stdout).toContain("1 site, no problems (demo)");
    expect(run.status).toBe(0);
  });

  test("apache2 -t -f conf-examples/apache/httpd.conf", () => {
    const run = spawnSync("apache2", ["-t", "-f", FILES.apache], { encoding: "utf8" });
    expect(`${run.stdout}${run.stderr}`).toContain("Syntax OK");
    expect(run.status).toBe(0);
  });
});

/** The file with each pattern replaced; every pattern must occur in it. */
function rewrite(file: string, replacements: [RegExp, string][]): string {
  let text = readFileSync(file, "utf8");
  for (const [pattern, by] of replacements) {
    expect(text, `${file} no longer holds ${pattern}`).toMatch(pattern);
    text = text.replace(new RegExp(pattern.source, `${pattern.flags.replace("g", "")}g`), by);
  }
  return text;
}

describe("a copy with test ports and paths serves through FastCGI and uwsgi", () => {
  let tsgi: TsgiProcess;
  const servers: FrontServer[] = [];
  const ports: Record<FrontServerKind, { fastcgi: number; uwsgi: number }> = {
    nginx: { fastcgi: 0, uwsgi: 0 },
    apache: { fastcgi: 0, uwsgi: 0 },
  };

  beforeAll(async () => {
    tsgi = await startTsgi({ listen: [{ proto: "fastcgi", unix: true }, { proto: "uwsgi", unix: true }] });
    const sockets: [RegExp, string][] = [
      [/\/run\/tsgi\/site\.sock/, tsgi.unixPath("fastcgi")],
      [/\/run\/tsgi\/site-uwsgi\.sock/, tsgi.unixPath("uwsgi")],
    ];
    for (const kind of ["nginx", "apache"] as const) {
      ports[kind] = { fastcgi: await freePort(), uwsgi: await freePort() };
      const dir = mkdtempSync(join(tmpdir(), `tsgi-conf-${kind}-`));
      // Started as root, the servers' workers run as www-data, as the files say.
      chmodSync(dir, 0o755);
      const { fastcgi, uwsgi } = ports[kind];
      const text =
        kind === "nginx"
          ? rewrite(FILES.nginx, [
              [/^pid \/run\/nginx\.pid;$/m, `pid ${dir}/nginx.pid;`],
              [/\/var\/log\/nginx\//, `${dir}/`],
              [/^( +)listen 80;$/m, `$1listen 127.0.0.1:${fastcgi};`],
              [/^( +)listen 8080;$/m, `$1listen 127.0.0.1:${uwsgi};`],
              ...sockets,
            ])
          : rewrite(FILES.apache, [
              [/^DefaultRuntimeDir \/run$/m, `DefaultRuntimeDir ${dir}`],
              [/^PidFile \/run\/apache2\.pid$/m, `PidFile ${dir}/apache2.pid`],
              [/\/var\/log\/apache2\//, `${dir}/`],
              [/^Listen 80$/m, `Listen 127.0.0.1:${fastcgi}`],
              [/^Listen 8080$/m, `Listen 127.0.0.1:${uwsgi}`],
              [/^<VirtualHost \*:80>$/m, `<VirtualHost *:${fastcgi}>`],
              [/^<VirtualHost \*:8080>$/m, `<VirtualHost *:${uwsgi}>`],
              ...sockets,
            ]);
      const confPath = join(dir, kind === "nginx" ? "nginx.conf" : "httpd.conf");
      writeFileSync(confPath, text);
      servers.push(await startFromFile(kind, { dir, confPath, errorLogPath: join(dir, "error.log"), port: fastcgi }));
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await tsgi?.stop();
  });

  test.each([
    ["nginx", "fastcgi"],
    ["nginx", "uwsgi"],
    ["apache", "fastcgi"],
    ["apache", "uwsgi"],
  ] as const)("%s's file, the %s server: GET /environ/x reaches the application", async (kind, proto) => {
    const response = await fetch(`http://127.0.0.1:${ports[kind][proto]}/environ/x?q=1`);
    expect(response.status).toBe(200);
    const { environ } = (await response.json()) as { environ: Record<string, string> };
    expect([environ.SCRIPT_NAME, environ.PATH_INFO, environ.QUERY_STRING]).toEqual(["", "/environ/x", "q=1"]);
  });
});

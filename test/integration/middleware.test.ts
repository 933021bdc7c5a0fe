// Middleware and requestFinished through a real `tsgi serve` over HTTP: a project whose
// application takes a connection from a pool of fake database connections on each request and
// gives it back on requestFinished, behind a MIDDLEWARE entry that drops the inner body's
// close(), and `application = new HelloWorldApplication(application)` in its tsgi.ts. The
// project imports "tsgi" as an application does: a separately bundled copy in its
// node_modules, another module instance than the worker's own.

import http from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
let project: string;

function write(rel: string, text: string): void {
  mkdirSync(join(project, rel, ".."), { recursive: true });
  writeFileSync(join(project, rel), text);
}

function get(agent: http.Agent, port: number, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((res, rej) => {
    const req = http.request({ host: "127.0.0.1", port, path, agent }, (r) => {
      let body = "";
      r.setEncoding("utf8").on("data", (d: string) => (body += d));
      r.on("end", () => res({ status: r.statusCode!, headers: r.headers, body }));
    });
    req.on("error", rej).end();
  });
}

beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), "tsgi-middleware-"));
  write("package.json", JSON.stringify({ name: "mysite", private: true, type: "module" }));
  // "tsgi" as the project's dependency: the package's face, bundled on its own.
  const { build } = await import("esbuild");
  write("node_modules/tsgi/package.json", JSON.stringify({ name: "tsgi", type: "module", exports: "./index.mjs" }));
  await build({ entryPoints: [join(ROOT, "src", "index.ts")], outfile: join(project, "node_modules", "tsgi", "index.mjs"), bundle: true, platform: "node", format: "esm", packages: "external", logLevel: "warning" });

  const settings = (debug: boolean, middleware: string) => `export const ROOT_APPLICATION = "mysite/app.ts:application";
export const MIDDLEWARE = [${JSON.stringify(middleware)}];
export const ALLOWED_HOSTS = ["*"];
export const DEBUG = ${debug};
`;
  write("mysite/settings.ts", settings(false, "mysite/middleware.ts:dropClose"));
  write("mysite/dev_settings.ts", settings(true, "mysite/middleware.ts:dropClose"));
  write("mysite/bad_settings.ts", settings(false, "mysite/middleware.ts:Plain"));
  // A pool of POOL_SIZE fake connections: one taken per request, given back on requestFinished.
  // A leak empties the pool within POOL_SIZE requests, and every later one is a 500.
  write(
    "mysite/app.ts",
    `import { requestFinished, type Application } from "tsgi";
const POOL_SIZE = 8;
const free = Array.from({ length: POOL_SIZE }, (_, id) => ({ id }));
const stats = { inUse: 0, acquired: 0, released: 0, bodiesClosed: 0, finished: 0 };
const CONN = "mysite.db";

requestFinished.connect((environ) => {
  stats.finished++;
  const conn = environ[CONN] as { id: number } | undefined;
  if (!conn) return;
  delete environ[CONN];
  free.push(conn);
  stats.inUse--;
  stats.released++;
});

export const application: Application = (environ, startResponse) => {
  if (environ.PATH_INFO === "/pool") {
    startResponse("200 OK", [["Content-Type", "application/json"]]);
    return [JSON.stringify({ ...stats, free: free.length })];
  }
  const conn = free.pop();
  if (!conn) throw new Error("the connection pool is exhausted");
  stats.inUse++;
  stats.acquired++;
  environ[CONN] = conn;
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return {
    *[Symbol.iterator]() {
      yield "row from connection " + conn.id;
    },
    close() {
      stats.bodiesClosed++;
    },
  };
};
`,
  );
  // dropClose buffers the inner body into an array of its own and never calls its close().
  write(
    "mysite/middleware.ts",
    `import type { Application, Chunk } from "tsgi";
export const dropClose = (app: Application): Application => async (environ, startResponse) => {
  const inner = await app(environ, (status, headers, excInfo) => startResponse(status, [...headers, ["X-Buffered-By", "dropClose"]], excInfo));
  const chunks: Chunk[] = [];
  for (const c of inner as Iterable<Chunk>) chunks.push(c);
  return chunks;
};
export class Plain {
  constructor(readonly app: Application) {}
}
`,
  );
  write(
    "mysite/hello.ts",
    `import { Middleware, type Environ, type StartResponse } from "tsgi";
export class HelloWorldApplication extends Middleware {
  greeting = "Hello World!";
  handle(environ: Environ, startResponse: StartResponse) {
    if (environ.PATH_INFO !== "/hello") return this.app(environ, startResponse);
    startResponse("200 OK", [["Content-Type", "text/plain"], ["X-Middleware", this.constructor.name]]);
    return [this.greeting + "\\n"];
  }
}
`,
  );
  write(
    "mysite/tsgi.ts",
    `process.env.TSGI_SETTINGS_MODULE ??= "mysite/settings"; // setdefault: the environment wins
import { getTsgiApplication, type Application } from "tsgi";
import { HelloWorldApplication } from "./hello.ts";
let application: Application = await getTsgiApplication();
application = new HelloWorldApplication(application);
export { application };
`,
  );
});

afterAll(() => rmSync(project, { recursive: true, force: true }));

function serve(settingsModule: string): Promise<TsgiProcess> {
  return startTsgi({ app: join(project, "mysite", "tsgi.ts"), listen: [{ proto: "http" }], args: ["--cwd", project], env: { TSGI_SETTINGS_MODULE: settingsModule } });
}

describe("requestFinished and a middleware that drops close(), through tsgi serve", () => {
  let tsgi: TsgiProcess | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  afterAll(async () => {
    agent.destroy();
    await tsgi?.stop();
  });

  test("no pooled connection leaks over 10,000 requests; the dropped body is closed; no warning without DEBUG", async () => {
    tsgi = await serve("mysite/settings");
    const { port } = tsgi.tcp("http");
    const N = 10_000;
    const statuses = new Map<number, number>();
    let next = 0;
    let sample: { body: string; headers: http.IncomingHttpHeaders } | null = null;
    // Four at a time over keep-alive connections.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < N) {
          next++;
          const r = await get(agent, port, "/query");
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          sample = r;
        }
      }),
    );
    expect(Object.fromEntries(statuses)).toEqual({ 200: N });
    // The response went through the middleware.
    expect(sample!.body).toMatch(/^row from connection \d$/);
    expect(sample!.headers["x-buffered-by"]).toBe("dropClose");
    const pool = JSON.parse((await get(agent, port, "/pool")).body);
    // requestFinished also fired for the /pool request itself (N + 1 finished once it ends).
    expect(pool).toEqual({ inUse: 0, acquired: N, released: N, bodiesClosed: N, finished: N, free: 8 });
    expect(JSON.parse((await get(agent, port, "/pool")).body)).toMatchObject({ finished: N + 1 });
    expect(tsgi.stderr()).not.toMatch(/TSGI_ERR_APP_CLOSE_DROPPED|exhausted|\[error\]/);
  }, 180_000);

  test("new HelloWorldApplication(application) in tsgi.ts answers over the socket", async () => {
    const { port } = tsgi!.tcp("http");
    const r = await get(agent, port, "/hello");
    expect(r.status).toBe(200);
    expect(r.body).toBe("Hello World!\n");
    expect(r.headers["x-middleware"]).toBe("HelloWorldApplication");
  });

  test("with DEBUG, the error log names the middleware that dropped close()", async () => {
    await tsgi!.stop();
    tsgi = await serve("mysite/dev_settings");
    const { port } = tsgi.tcp("http");
    for (let i = 0; i < 3; i++) expect((await get(agent, port, "/query")).status).toBe(200);
    const warning =
      /\[warn\].*TSGI_ERR_APP_CLOSE_DROPPED: middleware mysite\/middleware\.ts:dropClose did not call close\(\) of the body its application returned; tsgi closed it after the response/g;
    // One line a request.
    await tsgi.waitForStderr(new RegExp(`(${warning.source}[^]*){3}`));
    expect(tsgi.stderr().match(warning)).toHaveLength(3);
    expect(JSON.parse((await get(agent, port, "/pool")).body)).toMatchObject({ inUse: 0, acquired: 3, released: 3, bodiesClosed: 3 });
  });

  test("a plain class in MIDDLEWARE stops the worker's boot with a coded error naming it", async () => {
    await tsgi!.stop();
    tsgi = undefined;
    const failed = await serve("mysite/bad_settings").then(
      async (p) => {
        await p.stop();
        return null;
      },
      (err: Error) => err.message,
    );
    expect(failed).toMatch(/TSGI_ERR_APP_MIDDLEWARE_CLASS/);
    expect(failed).toContain("middleware mysite/middleware.ts:Plain is a class whose instances are not applications");
  });
});

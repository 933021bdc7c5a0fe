// The contenders of `npm run bench` (issue 4): how each backend is started (with ONE worker,
// or N for W5) and the nginx `location` or Apache `ProxyPass` that fronts it. Every contender
// lives under its own prefix /c/ID/ of one nginx (or the one Apache); the applications route
// on the last path segment, so the prefix needs no rewriting.

import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");
const APPS = join(ROOT, "bench", "apps");
const isRoot = process.getuid?.() === 0;

export interface BackendSpec {
  cmd: string;
  args: string[];
  /** Where the backend answers once bound. */
  ready: { path: string } | { port: number };
  /** Worker processes expected as children of the started process (0: it serves itself). */
  children: number;
}

export interface Plan {
  backend?: BackendSpec;
  /** nginx: upstream blocks (http level) and the location block. */
  nginx?: { upstream?: string; location: string };
  /** Apache: directives for its ProxyPass. */
  apache?: string;
}

export interface Ctx {
  /** Folder for unix sockets (reachable by nginx's and Apache's www-data workers). */
  dir: string;
  workers: number;
  port(): Promise<number>;
}

export interface Contender {
  id: string;
  what: string;
  front: "nginx" | "apache";
  /** Workload ids it takes part in (default: all). */
  only?: string[];
  /** Its backend is `tsgi serve` (master + workers). */
  tsgi?: boolean;
  plan(ctx: Ctx): Promise<Plan>;
}

export const BASELINE = "node-http";
/** The baseline of the contenders behind Apache: node:http through mod_proxy_http. */
export const APACHE_BASELINE = "apache-http-node";
/** W6's baseline: the same Express app as express-tsgi-fcgi-keep-unix, on node:http. */
export const EXPRESS_BASELINE = "express-node-http";

const prefix = (id: string) => `/c/${id}/`;

// nginx streams responses through its buffers without spilling to temp files, so W4 measures
// the backend's flow control rather than nginx's disk.
const NO_TEMP = "proxy_max_temp_file_size 0; fastcgi_max_temp_file_size 0; uwsgi_max_temp_file_size 0;";

// Node's own flags for tsgi's master and (inherited through fork) its workers, for a look
// inside a run (`BENCH_TSGI_NODE_ARGS="--trace-gc"`); none by default.
const TSGI_NODE_ARGS = (process.env.BENCH_TSGI_NODE_ARGS ?? "").split(/\s+/).filter(Boolean);

function tsgi(ctx: Ctx, listen: string, app = "tsgi-app.mjs"): BackendSpec["args"] {
  return [
    ...TSGI_NODE_ARGS,
    join(ROOT, "bin", "tsgi.js"),
    "serve",
    join(APPS, app),
    "--listen",
    listen,
    "--processes",
    String(ctx.workers),
    "--socket-mode",
    "0666",
    ...(isRoot ? ["--run-as-root"] : []),
  ];
}

function tsgiUnix(ctx: Ctx, id: string, proto: "uwsgi" | "fastcgi", app?: string): BackendSpec {
  const path = join(ctx.dir, `${id}.sock`);
  return { cmd: process.execPath, args: tsgi(ctx, `${proto}:unix:${path}`, app), ready: { path }, children: ctx.workers };
}

function tsgiTcp(ctx: Ctx, port: number, proto: "uwsgi" | "fastcgi"): BackendSpec {
  return { cmd: process.execPath, args: tsgi(ctx, `${proto}:127.0.0.1:${port}`), ready: { port }, children: ctx.workers };
}

function nodeApp(ctx: Ctx, file: string, port: number): BackendSpec {
  return {
    cmd: process.execPath,
    args: [join(APPS, file), String(port), String(ctx.workers)],
    ready: { port },
    children: ctx.workers > 1 ? ctx.workers : 0,
  };
}

// Up to 64 idle connections kept (one per wrk connection: no churn under load). They are
// closed 200 ms after a run ends: front-servers.ts gives nginx 256 worker_connections, and two
// full caches (128) plus 64 client and 64 upstream connections of the next run would hit that
// limit (nginx then drops connections: wrk read errors). Under load no connection idles that long.
const upstreamKeepalive = (name: string, server: string) =>
  `upstream ${name} { server ${server}; keepalive 64; keepalive_requests 1000000; keepalive_timeout 200ms; }`;

export const CONTENDERS: Contender[] = [
  {
    id: "node-http",
    what: "nginx proxy_pass → node:http, upstream keepalive, TCP (the baseline)",
    front: "nginx",
    async plan(ctx) {
      const port = await ctx.port();
      return {
        backend: nodeApp(ctx, "node-http.mjs", port),
        nginx: {
          upstream: upstreamKeepalive("node_http", `127.0.0.1:${port}`),
          location: `location ${prefix(this.id)} { proxy_pass http://node_http/; proxy_http_version 1.1; proxy_set_header Connection ""; }`,
        },
      };
    },
  },
  {
    id: "tsgi-uwsgi-unix",
    what: "nginx uwsgi_pass → tsgi, unix socket",
    front: "nginx",
    tsgi: true,
    async plan(ctx) {
      const backend = tsgiUnix(ctx, this.id, "uwsgi");
      const path = (backend.ready as { path: string }).path;
      return { backend, nginx: { location: `location ${prefix(this.id)} { uwsgi_pass unix:${path}; include /etc/nginx/uwsgi_params; }` } };
    },
  },
  {
    id: "tsgi-uwsgi-tcp",
    what: "nginx uwsgi_pass → tsgi, TCP",
    front: "nginx",
    tsgi: true,
    async plan(ctx) {
      const port = await ctx.port();
      return {
        backend: tsgiTcp(ctx, port, "uwsgi"),
        nginx: { location: `location ${prefix(this.id)} { uwsgi_pass 127.0.0.1:${port}; include /etc/nginx/uwsgi_params; }` },
      };
    },
  },
  {
    id: "tsgi-fcgi-keep-unix",
    what: "nginx fastcgi_pass → tsgi, unix socket, fastcgi_keep_conn on + upstream keepalive",
    front: "nginx",
    tsgi: true,
    async plan(ctx) {
      const backend = tsgiUnix(ctx, this.id, "fastcgi");
      const path = (backend.ready as { path: string }).path;
      return {
        backend,
        nginx: {
          upstream: upstreamKeepalive("tsgi_fcgi_keep", `unix:${path}`),
          location: `location ${prefix(this.id)} { fastcgi_pass tsgi_fcgi_keep; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }`,
        },
      };
    },
  },
  {
    id: "tsgi-fcgi-keep-tcp",
    what: "nginx fastcgi_pass → tsgi, TCP, fastcgi_keep_conn on + upstream keepalive",
    front: "nginx",
    tsgi: true,
    async plan(ctx) {
      const port = await ctx.port();
      return {
        backend: tsgiTcp(ctx, port, "fastcgi"),
        nginx: {
          upstream: upstreamKeepalive("tsgi_fcgi_keep_tcp", `127.0.0.1:${port}`),
          location: `location ${prefix(this.id)} { fastcgi_pass tsgi_fcgi_keep_tcp; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }`,
        },
      };
    },
  },
  {
    id: "tsgi-fcgi-unix",
    what: "nginx fastcgi_pass → tsgi, unix socket, a connection per request",
    front: "nginx",
    tsgi: true,
    async plan(ctx) {
      const backend = tsgiUnix(ctx, this.id, "fastcgi");
      const path = (backend.ready as { path: string }).path;
      return { backend, nginx: { location: `location ${prefix(this.id)} { fastcgi_pass unix:${path}; include /etc/nginx/fastcgi_params; }` } };
    },
  },
  {
    id: "node-fastcgi",
    what: "nginx fastcgi_pass → node-fastcgi (npm), TCP, a connection per request",
    front: "nginx",
    async plan(ctx) {
      const port = await ctx.port();
      return {
        backend: nodeApp(ctx, "node-fastcgi.mjs", port),
        nginx: { location: `location ${prefix(this.id)} { fastcgi_pass 127.0.0.1:${port}; include /etc/nginx/fastcgi_params; }` },
      };
    },
  },
  {
    id: "uwsgi-python",
    what: "nginx uwsgi_pass → uWSGI (Debian, python3 plugin, --master on), unix socket",
    front: "nginx",
    async plan(ctx) {
      const path = join(ctx.dir, `${this.id}.sock`);
      return {
        backend: {
          cmd: "/usr/bin/uwsgi",
          args: [
            "--plugin", "python3,logfile",
            "--master",
            "--processes", String(ctx.workers),
            "--socket", path,
            "--chmod-socket=666",
            "--wsgi-file", join(APPS, "wsgi_app.py"),
            "--need-app",
            "--die-on-term",
            // Request lines formatted and written as tsgi's access log is, to /dev/null.
            "--req-logger", "file:/dev/null",
          ],
          ready: { path },
          children: ctx.workers,
        },
        nginx: { location: `location ${prefix(this.id)} { uwsgi_pass unix:${path}; include /etc/nginx/uwsgi_params; }` },
      };
    },
  },
  {
    id: APACHE_BASELINE,
    what: "Apache mod_proxy_http → node:http, pooled keep-alive connections, TCP (the Apache baseline)",
    front: "apache",
    async plan(ctx) {
      const port = await ctx.port();
      return { backend: nodeApp(ctx, "node-http.mjs", port), apache: `ProxyPass "${prefix(this.id)}" "http://127.0.0.1:${port}/" keepalive=On` };
    },
  },
  {
    id: "apache-fcgi-tsgi",
    what: "Apache mod_proxy_fcgi (enablereuse=on) → tsgi, unix socket",
    front: "apache",
    tsgi: true,
    async plan(ctx) {
      const backend = tsgiUnix(ctx, this.id, "fastcgi");
      const path = (backend.ready as { path: string }).path;
      return { backend, apache: `ProxyPass "${prefix(this.id)}" "unix:${path}|fcgi://localhost${prefix(this.id)}" enablereuse=on` };
    },
  },
  {
    id: "apache-fcgi-tsgi-tcp",
    what: "Apache mod_proxy_fcgi (enablereuse=on) → tsgi, TCP",
    front: "apache",
    tsgi: true,
    async plan(ctx) {
      const port = await ctx.port();
      return {
        backend: tsgiTcp(ctx, port, "fastcgi"),
        apache: `ProxyPass "${prefix(this.id)}" "fcgi://127.0.0.1:${port}${prefix(this.id)}" enablereuse=on`,
      };
    },
  },
  {
    id: "apache-uwsgi-tsgi",
    what: "Apache mod_proxy_uwsgi → tsgi, unix socket",
    front: "apache",
    tsgi: true,
    async plan(ctx) {
      const backend = tsgiUnix(ctx, this.id, "uwsgi");
      const path = (backend.ready as { path: string }).path;
      return { backend, apache: `ProxyPass "${prefix(this.id)}" "unix:${path}|uwsgi://localhost${prefix(this.id)}"` };
    },
  },
  // W6 (issue 10): the same Express app (apps/express-app.mjs) on node:http and under tsgi.
  {
    id: "express-node-http",
    what: "W6: nginx proxy_pass → Express on node:http, upstream keepalive, TCP (W6's baseline)",
    front: "nginx",
    only: ["W6"],
    async plan(ctx) {
      const port = await ctx.port();
      return {
        backend: nodeApp(ctx, "express-node-http.mjs", port),
        nginx: {
          upstream: upstreamKeepalive("express_http", `127.0.0.1:${port}`),
          location: `location ${prefix(this.id)} { proxy_pass http://express_http/; proxy_http_version 1.1; proxy_set_header Connection ""; }`,
        },
      };
    },
  },
  {
    id: "express-tsgi-fcgi-keep-unix",
    what: "W6: nginx fastcgi_pass + fastcgi_keep_conn on + upstream keepalive → tsgi, the Express app through fromNodeHandler, unix socket",
    front: "nginx",
    only: ["W6"],
    tsgi: true,
    async plan(ctx) {
      const backend = tsgiUnix(ctx, this.id, "fastcgi", "express-tsgi.mjs");
      const path = (backend.ready as { path: string }).path;
      return {
        backend,
        nginx: {
          upstream: upstreamKeepalive("express_tsgi_keep", `unix:${path}`),
          location: `location ${prefix(this.id)} { fastcgi_pass express_tsgi_keep; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }`,
        },
      };
    },
  },
  {
    id: "nginx-return",
    what: "nginx `return 200` (no backend: the ceiling), W1 only",
    front: "nginx",
    only: ["W1"],
    async plan() {
      return { nginx: { location: `location = ${prefix(this.id)}hello { default_type text/plain; return 200 "Hello, world!\\n"; }` } };
    },
  },
];

export function nginxConf(plans: { c: Contender; p: Plan }[]): string {
  const upstreams = plans.map(({ p }) => p.nginx?.upstream).filter((x): x is string => Boolean(x));
  const locations = plans.map(({ p }) => p.nginx?.location).filter((x): x is string => Boolean(x));
  return nginxServer(upstreams, locations);
}

/** The one benchmark server block (the soak uses it too): keep-alive to the client, no temp files. */
export function nginxServer(upstreams: string[], locations: string[]): string {
  return [
    ...upstreams,
    "server {",
    "  listen {{HOST}}:{{PORT}} backlog=4096;",
    "  access_log off;",
    "  keepalive_requests 1000000;",
    "  keepalive_timeout 300s;",
    "  client_max_body_size 4m;",
    "  client_body_buffer_size 2m;",
    `  ${NO_TEMP}`,
    ...locations.map((l) => `  ${l}`),
    "}",
  ].join("\n");
}

export function apacheConf(plans: { c: Contender; p: Plan }[]): string {
  return [
    // One process (ServerLimit 1 in the boilerplate) with threads to spare over wrk's 64
    // connections: at MaxRequestWorkers mpm_event closes keep-alive connections (read errors).
    "ThreadLimit 128",
    "ThreadsPerChild 128",
    "MaxRequestWorkers 128",
    "KeepAlive On",
    "MaxKeepAliveRequests 0",
    "KeepAliveTimeout 300",
    "LimitRequestBody 0",
    ...plans.map(({ p }) => p.apache).filter(Boolean),
    "",
  ].join("\n");
}

export const APACHE_MODULES = ["proxy", "proxy_http", "proxy_fcgi", "proxy_uwsgi"];

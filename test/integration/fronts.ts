// The front ends the integration tests put before one `tsgi serve` process: real nginx and
// Apache httpd started from the files in conf-examples/ (placeholders rendered with tsgi's
// addresses), and tsgi's own HTTP listener as the baseline. Each front carries what the tests
// expect of it where front servers legitimately differ; every such quirk says why.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startApache, startNginx, type FrontServer } from "../support/front-servers.ts";
import type { TsgiProcess } from "../support/tsgi-process.ts";
import type { SuiteOptions } from "./front-suite.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const conf = (rel: string) => readFileSync(join(ROOT, "conf-examples", rel), "utf8");

export type FrontName =
  | "nginx-fastcgi"
  | "nginx-fastcgi-keepconn"
  | "nginx-uwsgi"
  | "apache-proxy-fcgi"
  | "apache-proxy-uwsgi"
  | "tsgi-http"
  | "nginx-mount-fastcgi"
  | "nginx-mount-uwsgi"
  | "apache-mount-fcgi"
  | "apache-mount-uwsgi";

export interface Quirks {
  /** HTTP_HOST the application sees for a request with `Host: 127.0.0.1:PORT`. */
  httpHost: (port: number) => string;
  /** SERVER_NAME the application sees. */
  serverName: string;
  /** A chunked request body: nginx de-chunks it and sends CONTENT_LENGTH; others stream it. */
  chunkedUpload: "content-length" | "streamed" | "refused-411";
  /** Repeated Cookie request headers joined as the application sees them. */
  cookieJoin: string;
  /** Content-Type kept on 204 and 304 responses. */
  contentTypeOn204And304: boolean;
}

export interface Front {
  name: FrontName;
  server: "nginx" | "apache" | "tsgi";
  host: string;
  port: number;
  /** URL base including the path prefix the front maps to the site. */
  base: string;
  quirks: Quirks;
  /** The front server's error log ("" for tsgi-http). */
  errorLog(): string;
}

// Debian's fastcgi_params and uwsgi_params set HTTP_HOST to $host, which drops the port (a
// security workaround: $http_host is the raw client value); that param hides the client's
// own Host header (nginx skips a header already set by a *_param HTTP_* line).
const NGINX: Quirks = {
  httpHost: () => "127.0.0.1",
  serverName: "localhost", // the server_name of the conf-examples' server block
  chunkedUpload: "content-length", // request buffering on (default): de-chunked, spooled, with a length
  cookieJoin: "a=1; b=2", // nginx 1.22 sends two HTTP_COOKIE params; the environ joins them with "; "
  contentTypeOn204And304: true,
};

const APACHE_BASE = {
  httpHost: (port: number) => `127.0.0.1:${port}`,
  serverName: "127.0.0.1", // ServerName of the test boilerplate
  // Apache merges repeated request headers itself, cookies included, with ", " (apr_table_merge).
  cookieJoin: "a=1, b=2",
};

const QUIRKS: Record<"nginx" | "apache-proxy-fcgi" | "apache-proxy-uwsgi" | "tsgi-http", Quirks> = {
  nginx: NGINX,
  "apache-proxy-fcgi": {
    ...APACHE_BASE,
    chunkedUpload: "streamed", // mod_proxy_fcgi streams a chunked body with no CONTENT_LENGTH
    contentTypeOn204And304: false, // observed with 2.4.71: mod_proxy_fcgi drops it on 204/304; mod_proxy_uwsgi keeps it
  },
  "apache-proxy-uwsgi": {
    ...APACHE_BASE,
    chunkedUpload: "refused-411", // mod_proxy_uwsgi reads the body with REQUEST_CHUNKED_ERROR
    contentTypeOn204And304: true,
  },
  "tsgi-http": {
    httpHost: (port) => `127.0.0.1:${port}`,
    serverName: "127.0.0.1", // taken from the Host header
    chunkedUpload: "streamed",
    cookieJoin: "a=1; b=2",
    contentTypeOn204And304: true,
  },
};

function tsgiVars(tsgi: TsgiProcess): Record<string, string | number> {
  const f = tsgi.tcp("fastcgi");
  const u = tsgi.addresses.uwsgi && "port" in tsgi.addresses.uwsgi ? tsgi.addresses.uwsgi : null;
  return {
    TSGI_FASTCGI: tsgi.nginxAddress("fastcgi"),
    TSGI_UWSGI: tsgi.nginxAddress(tsgi.addresses.uwsgiUnix ? "uwsgiUnix" : "uwsgi"),
    TSGI_FASTCGI_HOST: f.host,
    TSGI_FASTCGI_PORT: f.port,
    TSGI_UWSGI_HOST: u?.host ?? "",
    TSGI_UWSGI_PORT: u?.port ?? "",
  };
}

function fromServer(name: FrontName, s: FrontServer, quirks: Quirks, prefix = ""): Front {
  return {
    name,
    server: s.kind,
    host: s.host,
    port: s.port,
    base: `http://${s.host}:${s.port}${prefix}`,
    quirks,
    errorLog: () => s.errorLog(),
  };
}

export function tsgiHttpFront(tsgi: TsgiProcess, prefix = ""): Front {
  const a = tsgi.tcp("http");
  return {
    name: "tsgi-http",
    server: "tsgi",
    host: a.host,
    port: a.port,
    base: `http://${a.host}:${a.port}${prefix}`,
    quirks: QUIRKS["tsgi-http"],
    errorLog: () => "",
  };
}

export interface Started {
  fronts: Front[];
  stop(): Promise<void>;
}

/** nginx's three setups (fastcgi, fastcgi keep-conn, uwsgi) plus tsgi-http. */
export async function startNginxFronts(tsgi: TsgiProcess): Promise<Started> {
  const vars = tsgiVars(tsgi);
  const servers = await Promise.all([
    startNginx({ conf: conf("nginx/fastcgi.conf"), vars }),
    startNginx({ conf: conf("nginx/fastcgi-keepconn.conf"), vars }),
    startNginx({ conf: conf("nginx/uwsgi.conf"), vars }),
  ]);
  return {
    fronts: [
      fromServer("nginx-fastcgi", servers[0], QUIRKS.nginx),
      fromServer("nginx-fastcgi-keepconn", servers[1], QUIRKS.nginx),
      fromServer("nginx-uwsgi", servers[2], QUIRKS.nginx),
      tsgiHttpFront(tsgi),
    ],
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** Apache's two setups (mod_proxy_fcgi, mod_proxy_uwsgi) plus tsgi-http. */
export async function startApacheFronts(tsgi: TsgiProcess): Promise<Started> {
  const vars = tsgiVars(tsgi);
  const servers = await Promise.all([
    startApache({ conf: conf("apache/proxy-fcgi.conf"), vars, modules: ["proxy", "proxy_fcgi"] }),
    startApache({ conf: conf("apache/proxy-uwsgi.conf"), vars, modules: ["proxy", "proxy_uwsgi"] }),
  ]);
  return {
    fronts: [
      fromServer("apache-proxy-fcgi", servers[0], QUIRKS["apache-proxy-fcgi"]),
      fromServer("apache-proxy-uwsgi", servers[1], QUIRKS["apache-proxy-uwsgi"]),
      tsgiHttpFront(tsgi),
    ],
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** The site under /app: nginx (fastcgi at /app/, uwsgi at /app-uwsgi/), Apache fcgi and uwsgi, tsgi-http. */
export async function startMountFronts(tsgi: TsgiProcess): Promise<Started> {
  const vars = tsgiVars(tsgi);
  const [nginx, fcgi, uwsgi] = await Promise.all([
    startNginx({ conf: conf("nginx/mount.conf"), vars }),
    startApache({ conf: conf("apache/mount-fcgi.conf"), vars, modules: ["proxy", "proxy_fcgi"] }),
    startApache({ conf: conf("apache/mount-uwsgi.conf"), vars, modules: ["proxy", "proxy_uwsgi"] }),
  ]);
  return {
    fronts: [
      fromServer("nginx-mount-fastcgi", nginx, QUIRKS.nginx, "/app"),
      fromServer("nginx-mount-uwsgi", nginx, QUIRKS.nginx, "/app-uwsgi"),
      fromServer("apache-mount-fcgi", fcgi, QUIRKS["apache-proxy-fcgi"], "/app"),
      fromServer("apache-mount-uwsgi", uwsgi, QUIRKS["apache-proxy-uwsgi"], "/app"),
      tsgiHttpFront(tsgi, "/app"),
    ],
    stop: async () => {
      await Promise.all([nginx.stop(), fcgi.stop(), uwsgi.stop()]);
    },
  };
}

/** nginx.test.ts's suite (nginx-net.test.ts runs it again on the node:net servers). */
export const NGINX_SUITE: SuiteOptions = {
  fronts: ["nginx-fastcgi", "nginx-fastcgi-keepconn", "nginx-uwsgi", "tsgi-http"],
  listen: [{ proto: "fastcgi" }, { proto: "uwsgi", unix: true, key: "uwsgiUnix" }, { proto: "http" }],
  start: startNginxFronts,
  // The test nginx has worker_connections 256 and each proxied request holds two.
  concurrencyLimit: { "nginx-fastcgi": 100, "nginx-fastcgi-keepconn": 100, "nginx-uwsgi": 100 },
};

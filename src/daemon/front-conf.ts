// `tsgi conf nginx|apache|systemd SITE -c tsgi.toml` (DESIGN §4): the front server's
// configuration written from the site's own settings, so that the two never disagree. Pure
// functions from a loaded configuration to text: the listener the front server connects to,
// the path it passes (the site's `mount`), connection reuse with an idle limit below tsgi's
// `header-timeout`, read timeouts a little above `request-timeout` (so the client gets tsgi's
// 504, not the front server's), the body limit of `max-body`; for systemd, the service that
// runs the daemon and a socket unit listening on exactly the site's `listen` entries (the
// master matches inherited sockets to them by address).

import { existsSync } from "node:fs";
import { tsgiError } from "../errors.ts";
import { normalizeMount } from "../gateway/environ.ts";
import type { DaemonConfig, SiteConfig } from "./config.ts";
import { parseListen, type ListenSpec } from "./listen.ts";

export const FRONTS = ["nginx", "apache", "systemd"] as const;
export type FrontKind = (typeof FRONTS)[number];

export interface ConfOptions {
  /** The listen entry the front server connects to: its 1-based index or its text; default: the preferred one. */
  listen?: string;
  /** The port the front server listens on (nginx `listen`, Apache `<VirtualHost *:PORT>`). */
  port: number;
  /** nginx `server_name`, Apache `ServerName`; left out when not given. */
  serverName?: string;
  /** For systemd's ExecStart: the node binary and tsgi's bin/tsgi.js, absolute. */
  execPath: string;
  bin: string;
  /** tsgi's version, named in the header. */
  version: string;
  /** Apache's module folder for LoadModule (default: apacheModulesDir()). */
  apacheModules?: string;
}

/** What the front server is told about one listen entry. */
interface Target {
  spec: ListenSpec;
  /** For a TCP entry on a wildcard address, the loopback address the front server connects to. */
  host?: string;
}

const SECOND = 1000;
/** Idle connections nginx keeps open to tsgi per nginx worker (`keepalive`). */
const NGINX_KEEPALIVE = 16;
/** How much longer than `request-timeout` the front server waits for tsgi's answer. */
const TIMEOUT_MARGIN_S = 5;
/** A read timeout for `request-timeout = 0` (never): front servers need one. */
const NO_TIMEOUT_S = 3600;
/** When tsgi sets no body limit (`max-body = 0`): nginx's own default (1m) is too small for uploads. */
const NGINX_DEFAULT_BODY = "100m";
/**
 * Where Apache's modules are, by distribution: Debian/Ubuntu, RHEL/Fedora (x86_64, then
 * 32-bit), openSUSE, a source build's and the httpd container image's default. The first
 * that holds mod_proxy.so on this machine is written; with none, `modules` (relative to
 * ServerRoot, where RHEL links it and a source build puts it).
 */
export const APACHE_MODULE_DIRS = ["/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules", "/usr/lib64/apache2", "/usr/local/apache2/modules"];

export function apacheModulesDir(exists: (path: string) => boolean = existsSync): string {
  return APACHE_MODULE_DIRS.find((d) => exists(`${d}/mod_proxy.so`)) ?? "modules";
}
const WILDCARD_TO_LOOPBACK: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1" };
/**
 * Characters a mount may hold to be written into both servers' files as it is: nginx
 * interpolates `$` in fastcgi_param values and has no escape for it, quotes and `;`/`{}`/space
 * end tokens, and `%` would be read as an escape in Apache's ProxyPass URL. Non-ASCII is fine.
 */
const MOUNT_CHARS = /^[A-Za-z0-9._~!&*+,=:@/\u0080-\uffff-]*$/;

/** Preference among a site's listeners: FastCGI, then uwsgi, then HTTP; unix before TCP. */
function rank(spec: ListenSpec): number {
  return { fastcgi: 0, uwsgi: 2, http: 4 }[spec.protocol] + ("path" in spec ? 0 : 1);
}

function fail(front: string, site: string, reason: string): never {
  throw tsgiError("TSGI_ERR_CONFIG_FRONT", { front, site, reason });
}

/** The site, or TSGI_ERR_CONFIG_NO_SITE naming the sites the file has. */
export function findSite(config: DaemonConfig, name: string): SiteConfig {
  const site = config.sites.find((s) => s.name === name);
  if (site) return site;
  throw tsgiError("TSGI_ERR_CONFIG_NO_SITE", { file: config.file, site: JSON.stringify(name), sites: config.sites.map((s) => s.name).join(", ") });
}

function seconds(ms: number): number {
  return Math.ceil(ms / SECOND);
}

/** `request-timeout` plus a margin, in seconds: tsgi's 504 comes first. */
function readTimeout(site: SiteConfig): number {
  const ms = site.settings["request-timeout"];
  return ms > 0 ? seconds(ms) + TIMEOUT_MARGIN_S : NO_TIMEOUT_S;
}

/** How long the front server keeps an idle connection to tsgi: half of `header-timeout`, after which tsgi closes it. */
function idleSeconds(site: SiteConfig): number {
  const ms = site.settings["header-timeout"];
  return ms > 0 ? Math.max(1, Math.floor(ms / 2 / SECOND)) : 60;
}

function duration(ms: number): string {
  return ms % SECOND === 0 ? `${ms / SECOND}s` : `${ms}ms`;
}

/** A size as nginx writes it: "64k", "10m", or bytes. */
function nginxSize(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)}m`;
  if (bytes % 1024 === 0) return `${bytes / 1024}k`;
  return String(bytes);
}

/** A name usable in nginx variable names and as an upstream/worker name. */
function ident(site: string): string {
  return site.replace(/[^A-Za-z0-9_]/g, "_");
}

function siteMount(front: string, site: SiteConfig): string {
  const mount = normalizeMount(site.settings.mount ?? "");
  if (!MOUNT_CHARS.test(mount)) {
    fail(front, site.name, `mount ${JSON.stringify(mount)} holds a character a front server's configuration cannot carry as it is (use letters, digits and . _ ~ ! & * + , = : @ - /)`);
  }
  return mount;
}

/** The listen entry the front server connects to: `--listen` (index or text), else the preferred one. */
function pickListener(front: string, site: SiteConfig, wanted: string | undefined): Target {
  const specs = site.settings.listen.map((text) => parseListen(text));
  const entries = () => specs.map((s, i) => `${i + 1}: ${s.text}`).join(", ");
  let spec: ListenSpec | undefined;
  if (wanted === undefined) {
    spec = [...specs].sort((a, b) => rank(a) - rank(b))[0];
  } else {
    spec = /^\d+$/.test(wanted) ? specs[Number(wanted) - 1] : specs.find((s) => s.text === wanted || s.text.endsWith(`:unix:${wanted}`));
    if (!spec) fail(front, site.name, `--listen ${wanted} is none of the site's listen entries (${entries()})`);
  }
  if (!spec) fail(front, site.name, "the site has no listen entry");
  if ("port" in spec && spec.port === 0) {
    fail(front, site.name, `${spec.text}: port 0 is chosen by the kernel at each start, so no front server can be pointed at it; give the site a fixed port`);
  }
  return "host" in spec && WILDCARD_TO_LOOPBACK[spec.host] ? { spec, host: WILDCARD_TO_LOOPBACK[spec.host] } : { spec };
}

function hostPort(t: Target & { spec: { host: string; port: number } }): string {
  const host = t.host ?? t.spec.host;
  return `${host.includes(":") ? `[${host}]` : host}:${t.spec.port}`;
}

function header(front: FrontKind, config: DaemonConfig, site: SiteConfig, o: ConfOptions, lines: string[]): string[] {
  return [
    `# ${front === "apache" ? "Apache httpd" : front} configuration of tsgi site ${site.name}, written by`,
    `#   tsgi conf ${front} ${site.name} -c ${config.file}   (tsgi ${o.version})`,
    "# from the site's settings: write it again after changing them.",
    ...lines.flatMap((l) => (l ? wrap(l, 96).map((w) => `# ${w}`) : ["#"])),
  ];
}

/** A comment's text cut into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  return [...out, line];
}

function listenerLines(site: SiteConfig, t: Target): string[] {
  const others = site.settings.listen.filter((text) => text !== t.spec.text);
  return [
    `The site's listener: ${t.spec.text}${t.host ? ` (connected to on ${t.host})` : ""}.`,
    ...(others.length > 0 ? [`Its other listen entries (choose one with --listen N or --listen ENTRY): ${others.join(", ")}.`] : []),
  ];
}

/** A note when nginx's or Apache's workers may be unable to connect to the site's unix socket. */
function socketAccess(site: SiteConfig, t: Target): string[] {
  if (!("path" in t.spec)) return [];
  const s = site.settings;
  const mode = s["socket-mode"].toString(8).padStart(4, "0");
  if (s["socket-mode"] & 0o002) return [`The front server's workers connect to ${t.spec.path} (mode ${mode}: anyone may).`];
  const owner = s["socket-owner"] ?? s.user;
  const group = s["socket-group"] ?? s.group ?? (owner ? `${owner}'s group` : null);
  const who = [owner && `owner ${owner}`, group && `group ${group}`].filter(Boolean).join(", ");
  return [
    `The front server's workers (www-data on Debian) connect to ${t.spec.path}: mode ${mode}` +
      (who ? ` (${who}), so their user must be that owner or in that group (socket-group sets it).` : ", owned by tsgi's user: set socket-group to their group."),
  ];
}

// ---- nginx ----

/** Params of nginx's stock fastcgi_params / uwsgi_params, written out (no include: the file stands alone). */
function nginxParams(directive: string, mount: string, pathInfo: string): string[] {
  const p = (name: string, value: string) => `        ${directive} ${name.padEnd(17)} ${value};`;
  return [
    p("QUERY_STRING", "$query_string"),
    p("REQUEST_METHOD", "$request_method"),
    p("CONTENT_TYPE", "$content_type"),
    p("CONTENT_LENGTH", "$content_length"),
    // SCRIPT_NAME + PATH_INFO is the decoded path, split at the site's mount; tsgi splits
    // DOCUMENT_URI (preferred when present) the same way.
    p("SCRIPT_NAME", mount === "" ? '""' : mount),
    p("PATH_INFO", pathInfo),
    p("REQUEST_URI", "$request_uri"),
    p("DOCUMENT_URI", "$document_uri"),
    p("SERVER_PROTOCOL", "$server_protocol"),
    p("REQUEST_SCHEME", "$scheme"),
    p("HTTPS", "$https if_not_empty"),
    p("GATEWAY_INTERFACE", "CGI/1.1"),
    p("SERVER_SOFTWARE", "nginx/$nginx_version"),
    p("REMOTE_ADDR", "$remote_addr"),
    p("REMOTE_PORT", "$remote_port"),
    p("REMOTE_USER", "$remote_user if_not_empty"),
    p("SERVER_ADDR", "$server_addr"),
    p("SERVER_PORT", "$server_port"),
    p("SERVER_NAME", "$server_name"),
  ];
}

/** Regex metacharacters escaped, then backslashes doubled for nginx's quoted string. */
function nginxRegexLiteral(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\\/g, "\\\\");
}

export function nginxConf(config: DaemonConfig, site: SiteConfig, o: ConfOptions): string {
  const t = pickListener("nginx", site, o.listen);
  const mount = siteMount("nginx", site);
  const name = `tsgi_${ident(site.name)}`;
  const proto = t.spec.protocol;
  const timeout = readTimeout(site);
  const idle = idleSeconds(site);
  const maxBody = site.settings["max-body"];
  const pathInfo = mount === "" ? "$document_uri" : `$${name}_path_info`;
  const server = "path" in t.spec ? `unix:${t.spec.path}` : hostPort(t as Target & { spec: { host: string; port: number } });

  const out = header("nginx", config, site, o, [
    `Inside nginx's http block, e.g. as /etc/nginx/conf.d/tsgi-${site.name}.conf. To serve the site from a server block of your own, move the location block into it; the upstream${mount ? " and the map stay" : " stays"} in the http block.`,
    ...listenerLines(site, t),
    ...socketAccess(site, t),
  ]);
  out.push(
    "",
    `upstream ${name} {`,
    `    server ${server};`,
    ...(proto === "uwsgi"
      ? ["    # uwsgi carries one request per connection: nothing to keep open."]
      : [
          `    # Idle connections to tsgi kept open per nginx worker${proto === "fastcgi" ? " (with fastcgi_keep_conn: FCGI_KEEP_CONN)" : ""}.`,
          `    keepalive ${NGINX_KEEPALIVE};`,
        ]),
  );
  if (proto !== "uwsgi") {
    out.push(
      `    # Below the site's header-timeout (${duration(site.settings["header-timeout"])}), after which tsgi closes an idle`,
      "    # connection: nginx closes first and never sends a request into one tsgi is closing.",
      `    keepalive_timeout ${idle}s;`,
    );
  }
  out.push("}");
  if (mount !== "" && proto !== "http") {
    out.push(
      "",
      `# PATH_INFO: the decoded path below the site's mount ${mount}.`,
      `map $document_uri $${name}_path_info {`,
      `    "~(?s)^${nginxRegexLiteral(mount)}(/.*)$" $1;`,
      '    default "";',
      "}",
    );
  }
  out.push("", "server {", `    listen ${o.port};`);
  if (o.serverName) out.push(`    server_name ${o.serverName};`);
  if (maxBody > 0) {
    out.push(`    # The site's max-body: larger bodies get nginx's 413 before they reach tsgi.`, `    client_max_body_size ${nginxSize(maxBody)};`);
  } else {
    out.push(
      `    # The site sets no max-body; nginx's own default, 1m, would refuse uploads above it (0: no limit).`,
      `    client_max_body_size ${NGINX_DEFAULT_BODY};`,
    );
  }
  out.push("    # Room for big cookies: a header line may take up to 16 KiB (the default is 8 KiB).", "    large_client_header_buffers 4 16k;", "");
  const rt = site.settings["request-timeout"];
  const timeoutNote =
    rt > 0
      ? `        # request-timeout is ${duration(rt)}: tsgi answers 504 then; nginx waits ${TIMEOUT_MARGIN_S}s more, so that answer reaches the client.`
      : `        # request-timeout is 0 (never): nginx still needs a limit between two reads or writes.`;
  out.push(
    mount === ""
      ? "    location / {"
      : `    # mount = "${mount}": ${mount}/... goes to tsgi; nginx answers ${mount} itself with a 301 to ${mount}/.\n    location ${mount}/ {`,
  );
  if (proto === "http") {
    out.push(
      `        proxy_pass http://${name};`,
      "        # HTTP/1.1 without `Connection: close`, so that upstream connections are reused.",
      "        proxy_http_version 1.1;",
      '        proxy_set_header Connection "";',
      "        proxy_set_header Host $http_host;",
      "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
      "        proxy_set_header X-Forwarded-Proto $scheme;",
      timeoutNote,
      `        proxy_read_timeout ${timeout}s;`,
      `        proxy_send_timeout ${timeout}s;`,
    );
  } else {
    const d = proto; // "fastcgi" | "uwsgi": nginx's directives are named after the protocol.
    out.push(`        ${d}_pass ${name};`);
    if (d === "fastcgi") out.push("        fastcgi_keep_conn on;");
    out.push(
      timeoutNote,
      `        ${d}_read_timeout ${timeout}s;`,
      `        ${d}_send_timeout ${timeout}s;`,
      "        # nginx reads the whole request body before passing it on (request buffering, the",
      "        # default): a slow upload holds no tsgi connection. `" + d + "_request_buffering off;` streams",
      "        # it instead. Responses are buffered too; a response header `X-Accel-Buffering: no` streams one.",
      "        # The client's request headers go as HTTP_* (its Host header as HTTP_HOST).",
      ...nginxParams(`${d}_param`, mount, pathInfo),
    );
  }
  out.push("    }", "}", "");
  return out.join("\n");
}

// ---- Apache httpd ----

export function apacheConf(config: DaemonConfig, site: SiteConfig, o: ConfOptions): string {
  const t = pickListener("apache", site, o.listen);
  const mount = siteMount("apache", site);
  const proto = t.spec.protocol;
  const scheme = proto === "fastcgi" ? "fcgi" : proto;
  const module = proto === "fastcgi" ? "proxy_fcgi" : proto === "uwsgi" ? "proxy_uwsgi" : "proxy_http";
  const worker = `tsgi-${site.name.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`;
  const authority = "path" in t.spec ? worker : hostPort(t as Target & { spec: { host: string; port: number } });
  const prefix = "path" in t.spec ? `unix:${t.spec.path}|` : "";
  const timeout = readTimeout(site);
  const idle = idleSeconds(site);
  const maxBody = site.settings["max-body"];
  const modules = (o.apacheModules ?? apacheModulesDir()).replace(/\/+$/, "") || "/";
  const modulesNote = o.apacheModules
    ? modules
    : modules === "modules"
      ? "modules/ under ServerRoot (no Apache module folder found on this machine; --apache-modules DIR names one)"
      : `${modules} (found on this machine; --apache-modules DIR for another)`;
  // The whole path goes on as it came (mount included): tsgi splits it at the mount. For
  // uwsgi, Apache sends PATH_INFO = the path after the URL's authority and SCRIPT_NAME = the
  // rest, so the two still add up to the request's path.
  const local = mount === "" ? "/" : mount;
  const url = `${prefix}${scheme}://${authority}${mount === "" ? "/" : mount}`;
  const params = [`timeout=${timeout}`];
  if (proto === "fastcgi") params.unshift("enablereuse=on", `ttl=${idle}`);
  if (proto === "http") params.unshift("keepalive=On", `ttl=${idle}`);

  const out = header("apache", config, site, o, [
    `As /etc/apache2/sites-available/tsgi-${site.name}.conf (then \`a2ensite tsgi-${site.name}\`), or Include it from httpd.conf. To serve the site from a VirtualHost of your own, move the lines inside it there.`,
    ...listenerLines(site, t),
    ...socketAccess(site, t),
    "",
    `The modules it needs (Debian: \`a2enmod proxy ${module}\`), loaded here where nothing loaded them, from ${modulesNote}.`,
  ]);
  for (const m of ["proxy", module]) {
    out.push(`<IfModule !${m}_module>`, `    LoadModule ${m}_module ${modules}/mod_${m}.so`, "</IfModule>");
  }
  out.push("", `<VirtualHost *:${o.port}>`);
  if (o.serverName) out.push(`    ServerName ${o.serverName}`);
  out.push("    # Room for big cookies and many headers (defaults: 8190 bytes a line, 100 lines).", "    LimitRequestFieldSize 16384", "    LimitRequestFields 200", "");
  if (mount !== "") out.push(`    # mount = "${mount}": ${mount} and ${mount}/... go to tsgi (not ${mount}x: Apache matches whole path segments).`);
  if (proto === "fastcgi") {
    out.push(
      "    # mod_proxy_fcgi sends the decoded path as SCRIPT_NAME and no PATH_INFO; tsgi splits it at",
      "    # the mount. enablereuse=on keeps connections open (FCGI_KEEP_CONN); ttl closes an idle one",
      `    # before the site's header-timeout (${duration(site.settings["header-timeout"])}) does.`,
    );
  } else if (proto === "uwsgi") {
    out.push(
      "    # mod_proxy_uwsgi opens a connection per request, refuses chunked request bodies (411)",
      "    # and drops request headers whose names hold characters other than letters, digits and \"-\".",
    );
  } else {
    out.push("    # The client's Host header goes on to tsgi; ttl closes an idle connection before header-timeout does.", "    ProxyPreserveHost On");
  }
  const rt = site.settings["request-timeout"];
  out.push(
    rt > 0
      ? `    # timeout: the site's request-timeout (${duration(rt)}) and ${TIMEOUT_MARGIN_S}s more, so that tsgi's 504 reaches the client.`
      : "    # timeout: request-timeout is 0 (never), but Apache needs a limit between two reads.",
    `    ProxyPass "${local}" "${url}" ${params.join(" ")}`,
  );
  if (maxBody > 0) {
    out.push(
      "",
      `    <Location "${local}">`,
      "        # The site's max-body: larger bodies get Apache's 413 before they reach tsgi.",
      `        LimitRequestBody ${maxBody}`,
      "    </Location>",
    );
  }
  out.push("</VirtualHost>", "");
  return out.join("\n");
}

// ---- systemd ----

/** An ExecStart= word: quoted when it holds what systemd would split or expand. */
function systemdWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/["\\]/g, "\\$&").replace(/\$/g, "$$$$")}"`;
}

/** `ListenStream=` of one entry: the unix path, or host:port (IPv6 in brackets). */
function listenStream(spec: ListenSpec): string {
  return "path" in spec ? spec.path : `${spec.host.includes(":") ? `[${spec.host}]` : spec.host}:${spec.port}`;
}

export const SERVICE_UNIT = "tsgi.service";

export function socketUnitName(site: SiteConfig): string {
  return `tsgi-${site.name}.socket`;
}

export function systemdConf(config: DaemonConfig, site: SiteConfig, o: ConfOptions): string {
  const specs = site.settings.listen.map((text) => parseListen(text));
  for (const s of specs) {
    if ("port" in s && s.port === 0) fail("systemd", site.name, `${s.text}: systemd cannot listen on port 0 for tsgi; give the site a fixed port`);
  }
  // The service runs every site of the file: it waits for the slowest site's drain.
  const graceful = Math.max(...config.sites.map((s) => s.settings["graceful-timeout"]));
  const stopSeconds = seconds(graceful) + 15;
  const socketUnit = socketUnitName(site);
  const s = site.settings;
  const hasUnix = specs.some((x) => "path" in x);
  const owner = s["socket-owner"] ?? s.user;
  const group = s["socket-group"] ?? s.group;

  const out = [
    `# --- file: ${SERVICE_UNIT} ---`,
    ...header("systemd", config, site, o, [
      `Install as /etc/systemd/system/${SERVICE_UNIT} and /etc/systemd/system/${socketUnit}, then \`systemctl daemon-reload && systemctl enable --now ${socketUnit} ${SERVICE_UNIT}\`.`,
      `One service runs every site of ${config.file}; each site may have its socket unit (\`tsgi conf systemd SITE\` for the others), which hands the service its listening sockets.`,
    ]),
    "[Unit]",
    `Description=tsgi daemon (${config.file})`,
    "After=network.target",
    "",
    "[Service]",
    "# The master tells systemd when every site is ready (READY=1), around reloads and at stop.",
    "Type=notify",
    `ExecStart=${[o.execPath, o.bin, "daemon", "-c", config.file].map(systemdWord).join(" ")}`,
    "# SIGHUP: the file is reread and every worker replaced, none of their requests lost.",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "# SIGTERM to the master alone: it stops accepting and lets its workers finish their requests",
    "# (graceful-timeout) before they exit; what is left after TimeoutStopSec gets SIGKILL.",
    "KillMode=mixed",
    `# Above the longest graceful-timeout of the file's sites (${duration(graceful)}).`,
    `TimeoutStopSec=${stopSeconds}`,
    "Restart=on-failure",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
    `# --- file: ${socketUnit} ---`,
    `# The listen entries of site ${site.name}, exactly as tsgi.toml has them: the master takes each`,
    "# inherited socket for the entry with the same address (and binds any other itself).",
    "[Unit]",
    `Description=tsgi site ${site.name} (${config.file})`,
    "",
    "[Socket]",
    ...specs.map((x) => `ListenStream=${listenStream(x)}`),
    `FileDescriptorName=${site.name}`,
    `Service=${SERVICE_UNIT}`,
  ];
  if (hasUnix) {
    out.push(`SocketMode=${s["socket-mode"].toString(8).padStart(4, "0")}`);
    if (owner) out.push(`SocketUser=${owner}`);
    if (group) out.push(`SocketGroup=${group}`);
  }
  out.push("", "[Install]", "WantedBy=sockets.target", "");
  return out.join("\n");
}

/** The front named, or TSGI_ERR_CONFIG_UNKNOWN_FRONT naming those there are. */
export function frontKind(front: string): FrontKind {
  if ((FRONTS as readonly string[]).includes(front)) return front as FrontKind;
  throw tsgiError("TSGI_ERR_CONFIG_UNKNOWN_FRONT", { front: JSON.stringify(front), fronts: FRONTS.join(", ") });
}

/** The configuration `tsgi conf FRONT SITE` prints. */
export function frontConf(front: string, config: DaemonConfig, siteName: string, o: ConfOptions): string {
  const kind = frontKind(front);
  const site = findSite(config, siteName);
  if (kind === "nginx") return nginxConf(config, site, o);
  if (kind === "apache") return apacheConf(config, site, o);
  return systemdConf(config, site, o);
}

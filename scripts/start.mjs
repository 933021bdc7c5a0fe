// `npm start`: the demo site (conf-examples/demo/app.ts) served by `tsgi daemon` over HTTP on
// loopback and over FastCGI and uwsgi unix sockets, with how to reach each printed first.
// It runs a copy of conf-examples/demo/tsgi.toml written into TSGI_DEMO_DIR (default
// /tmp/tsgi-demo; the sockets and the control socket go beside it) with TSGI_DEMO_PORT
// (default 8000) applied. This process becomes the
// daemon's master (bin/tsgi.js runs in it), so the demo stops with whatever started it: npm
// forwards SIGINT and SIGTERM to its script (package.json `exec`s this one, so it is npm's
// child, not a shell's), and a launcher that dies without forwarding (SIGHUP, SIGKILL) leaves
// this process to a new parent, which it notices and stops as on SIGTERM.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const port = process.env.TSGI_DEMO_PORT ?? "8000";
const dir = process.env.TSGI_DEMO_DIR ?? "/tmp/tsgi-demo";
mkdirSync(dir, { recursive: true });
const fastcgi = join(dir, "fastcgi.sock");
const uwsgi = join(dir, "uwsgi.sock");

const example = join(root, "conf-examples", "demo", "tsgi.toml");
const file = join(dir, "tsgi.toml");
const text = readFileSync(example, "utf8")
  .replace('app = "app.ts"', `app = ${JSON.stringify(join(root, "conf-examples", "demo", "app.ts"))}`)
  .replace("http:127.0.0.1:8000", `http:127.0.0.1:${port}`);
writeFileSync(file, `# Written by npm start from conf-examples/demo/tsgi.toml.\n${text}`);

console.log(`tsgi demo site: conf-examples/demo/app.ts, run by tsgi daemon -c ${file}

  HTTP     curl http://127.0.0.1:${port}/            (also /environ, /upload, /stream?mib=20)
  FastCGI  unix:${fastcgi}
           SCRIPT_FILENAME=/ REQUEST_METHOD=GET DOCUMENT_URI=/environ cgi-fcgi -bind -connect ${fastcgi}
           nginx:  conf-examples/nginx/fastcgi.conf   (fastcgi_pass unix:${fastcgi};)
           Apache: conf-examples/apache/proxy-fcgi.conf (ProxyPass "/" "unix:${fastcgi}|fcgi://localhost/")
  uwsgi    unix:${uwsgi}
           nginx:  conf-examples/nginx/uwsgi.conf     (uwsgi_pass unix:${uwsgi};)
           Apache: conf-examples/apache/proxy-uwsgi.conf
  control  node bin/tsgi.js status -c ${file}    (reload, stop: the same -c)

Ctrl-C stops it.
`);

const launcher = process.ppid;
const orphaned = setInterval(() => {
  if (process.ppid === launcher) return;
  clearInterval(orphaned);
  process.kill(process.pid, "SIGTERM");
}, 200).unref();

process.argv.splice(1, Infinity, join(root, "bin", "tsgi.js"), "daemon", "-c", file);
await import("../bin/tsgi.js");

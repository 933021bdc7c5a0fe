// `npm start`: the demo site (conf-examples/demo/app.ts) served by `tsgi serve` over HTTP on
// loopback and over FastCGI and uwsgi unix sockets, with how to reach each printed first.
// TSGI_DEMO_PORT (default 8000) and TSGI_DEMO_DIR (default /tmp/tsgi-demo) move it. This
// process becomes the site's master (bin/tsgi.js runs in it), so the demo stops with whatever
// started it: npm forwards SIGINT and SIGTERM to its script (package.json `exec`s this one,
// so it is npm's child, not a shell's), and a launcher that dies without forwarding (SIGHUP,
// SIGKILL) leaves this process to a new parent, which it notices and stops as on SIGTERM.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const port = process.env.TSGI_DEMO_PORT ?? "8000";
const dir = process.env.TSGI_DEMO_DIR ?? "/tmp/tsgi-demo";
mkdirSync(dir, { recursive: true });
const fastcgi = join(dir, "fastcgi.sock");
const uwsgi = join(dir, "uwsgi.sock");

console.log(`tsgi demo site: conf-examples/demo/app.ts

  HTTP     curl http://127.0.0.1:${port}/            (also /environ, /upload, /stream?mib=20)
  FastCGI  unix:${fastcgi}
           SCRIPT_FILENAME=/ REQUEST_METHOD=GET DOCUMENT_URI=/environ cgi-fcgi -bind -connect ${fastcgi}
           nginx:  conf-examples/nginx/fastcgi.conf   (fastcgi_pass unix:${fastcgi};)
           Apache: conf-examples/apache/proxy-fcgi.conf (ProxyPass "/" "unix:${fastcgi}|fcgi://localhost/")
  uwsgi    unix:${uwsgi}
           nginx:  conf-examples/nginx/uwsgi.conf     (uwsgi_pass unix:${uwsgi};)
           Apache: conf-examples/apache/proxy-uwsgi.conf

Ctrl-C stops it.
`);

const launcher = process.ppid;
const orphaned = setInterval(() => {
  if (process.ppid === launcher) return;
  clearInterval(orphaned);
  process.kill(process.pid, "SIGTERM");
}, 200).unref();

process.argv.splice(1, Infinity,
  join(root, "bin", "tsgi.js"),
  "serve",
  join(root, "conf-examples", "demo", "app.ts"),
  "--name", "demo",
  "--listen", `http:127.0.0.1:${port}`,
  "--listen", `fastcgi:unix:${fastcgi}`,
  "--listen", `uwsgi:unix:${uwsgi}`,
  "--socket-mode", "0666",
);
await import("../bin/tsgi.js");

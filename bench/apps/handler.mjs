// The benchmark routes as a node:http-style (req, res) handler, shared by node-http.mjs and
// node-fastcgi.mjs (node-fastcgi mimics node:http's request and response objects): the same
// logic as tsgi-app.mjs and wsgi_app.py, routed on the last path segment.

const HELLO = Buffer.from("Hello, world!\n");
const LARGE = Buffer.alloc(100 * 1024, 0x61);
const CHUNK = Buffer.alloc(64 * 1024, 0x62);

export function handler(req, res) {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const r = path.slice(path.lastIndexOf("/"));
  if (r === "/hello") {
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": "14" });
    res.end(HELLO);
  } else if (r === "/large") {
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": "102400" });
    res.end(LARGE);
  } else if (r === "/upload") {
    let size = 0;
    req.on("data", (d) => (size += d.length));
    req.on("end", () => {
      const body = `{"size":${size}}\n`;
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": String(body.length) });
      res.end(body);
    });
  } else if (r === "/stream") {
    const mib = Number(/(?:^|&)mib=(\d+)/.exec(q < 0 ? "" : url.slice(q + 1))?.[1] ?? "1");
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(mib * 1024 * 1024) });
    let left = mib * 16;
    const pump = () => {
      while (left > 0) {
        left--;
        if (left === 0) return void res.end(CHUNK);
        if (!res.write(CHUNK)) return void res.once("drain", pump);
      }
    };
    if (left === 0) res.end();
    else pump();
  } else {
    res.writeHead(404, { "Content-Type": "text/plain", "Content-Length": "10" });
    res.end("Not Found\n");
  }
}

/** Runs `start()` in `workers` processes: one plain process for 1, node:cluster for more. */
export async function runWorkers(workers, start) {
  if (workers <= 1) return start();
  const cluster = (await import("node:cluster")).default;
  if (cluster.isWorker) return start();
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

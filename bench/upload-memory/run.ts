// Worker memory under a large upload (issue 3, "Done when"): a 1 GiB request body through real
// nginx to the demo application's /upload, which reads it with `for await` and hashes it,
// while the worker's RSS is sampled from /proc. Run: `npm run bench:upload [-- GiB]`.
// FastCGI carries a chunked upload streamed by nginx (fastcgi_request_buffering off, no
// CONTENT_LENGTH); uwsgi a Content-Length upload streamed (uwsgi_request_buffering off).

import { createHash } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { freePort, startNginx } from "../../test/support/front-servers.ts";
import { ROOT as root } from "../lib/contenders.ts";
import { group, killAllTrackedSync, rssKiB, spawnTracked, stopTracked } from "../lib/procs.ts";

process.on("exit", killAllTrackedSync);
const gib = Number(process.argv[2] ?? "1");
const total = Math.round(gib * 1024 * 1024 * 1024);
const BLOCK = 64 * 1024;

async function upload(port: number, chunked: boolean): Promise<{ body: string; seconds: number; sha256: string }> {
  const block = Buffer.alloc(BLOCK, 0x5a);
  const hash = createHash("sha256");
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: "/upload",
      method: "POST",
      headers: chunked ? { "Transfer-Encoding": "chunked" } : { "Content-Length": String(total) },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ body, seconds: (performance.now() - started) / 1000, sha256: hash.digest("hex") }));
    });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const part = Math.min(BLOCK, total - sent);
        const chunk = part === BLOCK ? block : block.subarray(0, part);
        hash.update(chunk);
        sent += part;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

async function measure(protocol: "fastcgi" | "uwsgi"): Promise<void> {
  const backend = await freePort();
  const serve = spawnTracked("tsgi", process.execPath, [join(root, "bin", "tsgi.js"), "serve", join(root, "conf-examples", "demo", "app.ts"), "--listen", `${protocol}:127.0.0.1:${backend}`], {
    stdio: ["ignore", "inherit", "pipe"],
  });
  // The "listening on" line is the error log's (stderr), which is passed on as it comes.
  await new Promise<void>((resolve) =>
    serve.child.stderr!.on("data", (d: Buffer) => {
      process.stderr.write(d);
      if (d.toString().includes("listening on")) resolve();
    }),
  );
  const worker = group(serve.pid).children[0]!.pid;
  const pass =
    protocol === "fastcgi"
      ? `fastcgi_pass 127.0.0.1:${backend}; include /etc/nginx/fastcgi_params; fastcgi_request_buffering off;`
      : `uwsgi_pass 127.0.0.1:${backend}; include /etc/nginx/uwsgi_params; uwsgi_request_buffering off;`;
  const nginx = await startNginx({
    conf: `server { listen {{HOST}}:{{PORT}}; client_max_body_size 0; location / { ${pass} } }`,
  });
  try {
    const rest = rssKiB(worker);
    let peak = rest;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(worker))), 50);
    const r = await upload(nginx.port, protocol === "fastcgi");
    clearInterval(sampler);
    const seen = JSON.parse(r.body) as { size: number; sha256: string };
    const ok = seen.size === total && seen.sha256 === r.sha256;
    console.log(
      `${protocol.padEnd(8)} ${(total / 2 ** 30).toFixed(2)} GiB in ${r.seconds.toFixed(1)} s (${(total / 2 ** 20 / r.seconds).toFixed(0)} MiB/s), ` +
        `worker RSS at rest ${(rest / 1024).toFixed(1)} MiB, peak ${(peak / 1024).toFixed(1)} MiB, growth ${((peak - rest) / 1024).toFixed(1)} MiB; ` +
        `body ${ok ? "intact (size and sha256 match)" : `WRONG: ${r.body}`}`,
    );
    if (!ok || peak - rest > 64 * 1024) process.exitCode = 1;
  } finally {
    await nginx.stop();
    await stopTracked(serve);
  }
}

await measure("fastcgi");
await measure("uwsgi");

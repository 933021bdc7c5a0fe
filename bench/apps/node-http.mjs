// The `proxy_pass` baseline: a plain node:http server with the benchmark routes
// (handler.mjs). Usage: node node-http.mjs PORT [WORKERS]; WORKERS > 1 runs node:cluster
// workers sharing the port. Keep-alive timeout raised so nginx's idle upstream connections
// are not closed under it between runs.
import http from "node:http";
import { handler, runWorkers } from "./handler.mjs";

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? "1");

await runWorkers(workers, () => {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 600_000;
  server.headersTimeout = 601_000;
  server.listen(port, "127.0.0.1");
  process.on("SIGTERM", () => process.exit(0));
});

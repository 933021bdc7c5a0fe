// W6's baseline: the Express app of express-app.mjs on a plain node:http server, as it is
// usually deployed behind nginx proxy_pass. Usage: node express-node-http.mjs PORT [WORKERS].
// Keep-alive timeout raised as in node-http.mjs.
import http from "node:http";
import { app } from "./express-app.mjs";
import { runWorkers } from "./handler.mjs";

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? "1");

await runWorkers(workers, () => {
  const server = http.createServer(app);
  server.keepAliveTimeout = 600_000;
  server.headersTimeout = 601_000;
  server.listen(port, "127.0.0.1");
  process.on("SIGTERM", () => process.exit(0));
});

// The node-fastcgi (npm) contender: its node:http-like server with the benchmark routes
// (handler.mjs), listening on TCP. Usage: node node-fastcgi.mjs PORT [WORKERS]; WORKERS > 1
// runs node:cluster workers sharing the port.
import fcgi from "node-fastcgi";
import { handler, runWorkers } from "./handler.mjs";

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? "1");

await runWorkers(workers, () => {
  fcgi.createServer(handler).listen(port, "127.0.0.1");
  process.on("SIGTERM", () => process.exit(0));
});

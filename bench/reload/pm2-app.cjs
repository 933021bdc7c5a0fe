// The PM2 contender of `npm run bench:reload`: the benchmark routes (../apps/handler.mjs, as
// the node:http baseline of `npm run bench` serves them) in a node:http server run by PM2 in
// cluster mode, with PM2's documented graceful reload: `wait_ready` (the ecosystem file run.ts
// writes) and process.send("ready") once listening, so the old instance is stopped only when
// the new one serves; on SIGINT (what PM2 sends an instance it stops) server.close(), which
// stops accepting and closes idle keep-alive connections, then exit once the others ended
// (PM2 kills it after `kill_timeout` otherwise). The port comes from the environment (PORT).
// CommonJS with a dynamic import: PM2's cluster mode loads the script with require().
const http = require("node:http");

const port = Number(process.env.PORT);

import("../apps/handler.mjs").then(({ handler }) => {
  const server = http.createServer(handler);
  // Longer than nginx's upstream keepalive_timeout (60 s): the proxy closes an idle
  // connection first, so it never sends a request into a close of this side (the usual
  // advice for a node:http server behind a keep-alive proxy).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.listen(port, "127.0.0.1", () => {
    if (process.send) process.send("ready");
  });
  process.on("SIGINT", () => {
    server.close(() => process.exit(0));
  });
});

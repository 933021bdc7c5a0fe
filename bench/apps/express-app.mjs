// W6's application (issue 10): one small Express app, served the same way by both W6
// contenders — on node:http behind nginx proxy_pass (express-node-http.mjs) and under tsgi
// through fromNodeHandler (express-tsgi.mjs). GET …/json answers a small JSON object with
// res.json(); the route matches the last path segment, so it answers under any prefix.
import express from "express";

export const app = express();
app.disable("x-powered-by");
app.disable("etag");
app.get(/\/json$/, (_req, res) => {
  res.json({ message: "Hello, world!" });
});

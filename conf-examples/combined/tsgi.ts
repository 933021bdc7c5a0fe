// One site, two frameworks: an Express API under /api and a TSGI application for everything
// else, put together with mount(). Express sees the whole path (req.url starts with /api), so
// its router is mounted at /api; the TSGI side sees SCRIPT_NAME "" and PATH_INFO the path.
//   tsgi serve conf-examples/combined/tsgi.ts --listen fastcgi:unix:/run/tsgi/combined.sock
// behind nginx as in conf-examples/nginx/fastcgi-keepconn.conf (needs `npm install express`).
import express from "express";
import { fromNodeHandler, mount, type Application } from "tsgi";

const api = express.Router();
api.get("/status", (req, res) => {
  res.json({ ok: true, from: "express", ip: req.ip, protocol: req.protocol });
});
api.post("/echo", express.json(), (req, res) => {
  res.status(201).json({ from: "express", echo: req.body as unknown });
});

const expressApp = express();
expressApp.disable("x-powered-by");
expressApp.use("/api", api);

// The rest of the site, written against the TSGI interface.
const pages: Application = (environ, startResponse) => {
  const body = JSON.stringify({ from: "tsgi", SCRIPT_NAME: environ.SCRIPT_NAME, PATH_INFO: environ.PATH_INFO });
  startResponse("200 OK", [
    ["Content-Type", "application/json"],
    ["Content-Length", String(Buffer.byteLength(body))],
  ]);
  return [body];
};

export const application = mount({
  "/api": fromNodeHandler(expressApp),
  "/": pages,
});

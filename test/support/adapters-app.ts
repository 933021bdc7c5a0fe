// The application of test/integration/adapters.test.ts: real Express and Fastify apps turned
// into TSGI applications with fromNodeHandler, a TSGI application inside the Express app with
// toNodeHandler, and mount() putting them under one site:
//   /express/…  Express (routing, JSON and multipart bodies, streaming, errors, req.ip and
//               req.protocol, res.sendFile, a client going away; /express/tsgi/… is a TSGI
//               app via toNodeHandler)
//   /fastify/…  Fastify (routing, JSON body, streaming, errors, request.ip and protocol)
//   /plain/…    plain node:http handlers (one throws: the gateway's own 500)
//   /nested/inner/…, /…  a TSGI app echoing SCRIPT_NAME and PATH_INFO
// Express and Fastify see req.url = SCRIPT_NAME + PATH_INFO, so their routes carry the prefix.
import { createHash } from "node:crypto";
import { appendFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { Readable } from "node:stream";
import express from "express";
import Fastify from "fastify";
import multer from "multer";
import { fromNodeHandler, mount, toNodeHandler } from "../../src/index.ts";
import type { Application } from "../../src/gateway/request.ts";

export const SENT_FILE = join(import.meta.dirname, "..", "..", "package.json");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TSGI application answering with the keys a mount decides. */
const whereAmI: Application = (environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [
    JSON.stringify({
      app: "tsgi",
      SCRIPT_NAME: environ.SCRIPT_NAME,
      PATH_INFO: environ.PATH_INFO,
      QUERY_STRING: environ.QUERY_STRING,
      REQUEST_URI: environ.REQUEST_URI,
      REMOTE_ADDR: environ.REMOTE_ADDR,
      url_scheme: environ["tsgi.url_scheme"],
    }),
  ];
};

/** A TSGI application that reads its body (through toNodeHandler inside Express). */
const tsgiUpload: Application = async (environ, startResponse) => {
  const body = await environ["tsgi.input"].read();
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ app: "tsgi", SCRIPT_NAME: environ.SCRIPT_NAME, PATH_INFO: environ.PATH_INFO, length: body.length })];
};

// ---- Express ----

const upload = multer({ storage: multer.memoryStorage() });
const router = express.Router();
router.get("/users/:id", (req, res) => {
  res.json({ app: "express", id: req.params.id, query: req.query, url: req.url, originalUrl: req.originalUrl });
});
router.post("/json", express.json(), (req, res) => {
  res.json({ app: "express", got: req.body as unknown });
});
router.post("/upload", upload.single("file"), (req, res) => {
  const file = req.file!;
  res.json({ field: (req.body as Record<string, string>).note, name: file.originalname, size: file.size, sha256: createHash("sha256").update(file.buffer).digest("hex") });
});
router.get("/stream", async (_req, res) => {
  res.setHeader("Content-Type", "text/plain");
  res.write("first\n");
  await sleep(400);
  res.write("second\n");
  await sleep(100);
  res.end("end\n");
});
router.get("/error", () => {
  throw new Error("an Express route failed");
});
router.get("/whoami", (req, res) => {
  res.json({ ip: req.ip, protocol: req.protocol, secure: req.secure, remoteAddress: req.socket.remoteAddress, hostname: req.hostname });
});
router.get("/file", (_req, res) => {
  res.sendFile(SENT_FILE);
});
// Waits for the client to go away: req's and res's 'close' are written to the events file.
router.get("/hang", (req, res) => {
  const note = (what: string) => process.env.TSGI_ECHO_EVENTS && appendFileSync(process.env.TSGI_ECHO_EVENTS, `${what}\n`);
  req.on("close", () => note("express req close"));
  res.on("close", () => note(`express res close (finished: ${res.writableFinished})`));
});
router.use("/tsgi/upload", toNodeHandler(tsgiUpload));
router.use("/tsgi", toNodeHandler(whereAmI));

const expressApp = express();
expressApp.set("env", "production"); // the 500 page without a stack
expressApp.use("/express", router);

// ---- Fastify ----

let fastifyHandler: http.RequestListener | undefined;
const fastify = Fastify({
  // Fastify's documented way to get its (req, res) handler: it hands it to the server factory.
  serverFactory: (handler) => {
    fastifyHandler = handler;
    return http.createServer();
  },
});
fastify.get("/fastify/hello/:name", async (request) => ({ app: "fastify", name: (request.params as { name: string }).name, query: request.query }));
fastify.post("/fastify/json", async (request) => ({ app: "fastify", got: request.body }));
fastify.get("/fastify/whoami", async (request) => ({ ip: request.ip, protocol: request.protocol, hostname: request.hostname }));
fastify.get("/fastify/error", async () => {
  throw new Error("a Fastify route failed");
});
fastify.get("/fastify/stream", async (_request, reply) => {
  const parts = (async function* () {
    yield "first\n";
    await sleep(400);
    yield "second\n";
  })();
  return reply.type("text/plain").send(Readable.from(parts));
});
await fastify.ready();

// ---- plain node:http handlers ----

const plain = mount({
  "/throws": fromNodeHandler(() => {
    throw new Error("a plain handler failed");
  }),
  "/hello": fromNodeHandler((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(`hello ${req.url}\n`);
  }),
});

export const application: Application = mount({
  "/express": fromNodeHandler(expressApp),
  "/fastify": fromNodeHandler(fastifyHandler!),
  "/plain": plain,
  "/nested": mount({ "/inner": whereAmI }),
  "/": whereAmI,
});

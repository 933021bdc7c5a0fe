// The demo site `npm start` serves: a hello page, an echo of the environ as JSON (what the
// integration tests compare across front servers), an upload that reads and hashes the body,
// and a streamed response.
import { createHash } from "node:crypto";
import type { Application } from "tsgi";

function environJson(environ: Record<string, unknown>): string {
  const plain: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(environ)) {
    if (typeof v === "string" || typeof v === "boolean" || Array.isArray(v)) plain[k] = v;
  }
  return JSON.stringify(plain, null, 2);
}

export const application: Application = async (environ, startResponse) => {
  const path = environ.PATH_INFO;
  if (path === "/" || path === "") {
    startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
    return ["Hello from tsgi\n"];
  }
  if (path === "/environ") {
    const body = environJson(environ);
    startResponse("200 OK", [
      ["Content-Type", "application/json"],
      ["Content-Length", String(Buffer.byteLength(body))],
    ]);
    return [body];
  }
  if (path === "/upload") {
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of environ["tsgi.input"]) {
      hash.update(chunk);
      size += chunk.length;
    }
    startResponse("200 OK", [["Content-Type", "application/json"]]);
    return [JSON.stringify({ size, sha256: hash.digest("hex") }) + "\n"];
  }
  if (path === "/stream") {
    const mib = Math.min(Number(new URLSearchParams(environ.QUERY_STRING).get("mib") ?? "1"), 1024);
    startResponse("200 OK", [
      ["Content-Type", "application/octet-stream"],
      ["Content-Length", String(mib * 1024 * 1024)],
    ]);
    const block = Buffer.alloc(64 * 1024, 0x61);
    return (async function* () {
      for (let i = 0; i < mib * 16; i++) yield block;
    })();
  }
  startResponse("404 Not Found", [["Content-Type", "text/plain"]]);
  return ["Not Found\n"];
};

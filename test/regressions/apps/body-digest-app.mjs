// The application of issue-11-stdin-records.test.ts: reads `tsgi.input` chunk by chunk and
// answers what it got, as JSON: how many chunks, how many bytes, their SHA-256.
import { createHash } from "node:crypto";

export async function application(environ, startResponse) {
  const hash = createHash("sha256");
  let chunks = 0;
  let length = 0;
  for await (const chunk of environ["tsgi.input"]) {
    chunks++;
    length += chunk.length;
    hash.update(chunk);
  }
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ chunks, length, sha256: hash.digest("hex") })];
}

// The application of issue-8-one-stack.test.ts (issue 8, point 15), plain JavaScript: it
// answers with what the worker holds — how many node:net servers (net.Server, which a
// node:net FastCGI or uwsgi server would be) are open in this process — and its pid.
import net from "node:net";

export function application(environ, startResponse) {
  const handles = process._getActiveHandles();
  const netServers = handles.filter((h) => h instanceof net.Server).length;
  const body = JSON.stringify({ pid: process.pid, netServers, path: environ.PATH_INFO });
  startResponse("200 OK", [
    ["Content-Type", "application/json"],
    ["Content-Length", String(Buffer.byteLength(body))],
  ]);
  return [body];
}

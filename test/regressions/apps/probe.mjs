// A small application for the issue-8 regression tests: it answers what a test needs to see
// of the worker that served it (pid, parent, cwd, ids, environment, environ) and has a slow
// route that counts how many requests are in this worker's application at once.
//
//   /info            JSON: pid, ppid, cwd, uid, gid, env (process.env), environ (string keys), served
//   /slow?ms=N&id=X  waits N ms, then JSON: pid, active (requests in this worker at its start), start, end;
//                    with PROBE_EVENTS set, appends "X start PID" to that file when it begins
//   /throw           throws before start_response (a 500; its body shows the error with --debug)
//   /body            reads tsgi.input whole, answers its length

import { appendFileSync } from "node:fs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let active = 0;
let served = 0;

function json(startResponse, value) {
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify(value)];
}

export async function application(environ, startResponse) {
  served++;
  const q = new URLSearchParams(environ.QUERY_STRING);
  switch (environ.PATH_INFO) {
    case "/info": {
      const seen = {};
      for (const [k, v] of Object.entries(environ)) if (typeof v === "string") seen[k] = v;
      return json(startResponse, {
        pid: process.pid,
        ppid: process.ppid,
        cwd: process.cwd(),
        uid: process.getuid(),
        gid: process.getgid(),
        env: { ...process.env },
        environ: seen,
        served,
      });
    }
    case "/slow": {
      active++;
      const atStart = active;
      const start = Date.now();
      if (process.env.PROBE_EVENTS && q.get("id")) appendFileSync(process.env.PROBE_EVENTS, `${q.get("id")} start ${process.pid}\n`);
      try {
        await sleep(Number(q.get("ms") ?? "500"));
      } finally {
        active--;
      }
      return json(startResponse, { pid: process.pid, active: atStart, start, end: Date.now() });
    }
    case "/throw":
      throw new Error("probe: the route threw on purpose");
    case "/body": {
      let length = 0;
      for await (const chunk of environ["tsgi.input"]) length += chunk.length;
      return json(startResponse, { length });
    }
    default:
      startResponse("404 Not Found", [["Content-Type", "text/plain"]]);
      return [`no route ${environ.PATH_INFO}\n`];
  }
}

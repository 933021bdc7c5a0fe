// The load of the reload tests under test/daemon/ (apache-reload, http-reload): a site that
// answers a GET with its worker's pid and a POST with the byte count it read, and loops of
// GETs and 256-byte POSTs that count every answer, so that "zero failed" is counted.

import type { Reply } from "../integration/client.ts";
import { poll, siteStatus, type Daemon } from "./daemon.ts";

/** The site's application (app.mjs): GET → the worker's pid, POST → "posted N\n". */
export const PID_OR_POSTED_APP = `
export function application(environ, startResponse) {
  if (environ.REQUEST_METHOD === "POST") {
    return (async function* () {
      let n = 0;
      for await (const c of environ["tsgi.input"]) n += c.length;
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      yield \`posted \${n}\\n\`;
    })();
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [String(process.pid)];
}
`;

/** The POST body the loops send. */
export const POST_BODY = Buffer.alloc(256, 0x61);

export interface Tally {
  gets: number;
  posts: number;
  /** Answers that carried `Connection: close`. */
  closing: number;
  failures: string[];
}

/** `streams` loops, GETs (even) and POSTs of POST_BODY (odd), until `stop()` says so; `send(post)` makes one request. */
export function countedLoad(send: (post: boolean) => Promise<Reply>, streams: number, stop: () => boolean): { tally: Tally; done: Promise<unknown> } {
  const tally: Tally = { gets: 0, posts: 0, closing: 0, failures: [] };
  const done = Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      while (!stop()) {
        const post = i % 2 === 1;
        const r = await send(post).catch((e: Error) => ({ status: -1, body: Buffer.from(e.message), complete: false, headers: [] as [string, string][], reason: "" }));
        const good = r.status === 200 && r.complete && (post ? r.body.toString() === `posted ${POST_BODY.length}\n` : /^\d+$/.test(r.body.toString()));
        if (!good) tally.failures.push(`${post ? "POST" : "GET"} ${r.status} ${r.body.toString().slice(0, 80)}`);
        else if (post) tally.posts++;
        else tally.gets++;
        if (r.headers.some(([n, v]) => n === "connection" && v === "close")) tally.closing++;
      }
    }),
  );
  return { tally, done };
}

/** Three SIGHUPs to the daemon 800 ms apart, then until `site` runs `processes` ready workers again, and half a second more of load. */
export async function sighupThrice(daemon: Daemon, cwd: string, file: string, site: string, processes: number): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 800));
    process.kill(daemon.proc.pid!, "SIGHUP");
  }
  await poll("the reloads done", 30_000, async () => {
    const s = await siteStatus(cwd, file, site);
    return s.state === "running" && s.workers.length === processes && s.workers.every((w) => w.state === "ready");
  });
  await new Promise((r) => setTimeout(r, 500));
}

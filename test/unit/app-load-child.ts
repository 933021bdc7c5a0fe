// The child process of app-load.test.ts: loads each application spec of argv[2] (JSON
// [{spec, cwd}]) with loadApplication, as a worker does (a real Node loader, tsx for
// TypeScript, not vitest's), calls what loaded with a small environ, and prints one JSON
// array of outcomes: {ok: true, body} or {ok: false, code, message, cause}.
import { loadApplication } from "../../src/daemon/app.ts";

const cases = JSON.parse(process.argv[2]!) as { spec: string; cwd: string }[];
const out: unknown[] = [];
for (const c of cases) {
  try {
    const app = (await loadApplication(c.spec, c.cwd)) as unknown as (environ: object, start: (s: string, h: unknown[]) => void) => unknown;
    let status = "";
    const body = (await app({ PATH_INFO: "/x", REQUEST_METHOD: "GET" }, (s) => void (status = s))) as unknown[];
    out.push({ ok: true, status, body: [...body].join("") });
  } catch (err) {
    const e = err as Error & { code?: string };
    out.push({ ok: false, code: e.code, message: e.message, cause: e.cause instanceof Error ? e.cause.stack : null });
  }
}
process.stdout.write(JSON.stringify(out));

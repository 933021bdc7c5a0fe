// Issue 8, point 8: `kill` of `npm start`'s pid left the demo running (npm forwards SIGINT
// and SIGTERM to its script's shell only, and dies of SIGHUP and SIGKILL without forwarding
// anything). Now the demo stops with npm whichever of the four reaches it: every process of
// the tree npm started (master, worker, tsx's esbuild) is gone within a few seconds and the
// master removed its unix sockets. The demo is conf-examples/demo/app.ts, served by a copy of
// conf-examples/demo/tsgi.toml; each case first has it answer over HTTP.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { processTree, readStat, type Stat } from "../../bench/lib/procs.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

// The process title (comm is cut at 15 bytes).
const title = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
};

const alive = (s: Stat) => {
  const now = readStat(s.pid);
  return now !== null && now.start === s.start && now.state !== "Z";
};

test.concurrent.each(["SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"] as const)("kill -%s of npm start's pid stops the whole demo", async (signal) => {
  const dir = mkdtempSync(join(tmpdir(), "tsgi-demo-"));
  const port = await freePort();
  const npm = spawn("npm", ["start"], {
    cwd: ROOT,
    env: { ...process.env, TSGI_DEMO_PORT: String(port), TSGI_DEMO_DIR: dir },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, as a terminal's job: no signal meant for the test reaches it.
    detached: true,
  });
  let output = "";
  npm.stdout.on("data", (b: Buffer) => (output += b.toString()));
  npm.stderr.on("data", (b: Buffer) => (output += b.toString()));
  let tree: Stat[] = [];
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const answer = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => null);
      if (answer === "Hello from tsgi\n") break;
      if (Date.now() > deadline || npm.exitCode !== null) throw new Error(`the demo did not answer on ${port}:\n${output}`);
      await sleep(50);
    }
    tree = processTree(npm.pid!);
    const titles = tree.map((s) => title(s.pid));
    expect(titles).toEqual(expect.arrayContaining(["npm start", "tsgi: master"]));
    expect(titles.some((t) => /^tsgi: demo worker [12]$/.test(t)), titles.join(", ")).toBe(true);
    expect(existsSync(join(dir, "fastcgi.sock"))).toBe(true);

    process.kill(npm.pid!, signal);
    const gone = Date.now() + 5000;
    while (tree.some(alive) && Date.now() < gone) await sleep(50);
    expect(tree.filter(alive).map((s) => `${s.pid} ${s.comm}`), output).toEqual([]);
    expect(existsSync(join(dir, "fastcgi.sock"))).toBe(false);
    expect(existsSync(join(dir, "uwsgi.sock"))).toBe(false);
  } finally {
    for (const s of [...tree, ...processTree(npm.pid!)]) {
      try {
        if (alive(s)) process.kill(s.pid, "SIGKILL");
      } catch {
        // gone between the look and the kill
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

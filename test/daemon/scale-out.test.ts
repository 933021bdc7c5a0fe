// Beyond one machine (issue 9): two tsgi hosts, each a network namespace of this test's own
// (`ip netns`, a veth pair to the root namespace, addresses from 10.231.0.0/16 that no
// interface here uses), each running `tsgi daemon` with a copy of
// conf-examples/scale-out/host-{a,b}/tsgi.toml (FastCGI on the host's own address, `allow` =
// the root side's address), behind one nginx and one Apache in the root namespace started from
// copies of conf-examples/scale-out/{nginx,apache}.conf. Only addresses, ports and paths are
// rewritten. Under a bounded GET and POST load through nginx, host a's whole daemon (master
// and workers: every process of its namespace) is killed with SIGKILL: every GET succeeds
// (nginx resends it to host b), every request sent after the kill succeeds and is served by
// host b; POSTs that host a had taken when it died are the only ones allowed to fail, and are
// counted. Skipped, with the reason, only where the kernel refuses to create a namespace.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test, type TestContext } from "vitest";
import { request } from "../integration/client.ts";
import { CONF_EXAMPLES, rewrite } from "../support/conf-example.ts";
import { freePort, startFromFile, type FrontServer } from "../support/front-servers.ts";

const BIN = join(import.meta.dirname, "..", "..", "bin", "tsgi.js");
const EXAMPLES = join(CONF_EXAMPLES, "scale-out");

// Answers with its host's name: the workers' folder (the site's cwd) is named after the host.
const APP = `
import { basename } from "node:path";
const host = basename(process.cwd());
export async function* application(environ, startResponse) {
  let n = 0;
  if (environ.REQUEST_METHOD === "POST") for await (const c of environ["tsgi.input"]) n += c.length;
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  yield environ.REQUEST_METHOD === "POST" ? \`\${host} posted \${n}\\n\` : \`\${host}\\n\`;
}
`;

interface Host {
  /** "host-a", the name the application answers with. */
  name: string;
  /** The example's address for the host, and its front server's. */
  exampleAddress: string;
  ns: string;
  veth: string;
  /** The root namespace's end of the pair (nginx's source address) and the host's. */
  rootAddress: string;
  address: string;
  dir: string;
  file: string;
  daemon?: { proc: ChildProcess; stderr(): string; exited: Promise<unknown> };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function poll<T>(what: string, timeoutMs: number, fn: () => T | Promise<T>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function ip(args: string[]): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")} failed: ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout;
}

/** The pids of every process in namespace `ns` (none once it is empty or gone). */
function nsPids(ns: string): number[] {
  const r = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

function killNamespace(ns: string): void {
  for (const pid of nsPids(ns)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

/** A /24 of 10.231.0.0/16 that no address or route here mentions. */
function freeSubnet(): number {
  const used = `${ip(["-4", "addr"])}\n${ip(["-4", "route"])}`;
  for (let i = 0; i < 250; i++) {
    const x = 10 + ((process.pid + i) % 240);
    if (!used.includes(`10.231.${x}.`)) return x;
  }
  throw new Error("no free /24 in 10.231.0.0/16 for the test's veth pairs");
}

let unavailable: string | null = null;
let tmp = "";
const hosts: Host[] = [];
let nginx: FrontServer | undefined;
let apache: FrontServer | undefined;

function skipUnlessNamespaces(ctx: TestContext): void {
  if (unavailable !== null) {
    console.log(`scale-out: skipped, ${unavailable}`);
    ctx.skip(unavailable);
  }
}

function withoutSettings(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TSGI_SETTINGS_MODULE;
  return env;
}

function startHost(h: Host): void {
  let err = "";
  // `ip netns exec` execs the command: the child is the daemon's master, its workers in the same namespace.
  const proc = spawn("ip", ["netns", "exec", h.ns, process.execPath, BIN, "daemon", "-c", h.file], {
    cwd: h.dir,
    stdio: ["ignore", "ignore", "pipe"],
    env: withoutSettings(),
  });
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  h.daemon = { proc, stderr: () => err, exited };
}

beforeAll(async () => {
  const probe = `tsgi-t-${process.pid}-probe`;
  const made = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (made.status !== 0) {
    unavailable = `the kernel refuses network namespaces here (ip netns add: ${(made.stderr || made.error?.message || "").trim()})`;
    return;
  }
  ip(["netns", "del", probe]);

  tmp = mkdtempSync(join(tmpdir(), "tsgi-scale-out-"));
  // The workers run as www-data (the example's user) and read the application here.
  chmodSync(tmp, 0o755);
  const x = freeSubnet();
  for (const [i, letter] of ["a", "b"].entries()) {
    const dir = join(tmp, `host-${letter}`);
    const h: Host = {
      name: `host-${letter}`,
      exampleAddress: `10.0.0.1${i + 1}`,
      ns: `tsgi-t-${process.pid}-${letter}`,
      veth: `tsgi${process.pid}${letter}`,
      rootAddress: `10.231.${x}.${4 * i + 1}`,
      address: `10.231.${x}.${4 * i + 2}`,
      dir,
      file: join(dir, "tsgi.toml"),
    };
    hosts.push(h);
    ip(["netns", "add", h.ns]);
    ip(["link", "add", h.veth, "type", "veth", "peer", "name", `${h.veth}n`]);
    ip(["link", "set", `${h.veth}n`, "netns", h.ns]);
    ip(["addr", "add", `${h.rootAddress}/30`, "dev", h.veth]);
    ip(["link", "set", h.veth, "up"]);
    ip(["-n", h.ns, "addr", "add", `${h.address}/30`, "dev", `${h.veth}n`]);
    ip(["-n", h.ns, "link", "set", `${h.veth}n`, "up"]);
    ip(["-n", h.ns, "link", "set", "lo", "up"]);

    mkdirSync(dir);
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, "app.mjs"), APP);
    writeFileSync(
      h.file,
      rewrite(join(EXAMPLES, h.name, "tsgi.toml"), [
        [new RegExp(`fastcgi:${h.exampleAddress.replaceAll(".", "\\.")}:9000`), `fastcgi:${h.address}:9000`],
        [/"10\.0\.0\.10"/, `"${h.rootAddress}"`],
        [/\/srv\/mysite\/tsgi\.ts/, join(dir, "app.mjs")],
        [/\/srv\/mysite/, dir],
      ]),
    );
    startHost(h);
  }
  for (const h of hosts) await poll(`${h.name}'s daemon ready`, 30_000, () => {
    if (h.daemon!.proc.exitCode !== null) throw new Error(`${h.name}'s daemon exited:\n${h.daemon!.stderr()}`);
    return /ready: 1 of 1 sites running/.test(h.daemon!.stderr());
  });

  const members: [RegExp, string][] = hosts.map((h) => [new RegExp(`${h.exampleAddress.replaceAll(".", "\\.")}:9000`), `${h.address}:9000`]);
  {
    const dir = mkdtempSync(join(tmpdir(), "tsgi-scale-out-nginx-"));
    chmodSync(dir, 0o755);
    const port = await freePort();
    const confPath = join(dir, "nginx.conf");
    writeFileSync(
      confPath,
      rewrite(join(EXAMPLES, "nginx.conf"), [
        [/^pid \/run\/nginx\.pid;$/m, `pid ${dir}/nginx.pid;`],
        [/\/var\/log\/nginx\//, `${dir}/`],
        [/^( +)listen 80;$/m, `$1listen 127.0.0.1:${port};`],
        ...members,
      ]),
    );
    nginx = await startFromFile("nginx", { dir, confPath, errorLogPath: join(dir, "error.log"), port });
  }
  {
    const dir = mkdtempSync(join(tmpdir(), "tsgi-scale-out-apache-"));
    chmodSync(dir, 0o755);
    const port = await freePort();
    const confPath = join(dir, "httpd.conf");
    writeFileSync(
      confPath,
      rewrite(join(EXAMPLES, "apache.conf"), [
        [/^DefaultRuntimeDir \/run$/m, `DefaultRuntimeDir ${dir}`],
        [/^PidFile \/run\/apache2\.pid$/m, `PidFile ${dir}/apache2.pid`],
        [/\/var\/log\/apache2\//, `${dir}/`],
        [/^Listen 80$/m, `Listen 127.0.0.1:${port}`],
        [/^<VirtualHost \*:80>$/m, `<VirtualHost *:${port}>`],
        ...members,
      ]),
    );
    apache = await startFromFile("apache", { dir, confPath, errorLogPath: join(dir, "error.log"), port });
  }
}, 90_000);

afterAll(async () => {
  await nginx?.stop();
  await apache?.stop();
  for (const h of hosts) {
    const d = h.daemon;
    if (d && d.proc.exitCode === null && d.proc.signalCode === null) {
      d.proc.kill("SIGTERM");
      await Promise.race([d.exited, sleep(10_000)]);
    }
    killNamespace(h.ns);
    await poll(`${h.ns} empty`, 10_000, () => nsPids(h.ns).length === 0).catch(() => undefined);
    spawnSync("ip", ["link", "del", h.veth]);
    spawnSync("ip", ["netns", "del", h.ns]);
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

/** The host name a response names ("host-a"), or null when it is not a good answer. */
function servedBy(r: { status: number; body: Buffer; complete?: boolean }, post: boolean, size: number): string | null {
  if (r.status !== 200 || r.complete === false) return null;
  const m = post ? /^(host-[ab]) posted (\d+)\n$/.exec(r.body.toString()) : /^(host-[ab])\n$/.exec(r.body.toString());
  return m && (!post || Number(m[2]) === size) ? m[1]! : null;
}

describe("two tsgi hosts behind one front server (network namespaces)", () => {
  test("nginx's upstream and Apache's balancer both reach both hosts", async (ctx) => {
    skipUnlessNamespaces(ctx);
    for (const front of [nginx!, apache!]) {
      const seen = new Map<string, number>();
      for (let i = 0; i < 20; i++) {
        const r = await request(`http://127.0.0.1:${front.port}/`);
        const host = servedBy(r, false, 0);
        expect(host, `${front.kind}: ${r.status} ${r.body.toString().slice(0, 200)}`).not.toBeNull();
        seen.set(host!, (seen.get(host!) ?? 0) + 1);
      }
      expect([...seen.keys()].sort(), front.kind).toEqual(["host-a", "host-b"]);
    }
  });

  test("a host closes a connection from an address its allow does not list, and logs it", async (ctx) => {
    skipUnlessNamespaces(ctx);
    const a = hosts[0]!;
    // From inside host a's namespace, to its own address: the peer is 10.231.X.2, not the front server.
    const client = `
      const s = require("node:net").connect(9000, ${JSON.stringify(a.address)});
      let n = 0;
      s.on("connect", () => s.write(Buffer.from([1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0])));
      s.on("data", (d) => (n += d.length));
      s.on("error", () => {});
      s.on("close", () => { console.log("closed after " + n + " bytes"); process.exit(0); });
      setTimeout(() => { console.log("still open"); process.exit(0); }, 5000);`;
    const r = spawnSync("ip", ["netns", "exec", a.ns, process.execPath, "-e", client], { encoding: "utf8", timeout: 20_000 });
    expect(r.stdout.trim(), r.stderr).toBe("closed after 0 bytes");
    const line = new RegExp(`TSGI_ERR_POOL_PEER_REFUSED: ${a.address.replaceAll(".", "\\.")}:\\d+ is not in allow: its connection to fastcgi ${a.address.replaceAll(".", "\\.")}:9000 was closed`);
    await poll("host a's refusal logged", 5000, () => line.test(a.daemon!.stderr()));
  });

  test("a host's whole daemon killed with SIGKILL under GET and POST load: nginx fails over, no request sent after the kill fails, no GET fails at all", async (ctx) => {
    skipUnlessNamespaces(ctx);
    const [a, b] = hosts as [Host, Host];
    const url = `http://127.0.0.1:${nginx!.port}/x`;
    const body = Buffer.alloc(2048, 0x62);
    interface Outcome {
      post: boolean;
      start: number;
      host: string | null;
      detail: string;
    }
    const outcomes: Outcome[] = [];
    let stop = false;
    // Three GET loops and two POST loops, each on its own keep-alive connection to nginx.
    const loops = Array.from({ length: 5 }, async (_, i) => {
      const post = i >= 3;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      while (!stop) {
        const start = Date.now();
        const r = await request(url, post ? { method: "POST", body, agent } : { agent }).catch((e: Error) => ({ status: -1, body: Buffer.from(e.message), complete: false }));
        outcomes.push({ post, start, host: servedBy(r, post, body.length), detail: `${r.status} ${r.body.toString().replace(/\s+/g, " ").slice(0, 80)}` });
        // A modest load on a shared machine: a few hundred requests a second at most.
        await sleep(5);
      }
      agent.destroy();
    });
    const served = (host: string, from = 0) => outcomes.filter((o) => o.host === host && o.start >= from).length;

    await poll("both hosts serving the load", 30_000, () => served("host-a") >= 20 && served("host-b") >= 20);
    const pids = nsPids(a.ns);
    expect(pids).toContain(a.daemon!.proc.pid);
    expect(pids.length, `processes in ${a.ns}: ${pids.join(" ")}`).toBeGreaterThanOrEqual(3); // the master and its two workers
    const killed = Date.now();
    killNamespace(a.ns);
    await poll(`every process of ${a.ns} gone`, 10_000, () => nsPids(a.ns).length === 0);
    // The switch: nginx logs its first failed exchange with host a (a connection refused, or
    // reset under a request) before it counts the failure, which with max_fails=1 takes host a
    // out for fail_timeout (10 s), in every nginx worker (the upstream's zone). A request sent
    // between the kill and then may still meet an idle keep-alive connection to host a whose
    // close nginx has not processed yet.
    const upstreamErrors = () => nginx!.errorLog().split("\n").filter((l) => /upstream/.test(l));
    await poll("nginx to log host a's failure", 20_000, () => upstreamErrors().some((l) => l.includes(`//${a.address}:`)));
    const switched = Date.now();
    // Keep loading: at least 3 s and 150 requests sent after the switch (bounded by the poll's timeout).
    await poll("load after the switch", 60_000, () => Date.now() - switched >= 3000 && outcomes.filter((o) => o.start >= switched).length >= 150);
    stop = true;
    await Promise.all(loops);

    const before = outcomes.filter((o) => o.start < killed);
    const during = outcomes.filter((o) => o.start >= killed && o.start < switched);
    const after = outcomes.filter((o) => o.start >= switched);
    const failed = outcomes.filter((o) => o.host === null);
    const listed = (os: Outcome[]) => os.map((o) => `${o.post ? "POST" : "GET"} ${o.detail}`);
    const errors = upstreamErrors();
    console.log(
      `scale-out: before the kill ${before.length} requests (host-a ${served("host-a")}, host-b ${before.filter((o) => o.host === "host-b").length}); ` +
        `between the kill and nginx's first error ${during.length} (${switched - killed} ms); after it ${after.length} (host-b ${served("host-b", switched)}); ` +
        `failed: ${failed.length} (${listed(failed).join("; ")}); nginx upstream errors: ${errors.length}\n  ${errors.join("\n  ")}`,
    );
    // Both hosts served before the kill.
    expect(before.filter((o) => o.host === "host-a").length).toBeGreaterThanOrEqual(20);
    expect(before.filter((o) => o.host === "host-b").length).toBeGreaterThanOrEqual(20);
    // After it: every request (GET and POST) succeeds, all from host b.
    expect(listed(after.filter((o) => o.host !== "host-b"))).toEqual([]);
    expect(after.filter((o) => o.post).length).toBeGreaterThan(20);
    // No GET failed at all (nginx resends one host a had taken). A POST sent to host a before
    // the switch is not resent (fastcgi_next_upstream without non_idempotent): the client gets
    // 502; once one failure reached a client, host a is out, so at most one per POST loop.
    expect(listed(failed.filter((o) => !o.post))).toEqual([]);
    expect(failed.length).toBeLessThanOrEqual(2);
    // Every error nginx logged is about host a.
    expect(errors.filter((l) => !l.includes(`//${a.address}:`))).toEqual([]);
    // Host b's daemon was untouched.
    expect(nsPids(b.ns)).toContain(b.daemon!.proc.pid);
    expect(b.daemon!.stderr()).not.toMatch(/killed by|starting a new one/);
  });

  test("after host a's death, Apache's balancer sends every request to host b", async (ctx) => {
    skipUnlessNamespaces(ctx);
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await request(`http://127.0.0.1:${apache!.port}/`);
      answers.push(servedBy(r, false, 0) ?? `${r.status} ${r.body.toString().slice(0, 100)}`);
    }
    expect(answers).toEqual(Array(20).fill("host-b"));
  });
});

// docs/apache-auth.md as a reader follows it, through real Apache httpd: the page's shell
// block run as written (users added with conf-examples/apache-auth/add-user.ts into a JSON
// table of salted scrypt hashes, conf-examples/apache-auth/users.ts, the example site
// conf-examples/apache-auth/tsgi.ts served), conf-examples/apache/auth.conf rendered with tsgi's
// address, checked with `apache2 -t` and served, and the page's answers asserted:
// mod_authnz_fcgi's authn calls answered by authenticator(), its authz calls by authorizer(),
// the pages by mod_proxy_fcgi from the same site, with the variable the authenticator handed
// back in the page's environ. The page's file blocks are the files themselves.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startApache, type FrontServer } from "../support/front-servers.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";
import { header, request, type Reply } from "./client.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const DOC = readFileSync(join(ROOT, "docs", "apache-auth.md"), "utf8");

/** The fenced blocks that follow `<!-- KIND: NAME -->`, by NAME. */
function markedBlocks(kind: string): Map<string, string> {
  const re = new RegExp(`<!-- ${kind}: (.+?) -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`\\n`, "g");
  return new Map([...DOC.matchAll(re)].map((m) => [m[1]!, m[2]!]));
}

/** The page's one shell block, line by line. */
function shellLines(): string[] {
  const blocks = [...DOC.matchAll(/```sh\n([\s\S]*?)```/g)];
  expect(blocks, "docs/apache-auth.md has one sh block").toHaveLength(1);
  return blocks[0]![1]!.trim().split("\n");
}

describe("docs/apache-auth.md", () => {
  test("each file block is the file in the repository, whole", () => {
    const files = markedBlocks("file");
    expect([...files.keys()].sort()).toEqual(["conf-examples/apache-auth/tsgi.ts", "conf-examples/apache/auth.conf"]);
    for (const [path, block] of files) expect(block, path).toBe(readFileSync(join(ROOT, path), "utf8"));
  });
});

describe("apache-authnz-fcgi-helpers: the example site behind conf-examples/apache/auth.conf", () => {
  let dir: string;
  let tsgi: TsgiProcess;
  let apache: FrontServer;
  // Chosen here, so that nothing can pass on a pair written into the example.
  const passwords = new Map<string, string>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tsgi-apache-auth-"));
    const usersFile = join(dir, "users.json");
    const lines = shellLines().map((l) => l.replaceAll("users.json", usersFile));
    expect(lines).toHaveLength(3);
    for (const line of lines.slice(0, 2)) {
      const name = /add-user\.ts \S+ (\S+) /.exec(line)?.[1];
      expect(name, line).toBeDefined();
      const password = randomBytes(9).toString("base64");
      passwords.set(name!, password);
      const run = spawnSync("sh", ["-c", line], { cwd: ROOT, input: `${password}\n`, encoding: "utf8" });
      expect(run.stderr).toContain(`${usersFile}: ${name}`);
      expect(run.status).toBe(0);
    }
    // A record the store cannot read (a password kept in clear): checking it throws.
    const table = JSON.parse(readFileSync(usersFile, "utf8")) as Record<string, unknown>;
    expect(JSON.stringify(table)).not.toContain(passwords.get("alice"));
    table.carol = { id: "3", groups: ["admin"], password: "in clear" };
    writeFileSync(usersFile, JSON.stringify(table));
    passwords.set("carol", "in clear");

    const serve = /^USERS_FILE=(\S+) tsgi serve (\S+) --listen fastcgi:127\.0\.0\.1:9000$/.exec(lines[2]!);
    expect(serve, lines[2]).not.toBeNull();
    tsgi = await startTsgi({ app: join(ROOT, serve![2]!), listen: [{ proto: "fastcgi" }], env: { USERS_FILE: serve![1]! } });
    const { host, port } = tsgi.tcp("fastcgi");
    apache = await startApache({
      conf: readFileSync(join(ROOT, "conf-examples", "apache", "auth.conf"), "utf8"),
      vars: { TSGI_FASTCGI_HOST: host, TSGI_FASTCGI_PORT: port },
      modules: ["proxy", "proxy_fcgi", "authnz_fcgi", "auth_basic", "authn_core", "authz_user", "setenvif"],
    });
  });

  afterAll(async () => {
    await apache?.stop();
    await tsgi?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string, user?: string, password = user ? passwords.get(user) : undefined): Promise<Reply> =>
    request(`http://${apache.host}:${apache.port}${path}`, {
      headers: user === undefined ? [] : [["Authorization", `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`]],
    });

  test("apache2 -t accepts the configuration served, auth.conf rendered into it", () => {
    const run = spawnSync("apache2", ["-t", "-f", apache.confPath], { encoding: "utf8" });
    expect(`${run.stdout}${run.stderr}`).toContain("Syntax OK");
    expect(run.status).toBe(0);
    expect(readFileSync(apache.confPath, "utf8")).toContain("AuthnzFcgiDefineProvider authz tsgi-authz fcgi://127.0.0.1:");
  });

  test("the right password: 200, and the page sees the user and the AUTHN_USER_ID handed back, as the page shows", async () => {
    const r = await get("/private/page", "alice");
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(`${markedBlocks("response").get("alice GET /private/page")}`);
    // Apache takes the Variable-* headers off the client's response.
    expect(r.headers.filter(([n]) => n.startsWith("variable-"))).toEqual([]);
    expect(JSON.parse((await get("/private/page", "bob")).body.toString())).toEqual({ user: "bob", authType: "Basic", userId: "2", path: "/private/page" });
  });

  test("a wrong password, an unknown user and no credentials: 401 with a new prompt", async () => {
    for (const r of [await get("/private/page", "alice", "wrong"), await get("/private/page", "mallory", passwords.get("alice")), await get("/private/page")]) {
      expect(r.status).toBe(401);
      expect(header(r, "www-authenticate")).toBe('Basic realm="private"');
    }
  });

  test("the admin group rule: 200 for a member, 403 for a user who is not, 401 for a wrong password", async () => {
    const alice = await get("/private/admin/", "alice");
    expect(alice.status).toBe(200);
    expect(JSON.parse(alice.body.toString())).toMatchObject({ user: "alice", userId: "1", path: "/private/admin/" });
    expect((await get("/private/admin/", "bob")).status).toBe(403);
    expect((await get("/private/admin/", "bob", "wrong")).status).toBe(401);
  });

  test("a user record the store cannot check: 500 and a coded line in tsgi's log, never a pass", async () => {
    const r = await get("/private/admin/", "carol");
    expect(r.status).toBe(500);
    expect(r.body.toString()).not.toContain("carol");
    await tsgi.waitForStderr(/TSGI_ERR_APP_AUTH_CALLBACK: checkPassword threw for user "carol"; the request is refused \(500\): Error: malformed password entry/);
    expect(tsgi.stderr()).not.toContain("in clear");
  });
});

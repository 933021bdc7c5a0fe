// Apache mod_authnz_fcgi asks the application whether a user may pass (the FastCGI
// AUTHORIZER role, DESIGN §3): a right password passes and the Variable-* header the
// authorizer returned reaches the protected page's environ; a wrong one is a 401 from Apache.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startApache, type FrontServer } from "../support/front-servers.ts";
import { startTsgi, type TsgiProcess } from "../support/tsgi-process.ts";

const APP = join(import.meta.dirname, "..", "support", "auth-app.ts");

describe("apache-authnz-fcgi", () => {
  let tsgi: TsgiProcess;
  let apache: FrontServer;

  beforeAll(async () => {
    tsgi = await startTsgi({ app: APP, listen: [{ proto: "fastcgi" }] });
    const { host, port } = tsgi.tcp("fastcgi");
    apache = await startApache({
      modules: ["proxy", "proxy_fcgi", "authnz_fcgi", "auth_basic", "authn_core", "authz_user"],
      conf: [
        `AuthnzFcgiDefineProvider authn tsgi fcgi://${host}:${port}/`,
        '<Location "/private/">',
        "  AuthType Basic",
        '  AuthName "tsgi"',
        "  AuthBasicProvider tsgi",
        "  Require valid-user",
        `  ProxyPass "fcgi://${host}:${port}/private/"`,
        "</Location>",
      ].join("\n"),
    });
  });

  afterAll(async () => {
    await apache?.stop();
    await tsgi?.stop();
  });

  const get = (auth?: string) =>
    fetch(`http://${apache.host}:${apache.port}/private/page`, auth ? { headers: { Authorization: `Basic ${Buffer.from(auth).toString("base64")}` } } : {});

  test("the right password passes, and the authorizer's Variable-AUTH_USER_ID reaches the page", async () => {
    const r = await get("alice:s3cret");
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ REMOTE_USER: "alice", AUTH_TYPE: "Basic", AUTH_USER_ID: "42", PATH_INFO: "/private/page" });
  });

  test("a wrong password and no credentials are refused with 401", async () => {
    expect((await get("alice:wrong")).status).toBe(401);
    expect((await get("mallory:s3cret")).status).toBe(401);
    expect((await get()).status).toBe(401);
  });

  test("the validator reported no breach of the contract", () => {
    expect(tsgi.stderr()).not.toMatch(/VALIDATE_REPORT/);
  });
});

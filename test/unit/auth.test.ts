// authenticator() and authorizer() (src/gateway/auth.ts) as mod_authnz_fcgi calls them: the
// params of each call (FCGI_ROLE, FCGI_APACHE_ROLE, REMOTE_USER, REMOTE_PASSWD, as byte
// strings) through the real environ builder and request runner into an in-memory sink; each
// callback result, sync and async, and each failure, which answers 500 with a coded log line
// and never 200. Apache's side of the same calls is test/integration/apache-auth.test.ts.
import { describe, expect, it } from "vitest";
import { RequestAbort } from "../../src/gateway/abort.ts";
import { authenticator, authorizer, type CheckPassword, type GroupsForUser } from "../../src/gateway/auth.ts";
import { fileWrapper } from "../../src/gateway/body.ts";
import { buildEnviron } from "../../src/gateway/environ.ts";
import { TsgiInput } from "../../src/gateway/input.ts";
import { runRequest, type Application, type ResponseSink } from "../../src/gateway/request.ts";
import type { ResponseHead } from "../../src/gateway/start-response.ts";

interface Answer {
  status: string | null;
  headers: [string, string][];
  body: string;
  /** What the application wrote to tsgi.errors (the site's error log). */
  log: string;
}

/** Params as a front server sends them: latin-1 byte strings. */
const bytes = (text: string) => Buffer.from(text, "utf8").toString("latin1");

async function call(app: Application, params: Record<string, string>): Promise<Answer> {
  const answer: Answer = { status: null, headers: [], body: "", log: "" };
  const list = ["REQUEST_METHOD", "GET", "REQUEST_URI", "/private/x", "SERVER_NAME", "h", "SERVER_PORT", "80"];
  for (const [k, v] of Object.entries(params)) list.push(k, v);
  const built = buildEnviron(list, {
    mount: "",
    input: TsgiInput.EMPTY,
    errors: { write: (t) => void (answer.log += t), flush() {} },
    multiprocess: false,
    abort: new RequestAbort(),
    fileWrapper,
  });
  if (!("environ" in built)) throw built.error;
  const sink: ResponseSink = {
    send(head: ResponseHead, chunk) {
      if (!head.sent) {
        head.sent = true;
        answer.status = head.status;
        answer.headers = head.headers;
      }
      if (chunk) answer.body += Buffer.from(chunk).toString("latin1");
    },
    abort() {},
  };
  await runRequest(app, built.environ, sink, { abort: new RequestAbort(), log: { error: (m) => void (answer.log += `server: ${m}\n`) } });
  return answer;
}

const authn = (user: string, password: string, role: string | null = "AUTHENTICATOR") => ({
  FCGI_ROLE: "AUTHORIZER",
  ...(role === null ? {} : { FCGI_APACHE_ROLE: role }),
  REMOTE_USER: bytes(user),
  REMOTE_PASSWD: bytes(password),
  AUTH_TYPE: "Basic",
});
const authz = (user: string, group?: string) => ({
  FCGI_ROLE: "AUTHORIZER",
  FCGI_APACHE_ROLE: "AUTHORIZER",
  REMOTE_USER: bytes(user),
  AUTH_TYPE: "Basic",
  ...(group === undefined ? {} : { TSGI_REQUIRE_GROUP: group }),
});

const USERS: Record<string, { password: string; groups: string[] }> = {
  alice: { password: "s3cret", groups: ["admin", "staff"] },
  zoë: { password: "pässwörd", groups: [] },
};
const sync: CheckPassword = (_e, user, password) => (Object.hasOwn(USERS, user) ? USERS[user]!.password === password : null);
const async_: CheckPassword = async (e, user, password) => sync(e, user, password);

describe.each([
  ["a sync checkPassword", sync],
  ["an async checkPassword", async_],
])("authenticator with %s", (_, check) => {
  const app = authenticator(check);

  it("the right password: 200 with no header and no body", async () => {
    expect(await call(app, authn("alice", "s3cret"))).toEqual({ status: "200 OK", headers: [], body: "", log: "" });
  });

  it("a wrong password and an unknown user: 401, nothing logged", async () => {
    expect(await call(app, authn("alice", "S3CRET"))).toMatchObject({ status: "401 Unauthorized", headers: [], body: "", log: "" });
    expect(await call(app, authn("mallory", "s3cret"))).toMatchObject({ status: "401 Unauthorized", log: "" });
  });

  it("the generic authorizer call (type authnz, no FCGI_APACHE_ROLE) is a password check", async () => {
    expect((await call(app, authn("alice", "s3cret", null))).status).toBe("200 OK");
    expect((await call(app, authn("alice", "wrong", null))).status).toBe("401 Unauthorized");
  });

  it("UTF-8 credentials reach the callback as text", async () => {
    expect((await call(app, authn("zoë", "pässwörd"))).status).toBe("200 OK");
  });
});

describe("authenticator: what the callback is given and may return", () => {
  it("credentials that are missing or not UTF-8 get 401 without a call", async () => {
    let calls = 0;
    const app = authenticator(() => ++calls > 0);
    expect((await call(app, { FCGI_ROLE: "AUTHORIZER", FCGI_APACHE_ROLE: "AUTHENTICATOR", REMOTE_USER: "alice" })).status).toBe("401 Unauthorized");
    expect((await call(app, { FCGI_ROLE: "AUTHORIZER", FCGI_APACHE_ROLE: "AUTHENTICATOR" })).status).toBe("401 Unauthorized");
    // Bytes that are not UTF-8, as they come off the wire.
    expect((await call(app, { ...authn("alice", ""), REMOTE_PASSWD: "\xff\xfe" })).status).toBe("401 Unauthorized");
    expect((await call(app, { ...authn("", "x"), REMOTE_USER: "al\xe9" })).status).toBe("401 Unauthorized");
    expect(calls).toBe(0);
    expect((await call(app, authn("alice", ""))).status).toBe("200 OK");
    expect(calls).toBe(1);
  });

  it("an object: 200 with each entry as a Variable-NAME header, text as its UTF-8 bytes", async () => {
    const app = authenticator(async () => ({ AUTHN_USER_ID: "42", AUTHN_NAME: "Zoë" }));
    expect(await call(app, authn("zoë", "x"))).toEqual({
      status: "200 OK",
      headers: [
        ["Variable-AUTHN_USER_ID", "42"],
        ["Variable-AUTHN_NAME", bytes("Zoë")],
      ],
      body: "",
      log: "",
    });
    expect((await call(authenticator(() => ({})), authn("a", "b"))).headers).toEqual([]);
  });

  it.each([
    ["a sync throw", () => {
      throw new Error("the user table is gone");
    }],
    ["an async rejection", async () => {
      throw new Error("the user table is gone");
    }],
  ] as [string, CheckPassword][])("%s: 500 and the coded line with the stack, never the password", async (_, check) => {
    const a = await call(authenticator(check), authn("alice", "s3cret"));
    expect(a).toMatchObject({ status: "500 Internal Server Error", headers: [], body: "" });
    expect(a.log).toMatch(/^TSGI_ERR_APP_AUTH_CALLBACK: checkPassword threw for user "alice"; the request is refused \(500\): Error: the user table is gone\n\s+at /);
    expect(a.log).not.toContain("s3cret");
  });

  it.each([
    ["a string", () => "yes", /returned "yes" for user "alice": not true, false, null or an object of variables/],
    ["a number", () => 1, /returned number for user "alice"/],
    ["an array", () => ["AUTHN_X"], /returned an array for user "alice"/],
    ["a variable name that is not one", () => ({ "AUTHN-X": "1" }), /variable name "AUTHN-X" is not letters, digits and underscores/],
    ["a value that is not a string", () => ({ AUTHN_ID: 42 }), /variable AUTHN_ID is number, not a string/],
    ["a value with a line break", () => ({ AUTHN_ID: "1\r\nSet-Cookie: x" }), /variable AUTHN_ID holds a CR, LF or NUL/],
  ] as [string, CheckPassword, RegExp][])("%s: 500 and TSGI_ERR_APP_AUTH_RESULT", async (_, check, reason) => {
    const a = await call(authenticator(check), authn("alice", "s3cret"));
    expect(a).toMatchObject({ status: "500 Internal Server Error", headers: [], body: "" });
    expect(a.log).toMatch(/^TSGI_ERR_APP_AUTH_RESULT: checkPassword /);
    expect(a.log).toMatch(reason);
  });
});

const groups = (_e: unknown, user: string): string[] | null => (Object.hasOwn(USERS, user) ? USERS[user]!.groups : null);

describe.each([
  ["a sync groupsForUser", groups],
  ["an async groupsForUser", (async (e, user) => groups(e, user)) as GroupsForUser],
  ["a groupsForUser returning a Set", ((e, user) => {
    const g = groups(e, user);
    return g ? new Set(g) : g;
  }) as GroupsForUser],
])("authorizer with %s", (_, fn) => {
  const app = authorizer(fn);

  it("a member of the required group: 200; of none of them, or unknown: 403", async () => {
    expect(await call(app, authz("alice", "admin"))).toEqual({ status: "200 OK", headers: [], body: "", log: "" });
    expect((await call(app, authz("zoë", "admin"))).status).toBe("403 Forbidden");
    expect((await call(app, authz("mallory", "admin"))).status).toBe("403 Forbidden");
  });

  it("several required groups, by spaces or commas: any one of them", async () => {
    expect((await call(app, authz("alice", "ops, staff"))).status).toBe("200 OK");
    expect((await call(app, authz("alice", "ops  audit"))).status).toBe("403 Forbidden");
  });
});

describe("authorizer: failures", () => {
  it("no TSGI_REQUIRE_GROUP: 500 with the line that says how to name one", async () => {
    const a = await call(authorizer(groups), authz("alice"));
    expect(a.status).toBe("500 Internal Server Error");
    expect(a.log).toBe('TSGI_ERR_APP_AUTH_NO_GROUP: an authorizer call for "/private/x" names no group in TSGI_REQUIRE_GROUP; refused (500)\n');
    expect((await call(authorizer(groups), authz("alice", " , "))).status).toBe("500 Internal Server Error");
  });

  it("a throw, a string or a list of non-strings: 500, never 200", async () => {
    const threw = await call(authorizer(async () => Promise.reject(new TypeError("no db"))), authz("alice", "admin"));
    expect(threw.status).toBe("500 Internal Server Error");
    expect(threw.log).toMatch(/^TSGI_ERR_APP_AUTH_CALLBACK: groupsForUser threw for user "alice"; the request is refused \(500\): TypeError: no db/);
    for (const result of ["admin", [1], { admin: true }]) {
      const a = await call(authorizer(() => result as never), authz("alice", "admin"));
      expect(a.status).toBe("500 Internal Server Error");
      expect(a.log).toMatch(/^TSGI_ERR_APP_AUTH_RESULT: groupsForUser returned .* for user "alice": not an array \(or iterable\) of group names, null or undefined/);
    }
  });
});

describe("one site for every call: the helpers chained, the pages last", () => {
  let pageCalls = 0;
  const pages: Application = (environ, startResponse) => {
    pageCalls++;
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [`page ${String(environ.REMOTE_USER)}`];
  };
  const site = authenticator(sync, authorizer(groups, pages));

  it("authn calls to the authenticator, authz calls to the authorizer, page requests to the pages", async () => {
    expect((await call(site, authn("alice", "s3cret"))).status).toBe("200 OK");
    expect((await call(site, authz("alice", "admin"))).status).toBe("200 OK");
    expect((await call(site, authz("zoë", "admin"))).status).toBe("403 Forbidden");
    expect((await call(authorizer(groups, authenticator(sync)), authn("alice", "nope"))).status).toBe("401 Unauthorized");
    pageCalls = 0;
    expect(await call(site, { REMOTE_USER: "alice", AUTH_TYPE: "Basic" })).toMatchObject({ status: "200 OK", body: "page alice" });
    expect(pageCalls).toBe(1);
  });

  it("an authorizer call no helper answers never reaches the pages: 500 naming the role", async () => {
    pageCalls = 0;
    const lone = await call(authenticator(sync, pages), authz("alice", "admin"));
    expect(lone.status).toBe("500 Internal Server Error");
    expect(lone.log).toBe(
      "TSGI_ERR_APP_AUTH_ROLE: a mod_authnz_fcgi call with FCGI_APACHE_ROLE AUTHORIZER reached authenticator(), which answers authn (FCGI_APACHE_ROLE=AUTHENTICATOR) and authnz; refused (500)\n",
    );
    const generic = await call(authorizer(groups, pages), authn("alice", "s3cret", null));
    expect(generic.log).toMatch(/^TSGI_ERR_APP_AUTH_ROLE: a mod_authnz_fcgi call with FCGI_APACHE_ROLE \(none: authnz\) reached authorizer\(\)/);
    const access = await call(site, { ...authz("alice", "admin"), FCGI_APACHE_ROLE: "ACCESS_CHECKER" });
    expect(access.status).toBe("500 Internal Server Error");
    expect(access.log).toMatch(/FCGI_APACHE_ROLE ACCESS_CHECKER reached authorizer\(\)/);
    expect(pageCalls).toBe(0);
  });

  it("a page request to a helper without pages: 404", async () => {
    expect(await call(authenticator(sync), { REMOTE_USER: "alice" })).toMatchObject({ status: "404 Not Found", log: "" });
    expect((await call(authorizer(groups), {})).status).toBe("404 Not Found");
  });

  it("a helper built without a function is refused at once, with its code", () => {
    expect(() => authenticator("check" as never)).toThrow(expect.objectContaining({ code: "TSGI_ERR_APP_AUTH_SETUP", message: "authenticator() needs a checkPassword function: got string" }));
    expect(() => authorizer(groups, {} as never)).toThrow(expect.objectContaining({ code: "TSGI_ERR_APP_AUTH_SETUP", message: "authorizer() needs an application as its next argument, or none: got object" }));
  });
});

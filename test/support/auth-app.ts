// A site that authenticates Apache's users against its own user table (the FastCGI
// AUTHORIZER role, as mod_authnz_fcgi calls it) and serves the pages it protects (RESPONDER):
// DESIGN §3's "Authenticating against the application's user database from Apache".
import type { Application } from "../../src/gateway/request.ts";
import { validate } from "../../src/gateway/validate.ts";

const USERS: Record<string, { password: string; id: string }> = { alice: { password: "s3cret", id: "42" } };

const app: Application = (environ, startResponse) => {
  if (environ.FCGI_ROLE === "AUTHORIZER") {
    const user = USERS[String(environ.REMOTE_USER ?? "")];
    if (user && user.password === environ.REMOTE_PASSWD) {
      // Variable-* headers of a 200 become request variables in Apache (mod_authnz_fcgi).
      startResponse("200 OK", [["Variable-AUTH_USER_ID", user.id]]);
    } else {
      startResponse("401 Unauthorized", [["Content-Type", "text/plain"]]);
    }
    return [];
  }
  const body = JSON.stringify({
    REMOTE_USER: environ.REMOTE_USER ?? null,
    AUTH_TYPE: environ.AUTH_TYPE ?? null,
    AUTH_USER_ID: environ.AUTH_USER_ID ?? null,
    PATH_INFO: environ.PATH_INFO,
  });
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [body];
};

export const application = validate(app, (err) => process.stderr.write(`VALIDATE_REPORT ${err.code}: ${err.message}\n`));

// The site Apache protects and asks (conf-examples/apache/auth.conf): over one FastCGI
// listener, tsgi answers mod_authnz_fcgi's calls — is this the user's password, is the user in
// the group this location requires — from the application's own user table (users.ts), and
// serves the protected pages to mod_proxy_fcgi.
//   USERS_FILE=/srv/mysite/users.json tsgi serve tsgi.ts --listen fastcgi:127.0.0.1:9000
import { authenticator, authorizer, type Application } from "tsgi";
import { checkUser, groupsOf } from "./users.ts";

// A protected page: who Apache let in, and the id the authenticator handed back.
const pages: Application = (environ, startResponse) => {
  const body = JSON.stringify({
    user: environ.REMOTE_USER,
    authType: environ.AUTH_TYPE,
    userId: environ.AUTHN_USER_ID,
    path: environ.PATH_INFO,
  });
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [`${body}\n`];
};

export const application = authenticator(
  async (environ, user, password) => {
    const found = await checkUser(user, password);
    // A right password hands the user's id to Apache: the pages see it as AUTHN_USER_ID.
    return found ? { AUTHN_USER_ID: found.id } : found;
  },
  authorizer((environ, user) => groupsOf(user), pages),
);

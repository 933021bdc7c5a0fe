// The application of issue-8-access-log.test.ts (issue 8, point 13): "ok\n" for any path, so
// that the access-log line of a request with hostile bytes in its URI or user is all that
// the test looks at.

export function application(environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["ok\n"];
}

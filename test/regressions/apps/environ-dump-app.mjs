// The application of issue-11-packed-params.test.ts: answers its environ's string-valued keys
// (the CGI params as the gateway kept them, SCRIPT_NAME, PATH_INFO, tsgi.url_scheme) in their
// order, as JSON pairs, and how many body bytes `tsgi.input` gave.
export async function application(environ, startResponse) {
  let body = 0;
  for await (const chunk of environ["tsgi.input"]) body += chunk.length;
  const pairs = Object.entries(environ).filter(([, v]) => typeof v === "string");
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify({ pairs, body })];
}

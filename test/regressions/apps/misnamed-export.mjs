// The application of issue-10-loading.test.ts: a module whose application is exported under
// another name (app), beside a handler and a default export that is not a function.

export function app(environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["app\n"];
}

export function handler(environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["handler\n"];
}

export default { name: "misnamed" };

// The application of issue-8-late-exception.test.ts (issue 8, point 5). Routes are chosen by
// the LAST segment of PATH_INFO, so that a front server may put any prefix before it (nginx
// and mod_proxy_fcgi send the whole path):
//
//   …/late?kind=sync|async[&length=N]  200 with "partial " as the first chunk, then the body
//                                      throws (a sync generator throws in its next next(),
//                                      an async one after 100 ms); with `length`, the head
//                                      announces Content-Length: N
//   …/slow                             a SYNC generator: yields "first\n", then its next()
//                                      blocks the thread for 600 ms (busy loop) before
//                                      yielding "second\n"
//   …/hello                            an array body ["hello ", "world\n"]

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function headers(query) {
  const h = [["Content-Type", "text/plain"]];
  if (query.get("length")) h.push(["Content-Length", query.get("length")]);
  return h;
}

function* lateSync() {
  yield "partial ";
  throw new Error("late-exception-app: the sync body fails after its first chunk");
}

async function* lateAsync() {
  yield "partial ";
  await sleep(100);
  throw new Error("late-exception-app: the async body fails after its first chunk");
}

function* slow() {
  yield "first\n";
  const until = Date.now() + 600;
  while (Date.now() < until) {
    // the thread is busy: nothing else runs in this worker
  }
  yield "second\n";
}

export function application(environ, startResponse) {
  const query = new URLSearchParams(environ.QUERY_STRING);
  const route = environ.PATH_INFO.slice(environ.PATH_INFO.lastIndexOf("/") + 1);
  switch (route) {
    case "late":
      startResponse("200 OK", headers(query));
      return query.get("kind") === "sync" ? lateSync() : lateAsync();
    case "slow":
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return slow();
    case "hello":
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return ["hello ", "world\n"];
    default:
      startResponse("404 Not Found", [["Content-Type", "text/plain"]]);
      return [`no route ${environ.PATH_INFO}\n`];
  }
}

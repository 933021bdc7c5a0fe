// The benchmark application for every tsgi contender (issue 4): /hello, /large (100 KiB),
// /upload (reads tsgi.input fully, answers the byte count), /stream?mib=N (64 KiB chunks from
// an async generator, with Content-Length). Routes on the last path segment, so the same file
// answers under any nginx `location` prefix; node-http.mjs, node-fastcgi.mjs and wsgi_app.py
// implement the same routes the same way.

const HELLO = Buffer.from("Hello, world!\n");
const LARGE = Buffer.alloc(100 * 1024, 0x61);
const CHUNK = Buffer.alloc(64 * 1024, 0x62);

function route(path) {
  return path.slice(path.lastIndexOf("/"));
}

export const application = async (environ, startResponse) => {
  const r = route(environ.PATH_INFO);
  if (r === "/hello") {
    startResponse("200 OK", [["Content-Type", "text/plain"], ["Content-Length", "14"]]);
    return [HELLO];
  }
  if (r === "/large") {
    startResponse("200 OK", [["Content-Type", "application/octet-stream"], ["Content-Length", "102400"]]);
    return [LARGE];
  }
  if (r === "/upload") {
    let size = 0;
    for await (const chunk of environ["tsgi.input"]) size += chunk.length;
    const body = `{"size":${size}}\n`;
    startResponse("200 OK", [["Content-Type", "application/json"], ["Content-Length", String(body.length)]]);
    return [body];
  }
  if (r === "/stream") {
    const mib = Number(/(?:^|&)mib=(\d+)/.exec(environ.QUERY_STRING ?? "")?.[1] ?? "1");
    startResponse("200 OK", [["Content-Type", "application/octet-stream"], ["Content-Length", String(mib * 1024 * 1024)]]);
    return (async function* () {
      for (let i = 0; i < mib * 16; i++) yield CHUNK;
    })();
  }
  startResponse("404 Not Found", [["Content-Type", "text/plain"], ["Content-Length", "10"]]);
  return ["Not Found\n"];
};

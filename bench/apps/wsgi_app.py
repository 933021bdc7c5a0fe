# The uWSGI reference (C core, python3 plugin): the benchmark routes as a WSGI application,
# the same logic as tsgi-app.mjs: /hello, /large (100 KiB), /upload (reads wsgi.input fully),
# /stream?mib=N (64 KiB chunks from a generator, with Content-Length), routed on the last
# path segment.
import re

HELLO = b"Hello, world!\n"
LARGE = b"a" * (100 * 1024)
CHUNK = b"b" * (64 * 1024)
MIB = re.compile(r"(?:^|&)mib=(\d+)")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    r = path[path.rfind("/"):]
    if r == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
        return [HELLO]
    if r == "/large":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "102400")])
        return [LARGE]
    if r == "/upload":
        size = 0
        stream = environ["wsgi.input"]
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            size += len(chunk)
        body = b'{"size":%d}\n' % size
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if r == "/stream":
        m = MIB.search(environ.get("QUERY_STRING", ""))
        mib = int(m.group(1)) if m else 1
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(mib * 1024 * 1024))])
        return (CHUNK for _ in range(mib * 16))
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"Not Found\n"]

-- W3: POST a 1 MiB body on every request. The body is built once here (wrk sends the same
-- request bytes each time; it adds Content-Length itself).
wrk.method = "POST"
wrk.body = string.rep("x", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

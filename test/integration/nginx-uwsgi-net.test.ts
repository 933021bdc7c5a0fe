// The same nginx uwsgi_pass setup as nginx.test.ts with TSGI_NATIVE_IO=0: uwsgi served by the
// net.Socket server (src/protocol/uwsgi.ts) instead of the native listener, so both ways of
// owning a uwsgi connection answer the same requests the same way.
import { defineFrontSuite } from "./front-suite.ts";
import { startNginxFronts } from "./fronts.ts";

defineFrontSuite({
  fronts: ["nginx-uwsgi", "tsgi-http"],
  listen: [{ proto: "fastcgi" }, { proto: "uwsgi", unix: true, key: "uwsgiUnix" }, { proto: "http" }],
  start: startNginxFronts,
  concurrencyLimit: { "nginx-uwsgi": 100 },
  env: { TSGI_NATIVE_IO: "0" },
});

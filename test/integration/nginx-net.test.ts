// The same nginx setup as nginx.test.ts with TSGI_NATIVE_IO=0: FastCGI and uwsgi served by
// the net.Socket servers (src/protocol/fastcgi.ts, uwsgi.ts) instead of the native listeners,
// so both ways of owning a connection answer the same requests the same way.
import { defineFrontSuite } from "./front-suite.ts";
import { startNginxFronts } from "./fronts.ts";

defineFrontSuite({
  fronts: ["nginx-fastcgi", "nginx-fastcgi-keepconn", "nginx-uwsgi", "tsgi-http"],
  listen: [{ proto: "fastcgi" }, { proto: "uwsgi", unix: true, key: "uwsgiUnix" }, { proto: "http" }],
  start: startNginxFronts,
  concurrencyLimit: { "nginx-fastcgi": 100, "nginx-fastcgi-keepconn": 100, "nginx-uwsgi": 100 },
  env: { TSGI_NATIVE_IO: "0" },
});

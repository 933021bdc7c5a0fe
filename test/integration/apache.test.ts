// Apache httpd 2.4 in front of one `tsgi serve` process, from conf-examples/apache/:
// proxy-fcgi.conf (mod_proxy_fcgi, enablereuse=on) and proxy-uwsgi.conf (mod_proxy_uwsgi),
// each given the same requests as tsgi's own HTTP listener, the baseline (test names:
// apache-proxy-fcgi, apache-proxy-uwsgi, tsgi-http). The requests and the quirks are in
// front-suite.ts and fronts.ts.
import { defineFrontSuite } from "./front-suite.ts";
import { startApacheFronts } from "./fronts.ts";

defineFrontSuite({
  fronts: ["apache-proxy-fcgi", "apache-proxy-uwsgi", "tsgi-http"],
  listen: [{ proto: "fastcgi" }, { proto: "uwsgi" }, { proto: "http" }],
  start: startApacheFronts,
});

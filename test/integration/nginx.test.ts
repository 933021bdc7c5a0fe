// nginx 1.22 in front of one `tsgi serve` process, from conf-examples/nginx/: fastcgi.conf
// (fastcgi_pass, a connection per request), fastcgi-keepconn.conf (upstream keepalive and
// FCGI_KEEP_CONN) and uwsgi.conf (uwsgi_pass over a unix socket), each given the same requests
// as tsgi's own HTTP listener, the baseline (test names: nginx-fastcgi, nginx-fastcgi-keepconn,
// nginx-uwsgi, tsgi-http). The requests and the quirks are in front-suite.ts and fronts.ts.
import { defineFrontSuite } from "./front-suite.ts";
import { NGINX_SUITE } from "./fronts.ts";

defineFrontSuite(NGINX_SUITE);

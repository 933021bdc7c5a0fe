// The same nginx setup as nginx.test.ts with TSGI_NATIVE_IO=0: FastCGI and uwsgi served by
// the net.Socket servers (src/protocol/fastcgi.ts, uwsgi.ts) instead of the native listeners,
// so both ways of owning a connection answer the same requests the same way.
import { defineFrontSuite } from "./front-suite.ts";
import { NGINX_SUITE } from "./fronts.ts";

defineFrontSuite({ ...NGINX_SUITE, env: { TSGI_NATIVE_IO: "0" } });

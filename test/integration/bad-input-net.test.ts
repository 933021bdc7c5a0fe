// The raw-socket cases of bad-input-suite.ts against the node:net FastCGI and uwsgi servers
// (TSGI_NATIVE_IO=0), so both ways of owning a connection refuse bad input the same way.
import { defineBadInputSuite } from "./bad-input-suite.ts";

defineBadInputSuite({ TSGI_NATIVE_IO: "0" });

// Malformed and management input on raw sockets, against the native FastCGI and uwsgi
// listeners (the default): the cases are in bad-input-suite.ts.
import { defineBadInputSuite } from "./bad-input-suite.ts";

defineBadInputSuite();

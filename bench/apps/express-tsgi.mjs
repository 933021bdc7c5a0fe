// W6 under tsgi: the Express app of express-app.mjs as a TSGI application (fromNodeHandler),
// imported from "tsgi" as a site does (the built dist/index.mjs: plain JavaScript, no tsx in
// the worker, as for Express on node:http).
import { fromNodeHandler } from "tsgi";
import { app } from "./express-app.mjs";

export const application = fromNodeHandler(app);

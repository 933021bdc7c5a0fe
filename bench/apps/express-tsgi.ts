// W6 under tsgi: the Express app of express-app.mjs as a TSGI application (fromNodeHandler).
import { fromNodeHandler } from "../../src/index.ts";
import { app } from "./express-app.mjs";

export const application = fromNodeHandler(app);

// Types of express-app.mjs (plain JavaScript: the node:http baseline runs it without a loader).
import type { Express } from "express";
export declare const app: Express;

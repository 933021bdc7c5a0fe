// Writes docs/settings.md from the settings tables (`npm run docs:settings`);
// test/unit/settings-reference.test.ts fails when the file is stale.
import { writeFileSync } from "node:fs";
import { settingsReference } from "../src/daemon/settings/reference.ts";

writeFileSync(new URL("../docs/settings.md", import.meta.url), settingsReference());

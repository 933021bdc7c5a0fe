// A copy of a file of conf-examples/ for a test: the file's own text with only the given
// patterns replaced (ports, log and pid paths, addresses), each of which must occur in it, so
// that the example drifting away from what the test rewrites fails loudly instead of testing
// something else.

import { readFileSync } from "node:fs";
import { join } from "node:path";

export const CONF_EXAMPLES = join(import.meta.dirname, "..", "..", "conf-examples");

/** The text of `file` with each pattern replaced everywhere; throws when a pattern does not occur. */
export function rewrite(file: string, replacements: [RegExp, string][]): string {
  let text = readFileSync(file, "utf8");
  for (const [pattern, by] of replacements) {
    if (!pattern.test(text)) throw new Error(`${file} no longer holds ${pattern}: the test's rewrite is out of date`);
    text = text.replace(new RegExp(pattern.source, `${pattern.flags.replace("g", "")}g`), by);
  }
  return text;
}

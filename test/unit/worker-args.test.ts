// The node flags a worker is forked with (src/daemon/process-group.ts): the master's own, plus
// the young-generation cap unless NODE_OPTIONS or the master's flags already choose one.
import { describe, expect, test } from "vitest";
import { workerExecArgv } from "../../src/daemon/process-group.ts";

describe("workerExecArgv", () => {
  test("adds --max-semi-space-size=4 to the master's flags", () => {
    const args = workerExecArgv({});
    expect(args.slice(0, process.execArgv.length)).toEqual(process.execArgv);
    expect(args.at(-1)).toBe("--max-semi-space-size=4");
  });

  test("leaves the size to NODE_OPTIONS when it sets one", () => {
    expect(workerExecArgv({ NODE_OPTIONS: "--enable-source-maps --max-semi-space-size=16" })).toEqual(process.execArgv);
  });

  test("other NODE_OPTIONS keep the cap", () => {
    expect(workerExecArgv({ NODE_OPTIONS: "--max-old-space-size=512" }).at(-1)).toBe("--max-semi-space-size=4");
  });
});

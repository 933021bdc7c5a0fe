// Issue 8, point 7: `npm install` (the clone's own, another folder's, `npx tsgi`'s) rebuilt
// the addon every time, deleting build/Release first. scripts/install.mjs builds only when
// build/Release/tsgi.node is missing or its stamp (binding.gyp, native/, node-addon-api, Node's
// ABI) changed, with `node-gyp configure` + `build`. In the checkout the addon npm built is
// found up to date; in a copy of the package a stand-in for node-gyp (npm_config_node_gyp,
// the variable npm names its own with) records whether the script would have compiled.
import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

// Logs each call (its arguments, whether an addon was there) and, for `build`, leaves a
// tsgi.node as make would; fails the step named by FAKE_GYP_FAIL.
const FAKE_NODE_GYP = `
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
const args = process.argv.slice(2);
appendFileSync(process.env.FAKE_GYP_LOG, JSON.stringify({ args, addon: existsSync("build/Release/tsgi.node") }) + "\\n");
if (process.env.FAKE_GYP_FAIL === args[0]) process.exit(2);
if (args[0] === "build") {
  mkdirSync("build/Release", { recursive: true });
  writeFileSync("build/Release/tsgi.node", "built by the stand-in");
}
`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  gyp: { args: string[]; addon: boolean }[];
}

function install(root: string, gyp: string, args: string[] = [], env: Record<string, string> = {}): Run {
  const log = join(dirname(gyp), `calls-${Date.now()}-${Math.random()}.log`);
  const started = performance.now();
  const run = spawnSync(process.execPath, [join(root, "scripts", "install.mjs"), ...args], {
    encoding: "utf8",
    env: { ...process.env, npm_config_node_gyp: gyp, FAKE_GYP_LOG: log, ...env },
  });
  const ms = performance.now() - started;
  const calls = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Run["gyp"][number]) : [];
  return { status: run.status, stdout: run.stdout, stderr: run.stderr, ms, gyp: calls };
}

let scratch: string;
let gyp: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "tsgi-install-"));
  gyp = join(scratch, "node-gyp.mjs");
  writeFileSync(gyp, FAKE_NODE_GYP);
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test("in the checkout, the addon npm built is up to date: no node-gyp, under 2 s", () => {
  expect(existsSync(join(ROOT, "build", "Release", "tsgi.node.stamp")), "no stamp: run npm run build:native").toBe(true);
  const run = install(ROOT, gyp);
  expect(run.gyp, "the stamp does not match the sources: run npm run build:native").toEqual([]);
  expect(run.status).toBe(0);
  expect(run.stdout).toContain("build/Release/tsgi.node is up to date");
  expect(run.ms).toBeLessThan(2000);
});

describe("in a copy of the package", () => {
  let pkg: string;
  const addon = () => join(pkg, "build", "Release", "tsgi.node");
  const steps = (run: Run) => run.gyp.map((c) => c.args[0]);

  beforeAll(() => {
    pkg = join(scratch, "tsgi");
    for (const part of ["package.json", "binding.gyp", "native", join("scripts", "install.mjs"), join("scripts", "native-stamp.mjs")]) {
      cpSync(join(ROOT, part), join(pkg, part), { recursive: true });
    }
    symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
  });

  test("the first install builds with configure then build; the second calls no node-gyp", () => {
    const first = install(pkg, gyp);
    expect(first.status).toBe(0);
    expect(steps(first)).toEqual(["configure", "build"]);
    expect(existsSync(addon())).toBe(true);

    const second = install(pkg, gyp);
    expect(second.gyp).toEqual([]);
    expect(second.status).toBe(0);
    expect(second.stdout).toContain("up to date");
    expect(second.ms).toBeLessThan(2000);
  });

  test("a source touched without a change builds nothing; a changed one builds", () => {
    const codec = join(pkg, "native", "uwsgi", "codec.cc");
    utimesSync(codec, new Date(), new Date());
    expect(install(pkg, gyp).gyp).toEqual([]);

    appendFileSync(codec, "// changed\n");
    expect(steps(install(pkg, gyp))).toEqual(["configure", "build"]);
    expect(install(pkg, gyp).gyp).toEqual([]);
  });

  test("a header or binding.gyp changed, or the addon gone, builds", () => {
    appendFileSync(join(pkg, "native", "status.h"), "// changed\n");
    expect(steps(install(pkg, gyp))).toEqual(["configure", "build"]);

    const gypFile = join(pkg, "binding.gyp");
    writeFileSync(gypFile, readFileSync(gypFile, "utf8").replace("-Wextra", "-Wextra\", \"-Wshadow"));
    expect(steps(install(pkg, gyp))).toEqual(["configure", "build"]);

    rmSync(addon());
    expect(steps(install(pkg, gyp))).toEqual(["configure", "build"]);
  });

  test("a failed build keeps the addon there was and is tried again by the next install", () => {
    appendFileSync(join(pkg, "native", "fastcgi", "codec.cc"), "// changed\n");
    const failed = install(pkg, gyp, [], { FAKE_GYP_FAIL: "build" });
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toContain("node-gyp build failed");
    expect(failed.gyp.every((c) => c.addon)).toBe(true);
    expect(readFileSync(addon(), "utf8")).toBe("built by the stand-in");
    expect(steps(install(pkg, gyp))).toEqual(["configure", "build"]);
  });

  test("--force (npm run build:native) builds every object again and keeps tsgi.node until then", () => {
    const obj = join(pkg, "build", "Release", "obj.target", "tsgi", "codec.o");
    mkdirSync(dirname(obj), { recursive: true });
    writeFileSync(obj, "an object of the last build");
    const run = install(pkg, gyp, ["--force"]);
    expect(steps(run)).toEqual(["configure", "build"]);
    expect(run.gyp.every((c) => c.addon)).toBe(true);
    expect(existsSync(obj)).toBe(false);
  });

  test("node-gyp runs offline: npm's nodedir is left to npm, else the running Node's own headers", () => {
    const prefix = dirname(dirname(realpathSync(process.execPath)));
    const headers = existsSync(join(prefix, "include", "node", "node_api.h"));
    const own = install(pkg, gyp, ["--force"], { npm_config_nodedir: "" });
    expect(own.gyp.map((c) => c.args.includes(`--nodedir=${prefix}`))).toEqual([headers, headers]);
    const npms = install(pkg, gyp, ["--force"], { npm_config_nodedir: prefix });
    expect(npms.gyp.map((c) => c.args.some((a) => a.startsWith("--nodedir")))).toEqual([false, false]);
  });

  test("the stamp covers binding.gyp, every C/C++ file under native/, node-addon-api and Node's ABI", () => {
    const run = spawnSync(process.execPath, [join(pkg, "scripts", "install.mjs"), "--inputs"], { encoding: "utf8" });
    const inputs = JSON.parse(run.stdout) as { node: Record<string, string>; "node-addon-api": string; files: Record<string, string> };
    expect(inputs.node).toEqual({
      modules: process.versions.modules,
      napi: process.versions.napi,
      platform: process.platform,
      arch: process.arch,
    });
    expect(inputs["node-addon-api"]).toMatch(/^\d+\.\d+\.\d+/);
    expect(Object.keys(inputs.files)).toEqual(expect.arrayContaining(["binding.gyp", "native/binding/addon.cc", "native/status.h", "native/binding/stream_server.h"]));
    expect(Object.keys(inputs.files).filter((f) => !/\.(cc|h)$/.test(f) && f !== "binding.gyp")).toEqual([]);
  });
});

// Both native builds compile the same sources, and every source under native/ is in both
// (llhttp's rule): binding.gyp for `npm install`, native/CMakeLists.txt for cmake-js.
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..", "..");

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".cc"))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((p) => !p.startsWith(join("native", "fuzz")))
    .sort();
}

describe("native build sources", () => {
  const gyp = JSON.parse(readFileSync(join(root, "binding.gyp"), "utf8")) as {
    targets: { sources: string[] }[];
  };
  const gypSources = gyp.targets[0]!.sources.slice().sort();
  const cmake = readFileSync(join(root, "native", "CMakeLists.txt"), "utf8");
  const cmakeList = /set\(TSGI_SOURCES([^)]*)\)/.exec(cmake)?.[1] ?? "";
  const cmakeSources = cmakeList
    .split(/\s+/)
    .filter(Boolean)
    .map((p) => join("native", p))
    .sort();

  it("binding.gyp lists every .cc under native/ except the fuzzers", () => {
    expect(gypSources).toEqual(sourcesUnder(join(root, "native")));
  });

  it("native/CMakeLists.txt lists the same sources as binding.gyp", () => {
    expect(cmakeSources).toEqual(gypSources);
  });
});

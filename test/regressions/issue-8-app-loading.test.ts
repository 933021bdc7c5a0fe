// Issue 8, point 1: an application module of every kind (.ts, .mts, .cts, .js, .mjs, .cjs)
// loads in a folder with no package.json, in a CommonJS package and in an ESM package, written
// the way a user there would write it: TypeScript with `import type` and ESM syntax
// everywhere, CommonJS syntax (`require`, `module.exports`, `exports.application`) where the
// folder or the extension makes the module CommonJS. Each case is a real `tsgi serve` whose
// worker runs in that folder (`--cwd`), answering one HTTP request with its file name. Before the fix a `.ts`
// outside an ESM package failed in Node's CommonJS loader (ERR_REQUIRE_CYCLE_MODULE). The two
// example modules of docs/interface.md are served the same way, as the page shows them.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startTsgi } from "../support/tsgi-process.ts";

type Folder = "no package.json" | "commonjs package" | "esm package";
type Syntax = "esm" | "module.exports" | "exports.application";

const PACKAGE_JSON: Record<Folder, string | null> = {
  "no package.json": null,
  "commonjs package": JSON.stringify({ name: "site", type: "commonjs" }),
  "esm package": JSON.stringify({ name: "site", type: "module" }),
};

// Each file answers with its own name, the path and a builtin's work (node:crypto imported or
// required); the TypeScript ones use a type-only import, annotations and an `as`.
function source(file: string, syntax: Syntax): string {
  const ts = /\.(m|c)?ts$/.test(file);
  const types = ts
    ? `import type { OutgoingHttpHeaders } from "node:http";\ntype StartResponse = (status: string, headers: [string, string][]) => unknown;\n`
    : "";
  const params = ts ? "environ: Record<string, unknown>, startResponse: StartResponse" : "environ, startResponse";
  const body = `  const type${ts ? ": OutgoingHttpHeaders[string]" : ""} = "text/plain";
  startResponse("200 OK", [["Content-Type", type${ts ? " as string" : ""}]]);
  return [\`${file} \${environ.PATH_INFO} \${createHash("sha256").digest("hex").slice(0, 8)}\`];`;
  if (syntax === "esm") return `${types}import { createHash } from "node:crypto";\nexport function application(${params}) {\n${body}\n}\n`;
  const exporting =
    syntax === "exports.application"
      ? `exports.application = function (${params}) {\n${body}\n};\n`
      : `function application(${params}) {\n${body}\n}\nmodule.exports = { application };\n`;
  return `${types}const { createHash } = require("node:crypto");\n${exporting}`;
}

interface Case {
  folder: Folder;
  file: string;
  syntax: Syntax;
}

// .ts and .js follow the folder (a .js in a folder with no package.json may be either: Node
// detects ESM syntax); .mts/.mjs are ESM and .cts/.cjs CommonJS wherever they are. No two
// names differ only in the extension: tsgi run from src/ imports the application from a .ts
// file, for which tsx resolves x.mjs to a neighbouring x.mts (and x.js to x.ts).
const CASES: Case[] = (Object.keys(PACKAGE_JSON) as Folder[]).flatMap((folder) => {
  const cases: Case[] = [
    { folder, file: "ts-esm.ts", syntax: "esm" },
    { folder, file: "mts.mts", syntax: "esm" },
    { folder, file: "cts.cts", syntax: "exports.application" },
    { folder, file: "mjs.mjs", syntax: "esm" },
    { folder, file: "cjs.cjs", syntax: "module.exports" },
  ];
  if (folder !== "esm package") {
    cases.push({ folder, file: "ts-cjs.ts", syntax: "module.exports" }, { folder, file: "js-cjs.js", syntax: "exports.application" });
  }
  if (folder !== "commonjs package") cases.push({ folder, file: "js-esm.js", syntax: "esm" });
  return cases;
});

const dirs = new Map<Folder, string>();

beforeAll(() => {
  for (const [folder, pkg] of Object.entries(PACKAGE_JSON) as [Folder, string | null][]) {
    const dir = mkdtempSync(join(tmpdir(), "tsgi-issue-8-"));
    if (pkg) writeFileSync(join(dir, "package.json"), pkg);
    for (const c of CASES.filter((k) => k.folder === folder)) writeFileSync(join(dir, c.file), source(c.file, c.syntax));
    dirs.set(folder, dir);
  }
});

afterAll(() => {
  for (const dir of dirs.values()) rmSync(dir, { recursive: true, force: true });
});

test.concurrent.each(CASES.map((c) => [`${c.file} (${c.syntax} syntax) in a folder with ${c.folder}`, c] as const))(
  "%s loads and answers",
  async (_, c) => {
    const dir = dirs.get(c.folder)!;
    const tsgi = await startTsgi({ app: join(dir, c.file), listen: [{ proto: "http" }], args: ["--cwd", dir] });
    try {
      const { host, port } = tsgi.tcp("http");
      const response = await fetch(`http://${host}:${port}/hello`);
      expect(await response.text()).toBe(`${c.file} /hello e3b0c442`);
      expect(response.status).toBe(200);
    } finally {
      await tsgi.stop();
    }
  },
);

// The fenced blocks of docs/interface.md that open with `// mysite/FILE`.
function docExamples(): Map<string, string> {
  const page = readFileSync(join(import.meta.dirname, "..", "..", "docs", "interface.md"), "utf8");
  return new Map([...page.matchAll(/```\w+\n\/\/ mysite\/(\S+)\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]));
}

test.concurrent.each([
  ["tsgi.ts", { method: "GET" }, "Hello from /hello\n"],
  ["tsgi.cjs", { method: "POST", body: "ping" }, "ping"],
] as const)("docs/interface.md's %s, in a folder with no package.json, answers as shown", async (file, init, expected) => {
  const code = docExamples().get(file);
  expect(code, `docs/interface.md has no example // mysite/${file}`).toBeDefined();
  const dir = mkdtempSync(join(tmpdir(), "tsgi-issue-8-doc-"));
  writeFileSync(join(dir, file), code!);
  const tsgi = await startTsgi({ app: join(dir, file), listen: [{ proto: "http" }], args: ["--cwd", dir] });
  try {
    const { host, port } = tsgi.tcp("http");
    const response = await fetch(`http://${host}:${port}/hello`, init);
    expect(await response.text()).toBe(expected);
  } finally {
    await tsgi.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

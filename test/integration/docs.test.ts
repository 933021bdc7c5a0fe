// Issue 10, part 10: the deployment guide (docs/deploy.md) cannot rot. Each fenced block is
// preceded by `<!-- test: KIND -->` and checked by the tool a user would feed it to:
//   ts       every ts block is a file (its first line names it: `// mysite/app.ts`), all
//            written into one project and type-checked with tsc against the package's face
//   nginx    inside a minimal nginx.conf's http block, through `nginx -t`
//   apache   after a minimal httpd.conf that loads the modules the guide names, `apache2 -t`
//   toml     `tsgi check`, with only its absolute paths moved under a temp folder (created)
//   command  each line's `tsgi SUBCOMMAND --flag …`: the subcommand exists and has every flag
// A block without a marker, or with a kind not above, fails the test.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parse } from "smol-toml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort } from "../support/front-servers.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "tsgi.js");
const GUIDE = join(ROOT, "docs", "deploy.md");
const KINDS = ["ts", "nginx", "apache", "toml", "command"] as const;
type Kind = (typeof KINDS)[number];

interface Block {
  kind: string;
  line: number;
  text: string;
}

/** The fenced blocks of a markdown file, each with the `<!-- test: KIND -->` marker above it ("" when none). */
function blocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```\w*/.test(lines[i]!)) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let j = start - 1;
    while (j >= 0 && lines[j]!.trim() === "") j--;
    const marker = j >= 0 ? /^<!-- test: (\S+) -->$/.exec(lines[j]!.trim()) : null;
    out.push({ kind: marker?.[1] ?? "", line: start + 1, text: `${body.join("\n")}\n` });
  }
  return out;
}

const guide = blocks(readFileSync(GUIDE, "utf8"));
const of = (kind: Kind) => guide.filter((b) => b.kind === kind);
let scratch: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "tsgi-docs-"));
});
const made: string[] = [];
afterAll(() => {
  for (const dir of [scratch, ...made]) rmSync(dir, { recursive: true, force: true });
});

test("every block of docs/deploy.md says how it is checked", () => {
  expect(guide.length).toBeGreaterThan(10);
  const unchecked = guide.filter((b) => !(KINDS as readonly string[]).includes(b.kind)).map((b) => `line ${b.line}: ${b.kind || "no <!-- test: KIND --> marker"}`);
  expect(unchecked).toEqual([]);
});

test("the TypeScript blocks type-check against the package, as one project", () => {
  // Inside the checkout's node_modules, so that the blocks' other imports (express) resolve
  // as they would in a project that installed them.
  mkdirSync(join(ROOT, "node_modules", ".cache"), { recursive: true });
  const dir = mkdtempSync(join(ROOT, "node_modules", ".cache", "tsgi-docs-ts-"));
  made.push(dir);
  const files: string[] = [];
  for (const b of of("ts")) {
    const name = /^\/\/ (\S+\.ts)\n/.exec(b.text)?.[1];
    expect(name, `ts block at line ${b.line} names its file on its first line`).toBeTruthy();
    mkdirSync(dirname(join(dir, name!)), { recursive: true });
    writeFileSync(join(dir, name!), b.text);
    files.push(name!);
  }
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        allowImportingTsExtensions: true,
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules", "@types")],
        paths: { tsgi: [join(ROOT, "src", "index.ts")] },
      },
      files,
    }),
  );
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const tsc = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", dir], { encoding: "utf8" });
  expect(tsc.stdout + tsc.stderr).toBe("");
  expect(tsc.status).toBe(0);
}, 60_000);

describe("the nginx blocks pass nginx -t", () => {
  test.each(of("nginx").map((b) => [b.line, b] as const))("block at line %i", (line, b) => {
    const dir = join(scratch, `nginx-${line}`);
    mkdirSync(join(dir, "logs"), { recursive: true });
    const conf = join(dir, "nginx.conf");
    writeFileSync(conf, `pid ${dir}/nginx.pid;\nerror_log ${dir}/logs/error.log;\nevents {}\nhttp {\naccess_log off;\n${b.text}}\n`);
    const r = spawnSync("nginx", ["-t", "-q", "-p", dir, "-c", conf], { encoding: "utf8" });
    expect(r.stderr, b.text).toBe("");
    expect(r.status).toBe(0);
  });
});

describe("the Apache blocks pass apache2 -t", () => {
  const modules = ["mpm_event", "authz_core", "proxy", "proxy_fcgi", "proxy_uwsgi", "authnz_fcgi", "auth_basic", "authn_core", "authz_user", "setenvif"];
  test.each(of("apache").map((b) => [b.line, b] as const))("block at line %i", async (line, b) => {
    const dir = join(scratch, `apache-${line}`);
    mkdirSync(join(dir, "run"), { recursive: true });
    const conf = join(dir, "httpd.conf");
    writeFileSync(
      conf,
      [
        `ServerRoot "${dir}"`,
        `PidFile "${dir}/run/httpd.pid"`,
        `DefaultRuntimeDir "${dir}/run"`,
        `ErrorLog "${dir}/error.log"`,
        "ServerName 127.0.0.1",
        `Listen 127.0.0.1:${await freePort()}`,
        ...modules.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`),
        b.text,
      ].join("\n"),
    );
    const r = spawnSync("apache2", ["-t", "-f", conf], { encoding: "utf8" });
    expect(`${r.stdout}${r.stderr}`, b.text).toMatch(/Syntax OK/);
    expect(r.status).toBe(0);
  });
});

describe("the tsgi.toml blocks pass tsgi check", () => {
  test.each(of("toml").map((b) => [b.line, b] as const))("block at line %i", (line, b) => {
    const dir = join(scratch, `toml-${line}`);
    // Absolute paths (/srv/…, /run/…, /var/…, /etc/…) move under dir; the folders are made.
    const text = b.text.replace(/(["=:]\s*)\/(srv|run|var|etc)\//g, `$1${dir}/$2/`);
    for (const m of text.matchAll(new RegExp(`(${dir}/[^"]+)"`, "g"))) {
      const path = m[1]!;
      mkdirSync(/\.\w+$/.test(path) ? dirname(path) : path, { recursive: true });
    }
    // A site's settings module is looked for by tsgi check: a stub where the site names one.
    const parsed = parse(text) as { site?: Record<string, { cwd?: string; settings?: string }> };
    for (const site of Object.values(parsed.site ?? {})) {
      if (!site.settings) continue;
      const module = join(site.cwd ?? dir, `${site.settings}.ts`);
      mkdirSync(dirname(module), { recursive: true });
      writeFileSync(module, 'export const TSGI_APPLICATION = "app.ts";\n');
    }
    chmodSync(scratch, 0o755);
    const file = join(dir, "tsgi.toml");
    writeFileSync(file, text);
    const r = spawnSync(process.execPath, [BIN, "check", "-c", file], { encoding: "utf8" });
    expect(r.stderr, text).toBe("");
    expect(r.status).toBe(0);
  });
});

describe("the commands exist with the flags the guide gives them", () => {
  const helps = new Map<string, string>();
  const help = (sub: string) => {
    if (!helps.has(sub)) {
      const r = spawnSync(process.execPath, [BIN, sub, "--help"], { encoding: "utf8" });
      helps.set(sub, r.status === 0 && r.stdout.startsWith(`Usage: tsgi ${sub} `) ? r.stdout : "");
    }
    return helps.get(sub)!;
  };
  const commands = of("command").flatMap((b) =>
    b.text
      .split("\n")
      .flatMap((l) => l.split("&&"))
      .map((l) => l.replace(/#.*$/, "").replace(/>.*$/, "").trim())
      .filter((l) => /^(npx )?tsgi /.test(l))
      .map((l) => [l, b.line] as const),
  );
  test("there are some", () => expect(commands.length).toBeGreaterThan(5));
  test.each(commands)("%s (line %i)", (command) => {
    const words = command.replace(/^npx /, "").split(/\s+/);
    const sub = words[1]!;
    const text = help(sub);
    expect(text, `tsgi ${sub} is no subcommand`).not.toBe("");
    for (const flag of words.filter((w) => w.startsWith("--"))) expect(text, `tsgi ${sub} has no ${flag}`).toContain(flag.replace(/=.*$/, ""));
  });
});

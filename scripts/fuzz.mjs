// `npm run fuzz [-- SECONDS]`: builds each libFuzzer harness of native/fuzz/ with clang++
// (ASan + UBSan) into build-fuzz/, seeds a scratch corpus from the committed seeds (and the
// recorded fixtures of test/codec/fixtures/), runs each harness for SECONDS (default 20) and
// prints one summary line per harness. Exits 1 when a harness crashed, naming the crash file.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "build-fuzz");
const fixtures = join(root, "test", "codec", "fixtures");

// Each harness: its source, the codec it links, and the choice bytes put in front of a
// recorded fixture (the input layout is in each harness's opening comment).
const harnesses = [
  {
    name: "fastcgi",
    sources: ["native/fuzz/fastcgi_fuzz.cc", "native/fastcgi/codec.cc"],
    // default limits, release every id on STDIN_END (what a server does), seed 0
    fixturePrefix: Buffer.from([0x10, 0, 0xff, 0xff, 0xff, 0xff, 0, 0]),
  },
  {
    name: "uwsgi",
    sources: ["native/fuzz/uwsgi_fuzz.cc", "native/uwsgi/codec.cc"],
    fixturePrefix: Buffer.from([0x08, 0, 0, 0]),
  },
];

function usage(message) {
  console.error(`${message}\nusage: npm run fuzz [-- SECONDS]   (default 20 seconds per harness)`);
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length > 1) usage("too many arguments");
const seconds = args.length ? Number(args[0]) : 20;
if (!Number.isInteger(seconds) || seconds < 1) usage(`SECONDS must be a positive integer, got ${JSON.stringify(args[0])}`);

function findClang() {
  for (const cc of ["clang++", "clang++-14", "clang++-19"]) {
    if (spawnSync(cc, ["--version"], { stdio: "ignore" }).status === 0) return cc;
  }
  console.error("fuzz: clang++ not found (tried clang++, clang++-14, clang++-19).\n" +
    "Install it with: apt-get install clang libclang-rt-14-dev");
  process.exit(2);
}

// The fixtures of one protocol: from manifest.json when it exists, else by file name.
function fixtureFiles(protocol) {
  if (!existsSync(fixtures)) return [];
  const manifest = join(fixtures, "manifest.json");
  if (existsSync(manifest)) {
    const list = JSON.parse(readFileSync(manifest, "utf8")).fixtures ?? [];
    return list.filter((f) => f.protocol === protocol).map((f) => join(fixtures, f.file)).filter(existsSync);
  }
  return readdirSync(fixtures)
    .filter((f) => f.endsWith(".bin") && f.includes("uwsgi") === (protocol === "uwsgi"))
    .map((f) => join(fixtures, f));
}

// libFuzzer's -print_final_stats=1 lines, e.g. `stat::number_of_executed_units: 123`.
function finalStats(text) {
  const stats = {};
  for (const m of text.matchAll(/^stat::(\w+):\s+(\d+)/gm)) stats[m[1]] = Number(m[2]);
  return stats;
}

const clang = findClang();
mkdirSync(out, { recursive: true });
let failed = false;
const lines = [];

for (const h of harnesses) {
  const binary = join(out, `${h.name}_fuzz`);
  const build = spawnSync(
    clang,
    ["-g", "-O1", "-std=c++17", "-Wall", "-Wextra", "-fsanitize=fuzzer,address,undefined",
      "-fno-sanitize-recover=undefined", ...h.sources, "-o", binary],
    { cwd: root, stdio: "inherit" },
  );
  if (build.status !== 0) {
    const hint = build.error ? "" : "\n(a link error naming libclang_rt.fuzzer means: apt-get install libclang-rt-14-dev)";
    console.error(`fuzz: building ${h.name} failed${hint}`);
    process.exit(1);
  }

  // The scratch corpus: libFuzzer writes the inputs it finds here; it is never committed.
  const corpus = join(out, `corpus-${h.name}`);
  mkdirSync(corpus, { recursive: true });
  const seeds = join(root, "native", "fuzz", "corpus", h.name);
  for (const f of existsSync(seeds) ? readdirSync(seeds) : []) copyFileSync(join(seeds, f), join(corpus, `seed-${f}`));
  for (const f of fixtureFiles(h.name)) {
    const name = `fixture-${relative(fixtures, f).replaceAll("/", "_")}`;
    writeFileSync(join(corpus, name), Buffer.concat([h.fixturePrefix, readFileSync(f)]));
  }

  const artifactPrefix = join(out, `crash-${h.name}-`);
  console.log(`fuzz: ${h.name} for ${seconds} s (corpus ${relative(root, corpus)})`);
  const run = spawnSync(
    binary,
    [`-max_total_time=${seconds}`, "-print_final_stats=1", `-artifact_prefix=${artifactPrefix}`, corpus],
    {
      cwd: root,
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, ASAN_OPTIONS: `detect_leaks=1:${process.env.ASAN_OPTIONS ?? ""}`, UBSAN_OPTIONS: "print_stacktrace=1" },
    },
  );
  const log = `${run.stdout ?? ""}${run.stderr ?? ""}`;
  writeFileSync(join(out, `${h.name}.log`), log);
  const stats = finalStats(log);
  const execs = stats.number_of_executed_units ?? 0;
  const corpusSize = readdirSync(corpus).length;
  const crash = /Test unit written to (\S+)/.exec(log)?.[1];
  lines.push(
    `${h.name.padEnd(8)} ${String(seconds).padStart(5)} s  ${String(execs).padStart(10)} execs  ` +
      `${String(stats.average_exec_per_sec ?? 0).padStart(7)} exec/s  corpus ${corpusSize}` +
      (run.status === 0 ? "" : `  CRASHED (exit ${run.status ?? run.signal})`),
  );
  if (run.status !== 0) {
    failed = true;
    const summary = log.split("\n").filter((l) => /tsgi fuzz oracle|ERROR: |SUMMARY: |runtime error/.test(l));
    console.error(summary.slice(0, 6).join("\n"));
    console.error(`fuzz: ${h.name} crashed; input: ${crash ?? "(none written)"}; full log: ${relative(root, join(out, `${h.name}.log`))}`);
    if (crash) console.error(`replay: ${relative(root, binary)} ${crash}   minimize: ${relative(root, binary)} -minimize_crash=1 -runs=100000 ${crash}`);
  }
}

console.log(lines.join("\n"));
process.exit(failed ? 1 : 0);

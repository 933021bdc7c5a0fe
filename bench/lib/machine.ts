// What a benchmark ran on, for the head of every result: the date, the machine, the versions
// of the front server and Node, and the tsgi commit measured ("+dirty" when src/, native/ or
// bin/ had uncommitted changes).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { nginxVersion } from "../../test/support/front-servers.ts";

/** The first line a command prints (or the first match of `re`), "" when it cannot run. */
export function firstLine(cmd: string, args: string[], re?: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  return (re ? re.exec(text)?.[0] : text.split("\n")[0])?.trim() ?? "";
}

export function machineInfo(root: string) {
  const dirty = firstLine("git", ["-C", root, "status", "--porcelain", "--untracked-files=no", "--", "src", "native", "bin", "binding.gyp"]);
  return {
    date: new Date().toISOString(),
    nproc: Number(firstLine("nproc", [])) || cpus().length,
    cpu: /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown",
    kernel: firstLine("uname", ["-r"]),
    node: process.version,
    nginx: nginxVersion(),
    git: `${firstLine("git", ["-C", root, "rev-parse", "--short", "HEAD"])}${dirty ? "+dirty" : ""}`,
  };
}

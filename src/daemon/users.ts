// User and group names to ids through the system's name service (`getent`, so NSS/LDAP users
// resolve as they do for every other daemon; Node has no getpwnam). The master needs the ids
// to own unix sockets and log files; the workers drop privileges by name through libc
// (process.initgroups/setgid/setuid in src/daemon/worker.ts), which brings the supplementary
// groups along.

import { execFileSync } from "node:child_process";
import { tsgiError } from "../errors.ts";

function getent(database: "passwd" | "group", name: string): string[] | null {
  try {
    const out = execFileSync("getent", [database, name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const line = out.split("\n")[0];
    return line ? line.split(":") : null;
  } catch {
    return null;
  }
}

/** uid, primary gid and name of `user` (a name or a number); `key` is the setting that named it (for the error). */
export function resolveUser(user: string, key = "user"): { uid: number; gid: number; name: string } {
  const entry = getent("passwd", user);
  if (entry) return { name: entry[0]!, uid: Number(entry[2]), gid: Number(entry[3]) };
  if (/^\d+$/.test(user)) return { name: user, uid: Number(user), gid: Number(user) };
  throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `no user ${JSON.stringify(user)} on this machine` });
}

export function resolveGroup(group: string, key = "group"): number {
  const entry = getent("group", group);
  if (entry) return Number(entry[2]);
  if (/^\d+$/.test(group)) return Number(group);
  throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `no group ${JSON.stringify(group)} on this machine` });
}

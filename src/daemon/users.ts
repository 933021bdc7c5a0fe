// User and group names to ids, from /etc/passwd and /etc/group (Node has no getpwnam); a
// number is taken as an id. Used to drop workers' privileges and to own unix sockets.

import { readFileSync } from "node:fs";
import { tsgiError } from "../errors.ts";

function lookup(file: string, name: string, field: number): number | null {
  if (/^\d+$/.test(name)) return Number(name);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  for (const line of text.split("\n")) {
    const parts = line.split(":");
    if (parts[0] === name) return Number(parts[field]);
  }
  return null;
}

/** uid and primary gid of `user`; `key` is the setting that named it (for the error). */
export function resolveUser(user: string, key = "user"): { uid: number; gid: number } {
  const uid = lookup("/etc/passwd", user, 2);
  const gid = lookup("/etc/passwd", user, 3);
  if (uid === null) throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `no user ${JSON.stringify(user)} on this machine` });
  return { uid, gid: gid ?? uid };
}

export function resolveGroup(group: string, key = "group"): number {
  const gid = lookup("/etc/group", group, 2);
  if (gid === null) throw tsgiError("TSGI_ERR_CONFIG_INVALID", { where: key, reason: `no group ${JSON.stringify(group)} on this machine` });
  return gid;
}

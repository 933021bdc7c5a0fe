// Adds a user to the JSON user table, or replaces their entry:
//   node --import tsx add-user.ts USERS_FILE NAME ID [GROUP...]
// The password is read from standard input (typed at a terminal without echo, or the first
// line of a pipe); only its salted scrypt hash is written.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { hashPassword, type UserTable } from "./users.ts";

const [file, name, id, ...groups] = process.argv.slice(2);
if (!file || !name || !id) {
  process.stderr.write("usage: add-user.ts USERS_FILE NAME ID [GROUP...] (the password on standard input)\n");
  process.exit(2);
}

function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const lines = createInterface({ input: process.stdin });
    return new Promise((resolve) => {
      let first: string | null = null;
      lines.once("line", (line) => {
        first = line;
        lines.close();
      });
      lines.once("close", () => resolve(first ?? ""));
    });
  }
  process.stderr.write(`password for ${name}: `);
  process.stdin.setRawMode(true);
  return new Promise((resolve) => {
    let typed = "";
    process.stdin.on("data", (b: Buffer) => {
      for (const ch of b.toString("utf8")) {
        if (ch === "\r" || ch === "\n") {
          process.stdin.setRawMode(false);
          process.stdin.pause();
          process.stderr.write("\n");
          resolve(typed);
          return;
        }
        if (ch === "\u0003") process.exit(130);
        typed = ch === "\u007f" ? typed.slice(0, -1) : typed + ch;
      }
    });
  });
}

const password = await readPassword();
if (password === "") {
  process.stderr.write("add-user.ts: empty password; nothing written\n");
  process.exit(1);
}
const users: UserTable = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as UserTable) : {};
users[name] = { id, groups, password: await hashPassword(password) };
writeFileSync(file, `${JSON.stringify(users, null, 2)}\n`, { mode: 0o640 });
process.stderr.write(`${file}: ${name} (id ${id}${groups.length ? `, groups ${groups.join(" ")}` : ""})\n`);

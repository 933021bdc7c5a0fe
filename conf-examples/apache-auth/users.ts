// The application's own user table: a JSON file (USERS_FILE, default users.json in the working
// directory) mapping each user name to an id, groups and a salted scrypt hash of the password,
// never the password itself. add-user.ts writes entries; the file is read on every call, so a
// user added or removed counts at once, without a restart.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { readFile } from "node:fs/promises";

export interface User {
  id: string;
  groups: string[];
  /** "scrypt$N$r$p$SALT$HASH", salt and hash in base64. */
  password: string;
}

export type UserTable = Record<string, User>;

const COST: ScryptOptions = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 64;

export const usersFile = () => process.env.USERS_FILE ?? "users.json";

export async function loadUsers(file = usersFile()): Promise<UserTable> {
  return JSON.parse(await readFile(file, "utf8")) as UserTable;
}

function derive(password: string, salt: Buffer, cost: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, KEY_LENGTH, { ...cost, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** The stored form of a new password, with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, salt, COST);
  return ["scrypt", COST.N, COST.r, COST.p, salt.toString("base64"), hash.toString("base64")].join("$");
}

/** Whether `password` matches the stored form; throws on a stored form that is not one. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const parts = typeof stored === "string" ? stored.split("$") : [];
  const [scheme, n, r, p, salt, hash] = parts;
  if (parts.length !== 6 || scheme !== "scrypt" || !salt || !hash) throw new Error("malformed password entry (expected scrypt$N$r$p$SALT$HASH)");
  const expected = Buffer.from(hash, "base64");
  const actual = await derive(password, Buffer.from(salt, "base64"), { N: Number(n), r: Number(r), p: Number(p) });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

// An unknown user costs the same scrypt as a known one, so that timing does not tell which
// user names exist.
const DUMMY = hashPassword(randomBytes(16).toString("hex"));

/** The user if `password` is theirs; false for a wrong password; null for no such user. */
export async function checkUser(name: string, password: string): Promise<User | false | null> {
  const users = await loadUsers();
  const user = Object.hasOwn(users, name) ? users[name]! : null;
  if (user === null) {
    await verifyPassword(await DUMMY, password);
    return null;
  }
  return (await verifyPassword(user.password, password)) ? user : false;
}

/** The user's groups; null for no such user. */
export async function groupsOf(name: string): Promise<string[] | null> {
  const users = await loadUsers();
  return Object.hasOwn(users, name) ? users[name]!.groups : null;
}

// The access log (src/log.ts): common log format plus the duration, gathered in a buffer and
// written at most every 50 ms, each field escaped as nginx escapes it.
import { describe, expect, test } from "vitest";
import { createLogger, escapeField, type AccessEntry } from "../../src/log.ts";

function capture() {
  const writes: Buffer[] = [];
  const errors: string[] = [];
  const log = createLogger("blog", {
    error: { write: (line: string) => errors.push(line) },
    access: { write: (bytes: Uint8Array) => writes.push(Buffer.from(bytes)) },
  });
  return { log, writes, errors, text: () => Buffer.concat(writes).toString("latin1") };
}

const entry = (over: Partial<AccessEntry> = {}): AccessEntry => ({
  remoteAddr: "127.0.0.1",
  method: "GET",
  uri: "/hello?x=1",
  protocol: "HTTP/1.1",
  status: 200,
  bytes: 14,
  durationMs: 1.25,
  ...over,
});

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("access log", () => {
  test("a line is common log format plus the duration, and the first one goes out at once", async () => {
    const c = capture();
    c.log.access(entry({ user: "alice" }));
    await tick(5);
    expect(c.text()).toMatch(/^127\.0\.0\.1 - alice \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/hello\?x=1 HTTP\/1\.1" 200 14 1\.250ms\n$/);
  });

  test("the duration has three decimals, as toFixed(3) gives them, from 0 to days, and odd values are still written", async () => {
    const c = capture();
    const values = [0, 0.0004, 0.0005, 0.001, 0.0999, 0.9995, 1, 1.25, 9.9999, 10.5, 123.456, 999.9996, 12345.6789, 86_400_000.123, 3.3e9];
    for (let i = 0; i < 2000; i++) values.push(Math.random() * 10 ** ((i % 7) - 1));
    for (const ms of values) c.log.access(entry({ durationMs: ms }));
    c.log.access(entry({ durationMs: Number.NaN }));
    c.log.access(entry({ durationMs: -1.5 }));
    c.log.access(entry({ durationMs: 2e21 }));
    await tick(120);
    const written = c.text().trimEnd().split("\n").map((line) => / (\S+)ms$/.exec(line)![1]);
    expect(written).toHaveLength(values.length + 3);
    // Half-way values may round the last digit the other way (ms × 1000 against exact decimals).
    values.forEach((ms, i) => expect(Math.abs(Number(written[i]) - Number(ms.toFixed(3))), `${ms}: ${written[i]}`).toBeLessThanOrEqual(0.0010001));
    values.forEach((ms, i) => expect(written[i]).toMatch(/^\d+\.\d{3}$/));
    expect(written.slice(-3)).toEqual(["NaN", "-1.500", "2e+21"]);
  });

  test("lines under load are gathered into one write, in order, within about 50 ms", async () => {
    const c = capture();
    c.log.access(entry({ uri: "/first" }));
    await tick(5);
    const before = c.writes.length;
    for (let i = 0; i < 500; i++) c.log.access(entry({ uri: `/n${i}` }));
    expect(c.writes.length).toBe(before);
    await tick(120);
    expect(c.writes.length).toBeLessThanOrEqual(before + 2);
    const lines = c.text().trimEnd().split("\n");
    expect(lines).toHaveLength(501);
    expect(lines[1]).toContain('"GET /n0 HTTP/1.1"');
    expect(lines[500]).toContain('"GET /n499 HTTP/1.1"');
  });

  test("a sink that keeps what it is given keeps each flush's bytes; one that wrote them at once gets the same buffer again", async () => {
    // Kept as given (no writableLength: a sink tsgi does not know may queue the bytes).
    const kept: Uint8Array[] = [];
    const keeping = createLogger("blog", { error: { write: () => {} }, access: { write: (b: Uint8Array) => kept.push(b) } });
    // Written at once, as a file or a pipe as stdout on Linux: nothing queued after write().
    const seen: Uint8Array[] = [];
    const copies: string[] = [];
    const sync = { writableLength: 0, write: (b: Uint8Array) => (seen.push(b), copies.push(Buffer.from(b).toString("latin1"))) };
    const writing = createLogger("blog", { error: { write: () => {} }, access: sync });
    for (let round = 0; round < 3; round++) {
      keeping.access(entry({ uri: `/round${round}` }));
      writing.access(entry({ uri: `/round${round}` }));
      await tick(70);
    }
    expect(kept).toHaveLength(3);
    kept.forEach((b, round) => expect(Buffer.from(b).toString("latin1")).toContain(`"GET /round${round} HTTP/1.1"`));
    expect(new Set(kept.map((b) => b.buffer)).size).toBe(3);
    expect(copies).toHaveLength(3);
    copies.forEach((text, round) => expect(text).toContain(`"GET /round${round} HTTP/1.1"`));
    // One 64 KiB buffer for the logger's life, not a new one a flush (a busy worker's RSS grew by them).
    expect(new Set(seen.map((b) => b.buffer)).size).toBe(1);
  });

  test("bytes a field may not carry as they are are escaped as nginx escapes them (\\xHH)", async () => {
    const c = capture();
    const utf8Path = Buffer.from("/café", "utf8").toString("latin1"); // as the decoders deliver it
    c.log.access(entry({ uri: `${utf8Path}?a="b"\\c\r\n127.0.0.1 - - [forged]`, user: "eve\x1b[31m", method: "G\x00T", bytes: 0 }));
    await tick(5);
    const text = c.text();
    expect(text).toContain('"G\\x00T /caf\\xC3\\xA9?a=\\x22b\\x22\\x5Cc\\x0D\\x0A127.0.0.1 - - [forged] HTTP/1.1" 200 -');
    expect(text).toContain(" - eve\\x1B[31m [");
    // One line: nothing the client sent can start another.
    expect(text.trimEnd().split("\n")).toHaveLength(1);
  });

  test("lines past the buffer's size go out whole and in order, a flush each time it fills", async () => {
    const c = capture();
    const pad = "p".repeat(1000);
    for (let i = 0; i < 3000; i++) c.log.access(entry({ uri: `/${i}/${pad}`, bytes: i }));
    await tick(120);
    const lines = c.text().trimEnd().split("\n");
    expect(lines).toHaveLength(3000);
    lines.forEach((line, i) => expect(line).toMatch(new RegExp(`"GET /${i}/p{1000} HTTP/1\\.1" 200 ${i || "-"} 1\\.250ms$`)));
    expect(c.writes.length).toBeGreaterThan(40); // 3 MB through a 64 KiB buffer
  });

  test("every byte value, empty fields and large counts read as the line's format says", async () => {
    const c = capture();
    const every = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b)).join("");
    c.log.access(entry({ remoteAddr: "", uri: `/${every}`, status: 404, bytes: 0, durationMs: 0.0004 }));
    c.log.access(entry({ remoteAddr: "::1", user: "", method: "POST", status: 201, bytes: 9_007_199_254_740_991, durationMs: 12345.6789 }));
    await tick(120);
    const lines = c.text().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^- - - \[[^\]]+\] "GET \/(.*) HTTP\/1\.1" 404 - 0\.000ms$/);
    expect(lines[0]).toContain(`"GET /${escapeField(every)} HTTP/1.1"`);
    expect(lines[1]).toMatch(/^::1 - - \[[^\]]+\] "POST \/hello\?x=1 HTTP\/1\.1" 201 9007199254740991 12345\.679ms$/);
  });

  test("a char above 0xFF is its low byte, escaped, in a short line and in one longer than the buffer", async () => {
    const c = capture();
    c.log.access(entry({ user: "m\u010a\u0141" })); // U+010A: low byte LF, escaped; U+0141: low byte "A", as it is
    c.log.access(entry({ uri: `/${"a".repeat(20_000)}`, user: "m\u010a\u0141" }));
    await tick(120);
    const lines = c.text().trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toContain(" - m\\x0AA [");
  });

  test("a line longer than the buffer is written whole, after the lines before it", async () => {
    const c = capture();
    c.log.access(entry({ uri: "/short" }));
    c.log.access(entry({ uri: `/${"a".repeat(100_000)}` }));
    await tick(120);
    const lines = c.text().trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain("/short");
    expect(lines[1]).toContain(`/${"a".repeat(100_000)} HTTP/1.1`);
  });
});

// tsgi.input: read(n), readline(), readlines(), for await; never past CONTENT_LENGTH; a body
// without one ends with its stream; backpressure pauses the socket and resumes it.
import { describe, expect, it } from "vitest";
import { TsgiInput } from "../../src/gateway/input.ts";

const text = (b: Uint8Array) => Buffer.from(b).toString();

describe("tsgi.input", () => {
  it("read(n) waits for n bytes, read() reads the rest, then empty at the end", async () => {
    const input = new TsgiInput(11);
    const first = input.read(5);
    input.feed(Buffer.from("hel"));
    input.feed(Buffer.from("lo wo"));
    expect(text(await first)).toBe("hello");
    const rest = input.read();
    input.feed(Buffer.from("rld"));
    expect(text(await rest)).toBe(" world");
    expect((await input.read()).length).toBe(0);
    expect((await input.read(10)).length).toBe(0);
  });

  it("never yields a byte past CONTENT_LENGTH", async () => {
    const input = new TsgiInput(4);
    input.feed(Buffer.from("abcdef"));
    expect(text(await input.read())).toBe("abcd");
    expect(input.received).toBe(4);
  });

  it("without CONTENT_LENGTH it ends where the stream ends", async () => {
    const input = new TsgiInput(null);
    const all = input.read();
    input.feed(Buffer.from("chunked "));
    input.feed(Buffer.from("upload"));
    input.finish();
    expect(text(await all)).toBe("chunked upload");
  });

  it("readline, readline(size) and readlines", async () => {
    const input = TsgiInput.of(Buffer.from("one\ntwo\nthree-long\nlast"));
    expect(text(await input.readline())).toBe("one\n");
    expect(text(await input.readline(2))).toBe("tw");
    expect(text(await input.readline())).toBe("o\n");
    expect((await input.readlines()).map(text)).toEqual(["three-long\n", "last"]);
    expect((await input.readline()).length).toBe(0);
  });

  it("for await yields the chunks as they come", async () => {
    const input = new TsgiInput(6);
    setTimeout(() => {
      input.feed(Buffer.from("abc"));
      setTimeout(() => input.feed(Buffer.from("def")), 5);
    }, 5);
    const seen: string[] = [];
    for await (const chunk of input) seen.push(text(chunk));
    expect(seen).toEqual(["abc", "def"]);
  });

  it("pauses the socket above the high-water mark and resumes it as the application reads", async () => {
    const calls: boolean[] = [];
    const input = new TsgiInput(null, { pause: (p) => calls.push(p) });
    for (let i = 0; i < 5; i++) input.feed(Buffer.alloc(64 * 1024));
    expect(calls).toEqual([true]);
    let total = 0;
    const reading = (async () => {
      for await (const chunk of input) total += chunk.length;
    })();
    await new Promise((r) => setTimeout(r, 5));
    expect(calls).toEqual([true, false]);
    input.finish();
    await reading;
    expect(total).toBe(5 * 64 * 1024);
  });

  it("a reader waiting on a body that will never complete gets the error", async () => {
    const input = new TsgiInput(10);
    const pending = input.read();
    input.feed(Buffer.from("abc"));
    input.fail(new Error("client gone"));
    await expect(pending).rejects.toThrow("client gone");
  });

  it("a body of unknown length past max-body fails with TSGI_ERR_APP_BODY_TOO_LARGE", async () => {
    const input = new TsgiInput(null, null, 10);
    const all = input.read();
    input.feed(Buffer.from("0123456789"));
    input.feed(Buffer.from("X"));
    await expect(all).rejects.toMatchObject({ code: "TSGI_ERR_APP_BODY_TOO_LARGE" });
  });

  it("steps asked for at once are answered in order, and the loop's end is done for good", async () => {
    const input = new TsgiInput(6);
    const it = input[Symbol.asyncIterator]();
    const steps = [it.next(), it.next(), it.next(), it.next()];
    input.feed(Buffer.from("ab"));
    input.feed(Buffer.from("cd"));
    setTimeout(() => input.feed(Buffer.from("ef")), 5);
    const got = await Promise.all(steps);
    expect(got.map((s) => (s.done ? "done" : text(s.value)))).toEqual(["ab", "cd", "ef", "done"]);
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it("a loop left early leaves the rest to the next loop; its own iterator is done", async () => {
    const input = new TsgiInput(6);
    input.feed(Buffer.from("ab"));
    input.feed(Buffer.from("cd"));
    input.feed(Buffer.from("ef"));
    const it = input[Symbol.asyncIterator]();
    for await (const chunk of it) {
      expect(text(chunk)).toBe("ab");
      break;
    }
    expect((await it.next()).done).toBe(true);
    const rest: string[] = [];
    for await (const chunk of input) rest.push(text(chunk));
    expect(rest).toEqual(["cd", "ef"]);
  });

  it("for await gives the chunks that came, then the body's error, then nothing more", async () => {
    const input = new TsgiInput(10);
    const it = input[Symbol.asyncIterator]();
    const first = it.next();
    input.feed(Buffer.from("abc"));
    expect(text((await first).value as Uint8Array)).toBe("abc");
    const second = it.next();
    input.fail(new Error("client gone"));
    await expect(second).rejects.toThrow("client gone");
    expect((await it.next()).done).toBe(true);
    // A body cut short by its stream's end: the bytes that came, then TSGI_ERR_APP_BODY_INCOMPLETE.
    const short = new TsgiInput(10);
    short.feed(Buffer.from("xyz"));
    short.finish();
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const chunk of short) seen.push(text(chunk));
      })(),
    ).rejects.toMatchObject({ code: "TSGI_ERR_APP_BODY_INCOMPLETE" });
    expect(seen).toEqual(["xyz"]);
  });

  it("for await: the socket paused above the high-water mark flows again as the loop takes the chunks; a waiting step gets the next", async () => {
    const calls: boolean[] = [];
    const input = new TsgiInput(null, { pause: (p) => calls.push(p) });
    const it = input[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) input.feed(Buffer.alloc(64 * 1024));
    for (let i = 0; i < 5; i++) await it.next();
    expect(calls).toEqual([true, false]);
    const waiting = it.next();
    input.feed(Buffer.from("z"));
    expect(text((await waiting).value as Uint8Array)).toBe("z");
  });
});

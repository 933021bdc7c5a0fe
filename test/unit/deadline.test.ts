// The request-timeout's deadlines (src/protocol/connection.ts): armed ones fire once, late by
// at most the sweep's period; disarmed ones never; arming again counts from then. The clock
// is vitest's fake one (timers and performance.now), so the test does not hang on the load.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { Deadline } from "../../src/protocol/connection.ts";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Deadline", () => {
  test("the armed ones fire once, in the order they were armed, at most a quarter late; a disarmed one never", () => {
    const fired: string[] = [];
    const make = (name: string) => new Deadline(400, () => fired.push(name));
    const [a, b, c, d] = [make("a"), make("b"), make("c"), make("d")];
    a.arm();
    vi.advanceTimersByTime(150);
    b.arm();
    c.arm();
    d.arm();
    b.disarm(); // from the middle of the armed ones
    d.disarm(); // the last armed
    vi.advanceTimersByTime(240); // 390 ms after `a`
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(110); // 400 ms after `a` and a sweep's period (400 / 4)
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(150); // 400 ms after `c` and a sweep's period
    expect(fired).toEqual(["a", "c"]);
    a.disarm(); // after it fired: nothing to undo
    vi.advanceTimersByTime(2000);
    expect(fired).toEqual(["a", "c"]);
  });

  test("arming again counts from then; a deadline may arm itself again when it fires", () => {
    const fired: number[] = [];
    const first = new Deadline(400, () => fired.push(performance.now()));
    first.arm();
    vi.advanceTimersByTime(200);
    first.arm(); // 400 ms from here, not from the first arm
    vi.advanceTimersByTime(300);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(200);
    expect(fired).toHaveLength(1);
    expect(fired[0]! - 600).toBeGreaterThanOrEqual(0);
    expect(fired[0]! - 600).toBeLessThanOrEqual(100);

    let times = 0;
    const again: Deadline = new Deadline(40, () => {
      if (++times < 3) again.arm();
    });
    again.arm();
    vi.advanceTimersByTime(1000);
    expect(times).toBe(3);
  });

  test("a deadline of 0 ms is never armed", () => {
    let fired = false;
    const never = new Deadline(0, () => (fired = true));
    never.arm();
    never.disarm();
    never.arm();
    vi.advanceTimersByTime(60_000);
    expect(fired).toBe(false);
  });

  test("ten thousand armed and disarmed, one left armed: only it fires, and the sweep stops after", () => {
    const fired: number[] = [];
    const all = Array.from({ length: 10_000 }, (_, i) => new Deadline(300, () => fired.push(i)));
    for (const d of all) d.arm();
    for (const [i, d] of all.entries()) if (i !== 4321) d.disarm();
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual([4321]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

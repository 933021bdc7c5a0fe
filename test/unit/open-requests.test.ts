// The open requests of the native listeners (src/protocol/native-listener.ts): found by
// connection and id while open, gone once closed or aborted, and the entries the Map keeps
// between the requests of a persistent connection bounded. Plain objects stand in for the
// listeners' NativeSinks: OpenRequests reads only their fields.
import { describe, expect, it } from "vitest";
import { OpenRequests, type NativeRequest } from "../../src/protocol/native-listener.ts";
import { RequestAbort } from "../../src/gateway/abort.ts";
import { TsgiInput } from "../../src/gateway/input.ts";

function request(conn: number, id = 1): NativeRequest {
  return { conn, id, input: TsgiInput.EMPTY, controller: new RequestAbort(), ended: false, drain: null, unsentBytes: 0 };
}

/** A request opened on `conn` and answered. */
function served(open: OpenRequests, conn: number, persistent: boolean): void {
  const r = request(conn);
  open.add(r, persistent);
  open.close(r);
}

describe("OpenRequests", () => {
  it("finds a connection's requests by id while they are open, multiplexed ones too, and none once closed", () => {
    const open = new OpenRequests();
    const a = request(7, 1);
    const b = request(7, 2);
    open.add(a, true);
    open.add(b, true);
    expect(open.get(7, 1)).toBe(a);
    expect(open.get(7, 2)).toBe(b);
    open.close(a);
    expect(a.ended).toBe(true);
    expect(open.get(7, 1)).toBeUndefined();
    expect(open.get(7, 2)).toBe(b);
    const c = request(7, 1);
    open.add(c, true);
    expect(open.get(7, 1)).toBe(c);
  });

  it("a connection per request (uwsgi, FastCGI without keep-conn) leaves no entry behind", () => {
    const open = new OpenRequests();
    for (let conn = 1; conn <= 5000; conn++) served(open, conn, false);
    expect(open.entries).toBe(0);
  });

  it("a persistent connection's entry serves its next request; those of persistent connections gone are swept, bounded", () => {
    const open = new OpenRequests();
    for (let i = 0; i < 1000; i++) served(open, i % 64, true);
    expect(open.entries).toBe(64);
    // 10,000 persistent connections that closed while idle (no event tells of them).
    for (let conn = 1000; conn < 11_000; conn++) served(open, conn, true);
    expect(open.entries).toBeLessThanOrEqual(2048);
  });

  it("the connection gone aborts every request open on it, their signal and input told, and drops its entry", () => {
    const open = new OpenRequests();
    const input = new TsgiInput(10);
    const a = { ...request(3, 1), input };
    const b = request(3, 2);
    open.add(a, true);
    open.add(b, true);
    open.abortConnection(3, "connection closed", 42);
    expect(a.controller.aborted && b.controller.aborted).toBe(true);
    expect(a.ended && b.ended).toBe(true);
    expect(b.unsentBytes).toBe(42);
    expect(open.get(3, 1)).toBeUndefined();
    expect(open.entries).toBe(0);
  });

  it("DRAIN wakes every request waiting on the connection", () => {
    const open = new OpenRequests();
    const woken: number[] = [];
    const a = request(5, 1);
    const b = request(5, 2);
    a.drain = { resolve: () => woken.push(1), reject: () => {} };
    b.drain = { resolve: () => woken.push(2), reject: () => {} };
    open.add(a, true);
    open.add(b, true);
    open.drained(5);
    expect(woken.sort()).toEqual([1, 2]);
    expect(a.drain).toBeNull();
  });
});

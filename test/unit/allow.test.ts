// The `allow` list (src/daemon/allow.ts): addresses and networks of both families parsed into
// the binary form the native listeners check, IPv4-mapped IPv6 matching its IPv4 entry, and
// which listen hosts count as loopback.
import { describe, expect, it } from "vitest";
import { AllowList, NETWORK_BYTES, addressBytes, isLoopbackHost, parseNetwork } from "../../src/daemon/allow.ts";

const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString("hex") : null);

describe("allow", () => {
  it("addresses to 16 bytes: IPv4 mapped, IPv6 with :: anywhere and an IPv4 tail; anything else is null", () => {
    expect(hex(addressBytes("10.1.2.3"))).toBe("00000000000000000000ffff0a010203");
    expect(hex(addressBytes("::ffff:10.1.2.3"))).toBe("00000000000000000000ffff0a010203");
    expect(hex(addressBytes("1:2:3:4:5:6:7:8"))).toBe("00010002000300040005000600070008");
    expect(hex(addressBytes("1::8"))).toBe("00010000000000000000000000000008");
    expect(hex(addressBytes("::"))).toBe("00000000000000000000000000000000");
    expect(hex(addressBytes("fe80::"))).toBe("fe800000000000000000000000000000");
    for (const bad of ["", "10.1.2", "10.1.2.256", "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "localhost", "::g"]) expect(addressBytes(bad)).toBeNull();
  });

  it("networks: host bits cleared, IPv4 prefixes counted past the 96 mapped bits, bad prefixes refused", () => {
    expect(parseNetwork("10.9.9.9/8")).toEqual({ bytes: addressBytes("10.0.0.0"), prefix: 104 });
    expect(parseNetwork("fd00::1/8")).toEqual({ bytes: addressBytes("fd00::"), prefix: 8 });
    expect(parseNetwork("::1")).toEqual({ bytes: addressBytes("::1"), prefix: 128 });
    expect(parseNetwork("10.0.0.0/33")).toEqual({ error: '"10.0.0.0/33" has a prefix length out of 0–32' });
    expect(parseNetwork("::/129")).toEqual({ error: '"::/129" has a prefix length out of 0–128' });
    expect(parseNetwork("10.0.0.0/")).toHaveProperty("error");
  });

  it("matches by network, both families, IPv4-mapped peers as their IPv4 address", () => {
    const a = new AllowList(["127.0.0.1", "::1", "10.0.0.0/8", "192.168.1.128/25", "fd00::/8"]);
    for (const yes of ["127.0.0.1", "::ffff:127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "10.255.0.1", "192.168.1.200", "fdab::1"]) expect(a.has(yes), yes).toBe(true);
    for (const no of ["127.0.0.2", "11.0.0.1", "192.168.1.127", "fe80::1", "::", "", undefined, "not an address"]) expect(a.has(no), String(no)).toBe(false);
    expect(a.everyone).toBe(false);
    expect(a.packed()!.length).toBe(5 * NETWORK_BYTES);
  });

  it("::/0 is everyone (nothing to check natively); 0.0.0.0/0 is every IPv4 peer only", () => {
    expect(new AllowList(["::/0"]).packed()).toBeNull();
    const v4 = new AllowList(["0.0.0.0/0"]);
    expect(v4.everyone).toBe(false);
    expect(v4.has("203.0.113.9")).toBe(true);
    expect(v4.has("2001:db8::1")).toBe(false);
    expect(new AllowList([]).has("127.0.0.1")).toBe(false);
  });

  it("loopback hosts: 127.0.0.0/8, ::1, localhost; 0.0.0.0 and :: are not", () => {
    expect(["127.0.0.1", "127.9.9.9", "::1", "localhost", "::ffff:127.0.0.1"].map(isLoopbackHost)).toEqual([true, true, true, true, true]);
    expect(["0.0.0.0", "::", "10.0.0.1", "example.com"].map(isLoopbackHost)).toEqual([false, false, false, false]);
  });
});

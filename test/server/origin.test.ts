// Which hosts count as this machine (lib/server/origin.ts): parsed names and literals, never prefixes.
import { describe, expect, test } from "bun:test";
import { ApiBindError, checkBindSafety, isAllowedHost, isLoopbackHost, isLoopbackOrigin, parseHostHeader, parseIpv6 } from "../../lib/server/origin.ts";

describe("loopback hosts", () => {
  test("localhost, 127.0.0.0/8 dotted quads and ::1 are loopback", () => {
    for (const h of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "127.255.255.255", "::1", "[::1]", "0:0:0:0:0:0:0:1", "[0::1]"]) expect([h, isLoopbackHost(h)]).toEqual([h, true]);
  });

  test("look-alikes and other addresses are not", () => {
    for (const h of ["127.0.0.1.evil.example", "127.0.0.1.nip.io", "127.evil", "127.", "127", "127.0.0", "127.0.0.1.", "0127.0.0.1", "127.0.0.01", "127.0.0.256", "128.0.0.1", "10.0.0.1", "0.0.0.0", "::", "::2", "::ffff:127.0.0.1", "::1%lo", "app.localhost", "localhost.", "localhost.evil.example", "evil-localhost", ""])
      expect([h, isLoopbackHost(h)]).toEqual([h, false]);
  });

  test("IPv6 parsing expands :: and a trailing dotted quad", () => {
    expect(parseIpv6("::1")).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(parseIpv6("fe80::1:2")).toEqual([0xfe80, 0, 0, 0, 0, 0, 1, 2]);
    expect(parseIpv6("::ffff:1.2.3.4")).toEqual([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]);
    for (const bad of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", ":::"]) expect(parseIpv6(bad)).toBeUndefined();
  });

  test("Origin: the URL is parsed; only http(s) pages on a loopback host pass", () => {
    for (const o of ["http://localhost:3000", "https://127.0.0.1", "http://127.9.9.9:80", "http://[::1]:8080"]) expect([o, isLoopbackOrigin(o)]).toEqual([o, true]);
    for (const o of ["http://127.0.0.1.evil.example", "https://127.0.0.1.nip.io:8000", "http://localhost.evil.example", "null", "file://", "chrome-extension://abc", "ws://localhost", "garbage"])
      expect([o, isLoopbackOrigin(o)]).toEqual([o, false]);
  });

  test("Host header: name or literal with an optional port; malformed values are refused", () => {
    expect(parseHostHeader("localhost:8000")).toBe("localhost");
    expect(parseHostHeader("[::1]:8000")).toBe("[::1]");
    expect(parseHostHeader("127.0.0.1")).toBe("127.0.0.1");
    for (const bad of ["a b", "a, b", "localhost:99999", "[::1", "[zz]:80", "host:port", "::1"]) expect(parseHostHeader(bad)).toBeUndefined();
  });

  test("Host allowed without a key: absent, loopback, the bound address; any IP literal only on a wildcard bind", () => {
    expect(isAllowedHost(null, "127.0.0.1")).toBe(true);
    expect(isAllowedHost("", "127.0.0.1")).toBe(true);
    expect(isAllowedHost("localhost:8000", "127.0.0.1")).toBe(true);
    expect(isAllowedHost("[::1]:8000", "127.0.0.1")).toBe(true);
    expect(isAllowedHost("evil.example:8000", "127.0.0.1")).toBe(false);
    expect(isAllowedHost("127.0.0.1.nip.io:8000", "127.0.0.1")).toBe(false);
    expect(isAllowedHost("192.168.1.5:8000", "127.0.0.1")).toBe(false);
    expect(isAllowedHost("192.168.1.5:8000", "192.168.1.5")).toBe(true);
    expect(isAllowedHost("MyBox.lan:8000", "mybox.lan")).toBe(true);
    expect(isAllowedHost("192.168.1.5:8000", "0.0.0.0")).toBe(true);
    expect(isAllowedHost("[fe80::1]:8000", "::")).toBe(true);
    expect(isAllowedHost("mybox.lan:8000", "0.0.0.0")).toBe(false);
  });

  test("the bind rule uses the same parse: a look-alike SERVER_HOST needs a key", () => {
    for (const h of ["127.0.0.1", "127.0.0.2", "localhost", "::1"]) expect(() => checkBindSafety(h, undefined, false)).not.toThrow();
    for (const h of ["127.0.0.1.nip.io", "127.evil.example", "0.0.0.0", "::", "0127.0.0.1"]) expect(() => checkBindSafety(h, undefined, false)).toThrow(ApiBindError);
    expect(() => checkBindSafety("127.0.0.1.nip.io", "key", false)).not.toThrow();
  });
});

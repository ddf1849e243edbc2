import { describe, expect, it } from "vitest";
import { PolicyError, parsePolicy } from "../../src/policy/load.js";

describe("parsePolicy", () => {
  it("parses a policy and gives a format-independent version hash", () => {
    const a = parsePolicy(
      "version: 1\nmode: enforce\negress:\n  allow:\n    - registry.npmjs.org\n    - '*.github.com'\n    - 10.0.0.0/8\n",
      "p.yml",
    );
    expect(a.allow).toEqual([
      { kind: "host", host: "registry.npmjs.org", wildcard: false },
      { kind: "host", host: "github.com", wildcard: true },
      { kind: "ip", addr: "10.0.0.0", family: 4, prefix: 8 },
    ]);
    const b = parsePolicy(
      '{"egress": {"allow": ["registry.npmjs.org", "*.github.com", "10.0.0.0/8"]}, "mode": "enforce", "version": 1}',
      "p.json",
    );
    expect(b.sha256).toBe(a.sha256);
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(parsePolicy("version: 1\n", "q.yml").sha256).not.toBe(a.sha256);
  });

  it("names file, line and column for YAML errors, schema errors and bad endpoints", () => {
    expect(() => parsePolicy("version: 1\negress: [\n", "bad.yml")).toThrow(
      /^bad\.yml:\d+:\d+: invalid YAML/,
    );
    expect(() => parsePolicy("version: 1\negress:\n  alow: [x.example]\n", "typo.yml")).toThrow(
      'typo.yml:3:3: unknown key "alow" in egress (allowed: allow, allow-metadata)',
    );
    expect(() => parsePolicy("version: 2\n", "v.yml")).toThrow(
      "v.yml:1:10: version must be 1, not 2 (this dpndncy reads policy version 1)",
    );
    expect(() =>
      parsePolicy("version: 1\negress:\n  allow:\n    - ok.example\n    - 'bad host'\n", "ep.yml"),
    ).toThrow('ep.yml:5:7: invalid endpoint "bad host"');
    expect(() => parsePolicy("version: 1\nversion: 1\n", "dup.yml")).toThrow(PolicyError);
  });

  it("reports every problem at once, in file order, in words, each with FILE:LINE:COLUMN", () => {
    const text = [
      "version: 2",
      "mode: enforc",
      "egres: {}",
      "egress:",
      "  alow: [a.example]",
      "  allow:",
      "    - 10.1.2.3/8",
      "    - 0.0.0.0/0",
      "    - ::ffff:1.2.3.4",
      "    - 01.2.3.4",
      "    - '[::ffff:10.0.0.1]:443'",
      "files:",
      "  sensitive: [relative/path]",
      "",
    ].join("\n");
    let message = "";
    try {
      parsePolicy(text, "p.yml");
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyError);
      message = (e as Error).message;
    }
    expect(message.split("\n")).toEqual([
      "p.yml:1:10: version must be 1, not 2 (this dpndncy reads policy version 1)",
      'p.yml:2:7: mode must be one of observe, learn, enforce, not "enforc"',
      'p.yml:3:1: unknown key "egres" (allowed: version, mode, egress, dns, files)',
      'p.yml:5:3: unknown key "alow" in egress (allowed: allow, allow-metadata)',
      'p.yml:7:7: invalid endpoint "10.1.2.3/8": host bits set: a /8 starts at 10.0.0.0, so this allows all of 10.0.0.0/8; write that, or 10.1.2.3 alone for one address',
      'p.yml:8:7: invalid endpoint "0.0.0.0/0": allows every IPv4 address: enforce mode would block nothing (use mode: observe to record without blocking)',
      'p.yml:9:7: invalid endpoint "::ffff:1.2.3.4": an IPv4-mapped IPv6 address: connections to it are judged as IPv4, so write 1.2.3.4',
      'p.yml:10:7: invalid endpoint "01.2.3.4": an IPv4 address with a leading zero, which tools read differently (010 is 8 to inet_aton, 10 to others): write 1.2.3.4',
      'p.yml:11:7: invalid endpoint "[::ffff:10.0.0.1]:443": an IPv4-mapped IPv6 address: connections to it are judged as IPv4, so write 10.0.0.1',
      'p.yml:13:15: files.sensitive[0] must be an absolute path or start with ~/: "relative/path"',
    ]);
    expect(message).not.toMatch(/\^\(|must NOT|equal to constant/); // no regex, no ajv-speak
  });

  it("names a missing version and a non-mapping document", () => {
    expect(() => parsePolicy("mode: observe\n", "r.yml")).toThrow(
      "r.yml:1:1: version is missing (add `version: 1`)",
    );
    expect(() => parsePolicy("- a\n", "s.yml")).toThrow("s.yml:1:1: a policy must be a mapping");
  });

  it("accepts what is meant: networks without host bits, v6 prefixes, plain addresses", () => {
    const p = parsePolicy(
      "version: 1\negress:\n  allow: [10.0.0.0/8, '2001:db8::/32', 10.1.2.3, '::1', 10.1.2.3/32]\n",
      "ok.yml",
    );
    expect(p.allow.map((e) => (e.kind === "ip" ? `${e.addr}/${e.prefix}` : e.host))).toEqual([
      "10.0.0.0/8",
      "2001:db8::/32",
      "10.1.2.3/32",
      "::1/128",
      "10.1.2.3/32",
    ]);
  });
});

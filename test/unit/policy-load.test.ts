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
      'typo.yml:3:3: policy at egress must NOT have additional properties "alow"',
    );
    expect(() => parsePolicy("version: 2\n", "v.yml")).toThrow(
      "v.yml:1:10: policy at version must be equal to constant",
    );
    expect(() =>
      parsePolicy("version: 1\negress:\n  allow:\n    - ok.example\n    - 'bad host'\n", "ep.yml"),
    ).toThrow('ep.yml:5:7: invalid endpoint "bad host"');
    expect(() => parsePolicy("version: 1\nversion: 1\n", "dup.yml")).toThrow(PolicyError);
  });
});

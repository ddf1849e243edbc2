// Enforce mode on the TypeScript side: policy endpoints -> agent directives (agent-c/features/enforce_policy.c
// parses them), and `dpndncy policy check` with FILE:LINE:COLUMN errors.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderAgentConfig } from "../../src/agent/config.js";
import type { Io } from "../../src/cli/io.js";
import { main } from "../../src/cli.js";
import { parseEndpointList } from "../../src/policy/endpoint.js";

const dir = mkdtempSync(join(tmpdir(), "dpndncy-enforce-policy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    env: {},
  };
  const code = await main(argv, io);
  return { code, out, err };
}

describe("enforce policy", () => {
  it("renders every endpoint form as an agent directive", () => {
    const allow = parseEndpointList(
      "registry.npmjs.org\n*.githubusercontent.com:443\napi.example.com:8443\n192.0.2.0/24\n198.51.100.7:53\n2001:db8::/32\n[2001:db8::1]:443",
      "test",
    );
    const text = renderAgentConfig({
      mode: "enforce",
      allow,
      dnsResolvers: ["192.0.2.53", "2001:db8::53"],
      allowMetadata: true,
      exemptPids: [1234],
    });
    expect(text.trimEnd().split("\n").slice(2)).toEqual([
      "allow-host registry.npmjs.org",
      "allow-suffix githubusercontent.com:443",
      "allow-host api.example.com:8443",
      "allow-cidr 192.0.2.0/24",
      "allow-cidr 198.51.100.7/32:53",
      "allow-cidr 2001:db8::/32",
      "allow-cidr [2001:db8::1/128]:443",
      "dns-resolver 192.0.2.53",
      "dns-resolver 2001:db8::53",
      "allow-metadata",
      "exempt-pid 1234",
    ]);
    expect(() => renderAgentConfig({ mode: "enforce", dnsResolvers: ["dns.example"] })).toThrow(
      /not an IP address/,
    );
  });

  it("policy check: valid prints the version; bad CIDR, *foo.com, unknown key, wrong type fail with FILE:LINE:COLUMN", async () => {
    const ok = join(dir, "ok.yml");
    writeFileSync(ok, 'version: 1\negress:\n  allow: ["*.example.com:443", "192.0.2.0/24"]\n');
    const r = await cli(["policy", "check", ok, "--print"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/valid \(policy version [0-9a-f]{64}, 2 egress allow entries\)/);
    expect(r.out).toContain("allow-suffix example.com:443\nallow-cidr 192.0.2.0/24\n");
    const bad: Array<[string, RegExp]> = [
      [
        "version: 1\negress:\n  allow:\n    - 10.0.0.0/33\n",
        /:4:7: invalid endpoint "10\.0\.0\.0\/33"/,
      ],
      ["version: 1\negress:\n  allow:\n    - '*foo.com'\n", /:4:7: invalid endpoint "\*foo\.com"/],
      ["version: 1\negres:\n  allow: []\n", /:2:1: unknown key "egres" \(allowed: /],
      [
        "version: 1\negress:\n  allow: x.com\n",
        /:3:10: egress\.allow must be a list, not "x\.com"/,
      ],
    ];
    for (const [text, re] of bad) {
      const f = join(dir, "bad.yml");
      writeFileSync(f, text);
      const b = await cli(["policy", "check", f]);
      expect(b.code, text).toBe(1);
      expect(b.err).toMatch(re);
      expect(b.err.startsWith(f)).toBe(true);
    }
    expect((await cli(["policy", "lint", ok])).code).toBe(2);
    // unreadable input is exit 3 (as for every CLI command), not "invalid" (1)
    const gone = await cli(["policy", "check", join(dir, "missing.yml")]);
    expect(gone.code).toBe(3);
    expect(gone.err).toContain("missing.yml: cannot read policy: ENOENT");
  });
});

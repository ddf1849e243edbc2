import { describe, expect, it } from "vitest";
import { InputError, parseInputs } from "../../src/action/inputs.js";
import { parseEndpoint, parseEndpointList } from "../../src/policy/endpoint.js";

const getter = (m: Record<string, string>) => (n: string) => m[n] ?? "";

describe("parseInputs", () => {
  it("defaults are safe: observe, keyless, fail-on none, upload on", () => {
    const i = parseInputs(getter({}));
    expect(i).toEqual({
      mode: "observe",
      allowedEndpoints: [],
      sensitivePaths: [],
      sign: "keyless",
      failOn: "none",
      uploadArtifact: true,
      learnJobs: 5,
      allowGithubEndpoints: true,
      harden: "none",
      matrix: "",
      containers: "auto",
      containerCgroups: [],
      containerSlices: [],
      runtimeCgroups: [],
    });
  });

  it("artifact-name: a name artifacts can hold, or a clear error", () => {
    expect(parseInputs(getter({ "artifact-name": "trace-linux" })).artifactName).toBe(
      "trace-linux",
    );
    expect(() => parseInputs(getter({ "artifact-name": "a/b" }))).toThrow(
      'input `artifact-name`: "a/b" contains a character artifact names cannot hold',
    );
  });

  it("harden: none | sudo | sudo-and-containers", () => {
    expect(parseInputs(getter({ harden: "sudo" })).harden).toBe("sudo");
    expect(parseInputs(getter({ harden: "sudo-and-containers" })).harden).toBe(
      "sudo-and-containers",
    );
    expect(() => parseInputs(getter({ harden: "yes" }))).toThrow(
      'input `harden`: "yes" is not one of none, sudo, sudo-and-containers',
    );
  });

  it("names the input and the bad value", () => {
    expect(() => parseInputs(getter({ mode: "block" }))).toThrow(
      'input `mode`: "block" is not one of observe, learn, enforce',
    );
    expect(() => parseInputs(getter({ "upload-artifact": "yes" }))).toThrow(
      'input `upload-artifact`: "yes" is not true or false',
    );
    expect(() =>
      parseInputs(getter({ "allowed-endpoints": "registry.npmjs.org\nbad_host!" })),
    ).toThrow(/input `allowed-endpoints` line 2: invalid endpoint "bad_host!"/);
  });

  it("sign: key without a key, agent-url without a checksum, a malformed checksum are errors", () => {
    expect(() => parseInputs(getter({ sign: "key" }))).toThrow(InputError);
    expect(() => parseInputs(getter({ "agent-url": "https://mirror.example/agent" }))).toThrow(
      /agent-url.*needs `agent-sha256`/,
    );
    expect(() => parseInputs(getter({ "agent-sha256": "abc" }))).toThrow(/64 hex digits/);
    expect(() => parseInputs(getter({ "sensitive-paths": "relative/file" }))).toThrow(
      /must be absolute/,
    );
  });

  it("parses a full configuration", () => {
    const sha = "A".repeat(64);
    const i = parseInputs(
      getter({
        mode: "enforce",
        "allowed-endpoints":
          "registry.npmjs.org:443 *.github.com\n# comment\n10.0.0.0/8, [2001:db8::1]:8443",
        "agent-url": "https://mirror.example/agent",
        "agent-sha256": `sha256:${sha}`,
        "fail-on": "blocked",
      }),
    );
    expect(i.mode).toBe("enforce");
    expect(i.agentSha256).toBe("a".repeat(64));
    expect(i.allowedEndpoints).toEqual([
      { kind: "host", host: "registry.npmjs.org", wildcard: false, port: 443 },
      { kind: "host", host: "github.com", wildcard: true },
      { kind: "ip", addr: "10.0.0.0", family: 4, prefix: 8 },
      { kind: "ip", addr: "2001:db8::1", family: 6, prefix: 128, port: 8443 },
    ]);
  });
});

describe("parseEndpoint", () => {
  it.each([
    "*",
    "*.com.",
    "a*.example.com",
    "-bad.example",
    "1.2.3.4/33",
    "host:0",
    "host:70000",
    "example.com/8",
  ])("rejects %s", (s) => expect(() => parseEndpoint(s)).toThrow(/invalid endpoint/));
  it("accepts a bare IPv6 address and a v6 CIDR", () => {
    expect(parseEndpoint("fd00:ec2::254")).toEqual({
      kind: "ip",
      addr: "fd00:ec2::254",
      family: 6,
      prefix: 128,
    });
    expect(parseEndpoint("2001:db8::/32")).toMatchObject({ family: 6, prefix: 32 });
  });
  it("keeps line numbers in errors", () => {
    expect(() => parseEndpointList("ok.example\n\nnot_valid")).toThrow(/line 3/);
  });
});

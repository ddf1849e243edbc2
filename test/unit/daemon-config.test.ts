// daemon.yml: defaults, resolved paths, and every error naming FILE:LINE:COLUMN.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  isCgroupRoot,
  loadDaemonConfig,
  parseDaemonConfig,
  parseListen,
} from "../../src/daemon/config.js";

const FILE = "/etc/dpndncy/daemon.yml";

function error(text: string): string {
  try {
    parseDaemonConfig(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("daemon.yml", () => {
  it("fills in the defaults and resolves paths against the file's directory", () => {
    const c = parseDaemonConfig("jobsDir: jobs\npolicyDir: /srv/policies\n", FILE);
    expect(c).toEqual({
      file: FILE,
      mode: "observe",
      jobsDir: "/etc/dpndncy/jobs",
      stateDir: "/etc/dpndncy/jobs/.dpndncy-daemon",
      policyDir: "/srv/policies",
      jobIdleSeconds: 10,
      jobMarkers: ["CI_JOB_ID", "RUNNER_TRACKING_ID", "BUILDKITE_JOB_ID", "DPNDNCY_JOB"],
      dnsResolvers: [],
      allowMetadata: false,
      stdout: true,
    });
  });

  it("reads every field", () => {
    const c = parseDaemonConfig(
      [
        "agent: bin/dpndncy-agent",
        "mode: enforce",
        "jobsDir: /var/lib/dpndncy/jobs",
        "cgroup: /sys/fs/cgroup/system.slice",
        "jobIdleSeconds: 30",
        "dnsResolvers: [127.0.0.53, '::1']",
        "allowMetadata: true",
        "metrics: {listen: '[::1]:9464'}",
        "webhook: {url: 'https://hooks.example/d', secretFile: secret}",
        "signing: {identityTokenFile: /run/token, fulcioUrl: 'https://f.example', tsaUrl: 'https://t.example'}",
        "stdout: false",
      ].join("\n"),
      FILE,
    );
    expect(c).toMatchObject({
      agent: "/etc/dpndncy/bin/dpndncy-agent",
      mode: "enforce",
      cgroup: "/sys/fs/cgroup/system.slice",
      jobIdleSeconds: 30,
      dnsResolvers: ["127.0.0.53", "::1"],
      allowMetadata: true,
      metrics: { host: "::1", port: 9464 },
      webhook: {
        url: "https://hooks.example/d",
        secretFile: "/etc/dpndncy/secret",
        timeoutMs: 5000,
        maxAttempts: 8,
        queueLimit: 10000,
      },
      signing: {
        kind: "keyless",
        identityTokenFile: "/run/token",
        fulcioUrl: "https://f.example",
        tsaUrl: "https://t.example",
      },
      stdout: false,
    });
  });

  it("names the line and column of an unknown key", () => {
    expect(error("jobsDir: /j\nmetrics:\n  listen: 127.0.0.1:1\n  lisen: x\n")).toBe(
      `${FILE}:4:3: metrics: unknown key "lisen"`,
    );
  });

  it("names the line and column of a wrong value", () => {
    expect(error("jobsDir: /j\nmode: learn\n")).toBe(
      `${FILE}:2:7: mode must be equal to one of the allowed values`,
    );
    expect(error("jobsDir: /j\njobIdleSeconds: 0\n")).toBe(
      `${FILE}:2:17: jobIdleSeconds must be >= 1`,
    );
  });

  it("invalid YAML", () => {
    expect(error("jobsDir: /j\nmode: [observe\n")).toMatch(
      /^\/etc\/dpndncy\/daemon\.yml:3:1: invalid YAML/,
    );
  });

  it("requires jobsDir, and cgroup in enforce mode", () => {
    expect(error("mode: observe\n")).toBe(`${FILE}:1:1: daemon.yml needs "jobsDir"`);
    expect(error("jobsDir: /j\nmode: enforce\n")).toBe(
      `${FILE}:1:1: mode enforce needs cgroup (the cgroup the jobs run under)`,
    );
  });

  it("refuses a cgroup v2 root", () => {
    expect(error("jobsDir: /j\nmode: enforce\ncgroup: /sys/fs/cgroup/\n")).toMatch(
      /^\/etc\/dpndncy\/daemon\.yml:3:9: cgroup: \/sys\/fs\/cgroup is a cgroup v2 root/,
    );
    // a root mounted elsewhere: cgroup.controllers without cgroup.type
    const files = new Set([
      "/mnt/cg/cgroup.controllers",
      "/mnt/cg/x/cgroup.controllers",
      "/mnt/cg/x/cgroup.type",
    ]);
    const exists = (p: string) => files.has(p);
    expect(isCgroupRoot("/mnt/cg", exists)).toBe(true);
    expect(isCgroupRoot("/mnt/cg/x", exists)).toBe(false);
    expect(isCgroupRoot("/sys/fs/cgroup/system.slice", () => false)).toBe(false);
  });

  it("checks resolvers, the metrics address and the webhook URL where they are", () => {
    expect(error("jobsDir: /j\ndnsResolvers:\n  - 1.1.1.1\n  - dns.example\n")).toBe(
      `${FILE}:4:5: dnsResolvers: "dns.example" is not an IP address`,
    );
    expect(error("jobsDir: /j\nmetrics: {listen: '::1:9464'}\n")).toBe(
      `${FILE}:2:19: metrics.listen: "::1:9464" is not host:port (IPv6 in brackets)`,
    );
    expect(error("jobsDir: /j\nmetrics:\n  listen: '[fe80::1::2]:9464'\n")).toBe(
      `${FILE}:3:11: metrics.listen: "[fe80::1::2]:9464" is not host:port (IPv6 in brackets)`,
    );
    expect(error("jobsDir: /j\nwebhook: {url: 'ftp://x', secretFile: s}\n")).toMatch(
      /^\/etc\/dpndncy\/daemon\.yml:2:16: webhook\.url must match pattern/,
    );
  });

  it("signing: a key or a token with its instance, not both", () => {
    const msg = /signing: give either key, or identityTokenFile with fulcioUrl/;
    expect(error("jobsDir: /j\nsigning:\n  key: k.pem\n  identityTokenFile: t\n")).toMatch(
      new RegExp(`^${FILE}:3:3: ${msg.source}`),
    );
    expect(error("jobsDir: /j\nsigning:\n  identityTokenFile: t\n")).toMatch(msg);
    expect(
      error("jobsDir: /j\nsigning:\n  identityTokenFile: t\n  fulcioUrl: https://f\n"),
    ).toMatch(msg);
    expect(parseDaemonConfig("jobsDir: /j\nsigning: {key: k.pem}\n", FILE).signing).toEqual({
      kind: "key",
      key: "/etc/dpndncy/k.pem",
    });
  });

  it("jobMarkers: at most 4 variable names", () => {
    expect(parseDaemonConfig("jobsDir: /j\njobMarkers: [BUILD_TAG]\n", FILE).jobMarkers).toEqual([
      "BUILD_TAG",
    ]);
    expect(error("jobsDir: /j\njobMarkers: [A, B, C, D, E]\n")).toBe(
      `${FILE}:2:13: jobMarkers must NOT have more than 4 items`,
    );
    expect(error("jobsDir: /j\njobMarkers: ['A=1']\n")).toMatch(/:2:14: jobMarkers\.0 must match/);
  });

  it("parseListen", () => {
    expect(parseListen("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListen("[::1]:9464")).toEqual({ host: "::1", port: 9464 });
    expect(parseListen("localhost:9464")).toEqual({ host: "localhost", port: 9464 });
    expect(parseListen("localhost:70000")).toBeUndefined();
    expect(parseListen("::1:9464")).toBeUndefined();
  });

  it("an unreadable file names itself", () => {
    expect(() => loadDaemonConfig("/nonexistent/daemon.yml")).toThrow(
      "/nonexistent/daemon.yml: cannot read daemon config: ENOENT",
    );
  });

  it("the example in deploy/systemd is valid", () => {
    const file = join(import.meta.dirname, "../../deploy/systemd/daemon.yml");
    const c = loadDaemonConfig(file);
    expect(c.jobsDir).toBe("/var/lib/dpndncy/jobs");
  });
});

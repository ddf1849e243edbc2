import { join } from "node:path";
import { dsse } from "@sigstore/core";
import { describe, expect, it } from "vitest";
import { preAuthEncoding } from "../../src/attest/dsse.js";
import {
  buildStatement,
  commitSubject,
  PREDICATE_TYPE,
  STANDARD_PREDICATE_TYPE,
  standardRuntimeTraceStatement,
} from "../../src/attest/statement.js";
import { summarizeFile } from "../../src/trace/summarize.js";

const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");
const SHA = "0123456789abcdef0123456789abcdef01234567";

describe("DSSE PAE", () => {
  it("matches the golden vector of the DSSE spec (protocol.md)", () => {
    const pae = preAuthEncoding("http://example.com/HelloWorld", Buffer.from("hello world"));
    expect(pae.toString("utf8")).toBe("DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  });

  it("counts bytes, not characters, and agrees with @sigstore/core", () => {
    const body = Buffer.from("héllo\n\u0000", "utf8");
    const pae = preAuthEncoding("application/vnd.in-toto+json", body);
    expect(pae.subarray(0, 38).toString()).toBe("DSSEv1 28 application/vnd.in-toto+json");
    expect(pae.toString("utf8").includes(` ${body.length} `)).toBe(true);
    expect(pae.equals(dsse.preAuthEncoding("application/vnd.in-toto+json", body))).toBe(true);
  });
});

describe("in-toto v1 Statement", () => {
  it("binds the log by SHA-256 under its basename, and the commit where known", async () => {
    const ci = {
      platform: "github" as const,
      serverUrl: "https://github.com",
      repository: "acme/app",
      commit: SHA,
      ref: "refs/heads/main",
      runId: "77",
      runAttempt: "2",
      jobName: "build",
    };
    const p = await summarizeFile(FIXTURE, { ci });
    const s = buildStatement(p);
    expect(s._type).toBe("https://in-toto.io/Statement/v1");
    expect(s.predicateType).toBe(PREDICATE_TYPE);
    expect(s.subject).toEqual([
      { name: "attack.ndjson", digest: { sha256: p.log.sha256 } },
      { name: "git+https://github.com/acme/app@refs/heads/main", digest: { gitCommit: SHA } },
    ]);
    expect(s.predicate).toBe(p);
  });

  it("has only the log subject outside CI or without a full commit SHA", async () => {
    const p = await summarizeFile(FIXTURE);
    expect(buildStatement(p).subject).toHaveLength(1);
    expect(commitSubject({ platform: "gitlab", commit: "abc123" })).toBeNull();
    expect(commitSubject({ platform: "jenkins", commit: SHA.toUpperCase() })).toEqual({
      name: "git-commit",
      digest: { gitCommit: SHA },
    });
    expect(
      commitSubject({
        platform: "gitlab",
        serverUrl: "https://gitlab.example.com/",
        repository: "g/p",
        commit: SHA,
      }),
    ).toEqual({ name: "git+https://gitlab.example.com/g/p", digest: { gitCommit: SHA } });
  });

  it("maps onto the standard runtime-trace v0.2 shape", async () => {
    const ci = {
      platform: "github" as const,
      repository: "acme/app",
      runId: "77",
      runAttempt: "2",
      commit: SHA,
    };
    const p = await summarizeFile(FIXTURE, { ci });
    const s = standardRuntimeTraceStatement(p);
    expect(s.predicateType).toBe(STANDARD_PREDICATE_TYPE);
    expect(s.subject).toEqual(buildStatement(p).subject);
    expect(s.predicate.monitor.type).toBe("https://dpndncy.io/agent@0.1.0");
    expect(s.predicate.monitoredProcess).toEqual({
      hostID: "https://dpndncy.io/ci/github",
      type: "https://actions.github.io/buildtypes/workflow/v1",
      event: "https://github.com/acme/app/actions/runs/77/attempts/2",
    });
    expect(s.predicate.monitorLog.network).toContainEqual(
      expect.objectContaining({
        ip: "203.0.113.66",
        hostname: "collector.evil-cdn.example",
        port: 443,
        protocol: "tcp",
      }),
    );
    expect(s.predicate.monitorLog.fileAccess).toContainEqual(
      expect.objectContaining({ name: "/home/runner/.ssh/id_rsa" }),
    );
    expect(s.predicate.metadata).toEqual({
      buildStartedOn: "2026-11-20T10:00:00.000000000Z",
      buildFinishedOn: "2026-11-20T10:00:13.000000000Z",
    });
  });
});

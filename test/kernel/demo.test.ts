// `make demo` is one of the two commands at the top of the README: keep it working.
import { expect, it } from "vitest";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";

describeKernel("make demo (scripts/demo.sh)", () => {
  it("traces the attack-shaped workload, prints the summary, signs and verifies", async () => {
    const r = await run(["scripts/demo.sh"], { timeoutMs: 120_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // What the workload did is in the summary, as measured by the agent.
    expect(r.stdout).toContain("[workload] exfil POST sent to exfil.attacker.test");
    expect(r.stdout).toMatch(
      /192\.0\.2\.10:8080\/tcp \(c2\.attacker\.test, exfil\.attacker\.test\)/,
    );
    expect(r.stdout).toMatch(/home\/\.aws\/credentials +\[aws-credentials\] ×1 by cat/);
    expect(r.stdout).toMatch(/home\/\.npmrc +\[npmrc\] ×1 by cat/);
    expect(r.stdout).toContain("169.254.169.254:80/tcp");
    expect(r.stdout).toContain("integrity: agent stopped cleanly; log_sha256 verified");
    expect(r.stdout).toMatch(
      /^OK build\/demo\/events\.ndjson \(sha256 [0-9a-f]{64}\) is the attested log; the trace is complete and untampered$/m,
    );
    // The namespace it made is gone.
    const ns = await run(["ip", "netns", "list"]);
    expect(ns.stdout).not.toContain("dpndncy-demo-");
  });
});

// `dpndncy start` / `dpndncy stop` (the CLI the GitLab component and other CIs use), with the
// real agent: stop runs in a fresh process with nothing but the directory, as after_script does.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { AGENT, onCleanup, tempDir } from "../support/kernel/env.js";
import { readLog } from "../support/kernel/log.js";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run([process.execPath, "dist/cli.js", ...args], { env: { PATH: process.env.PATH, ...env } });

describeKernel("dpndncy start / stop", () => {
  it("start arms the agent, stop in another process seals the log and prints the GitLab section", async () => {
    const dir = join(tempDir("cli"), "trace");
    const sha = createHash("sha256").update(readFileSync(AGENT)).digest("hex");
    const gitlab = {
      GITLAB_CI: "true",
      CI_PROJECT_PATH: "group/app",
      CI_JOB_ID: "77",
      CI_COMMIT_SHA: "c".repeat(40),
    };
    const started = await cli(
      ["start", "--dir", dir, "--agent", AGENT, "--agent-sha256", sha],
      gitlab,
    );
    onCleanup(async () => {
      await run([AGENT, "stop", "--state-dir", join(dir, "state")]);
    });
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toMatch(/agent armed \(pid \d+, mode observe, platform gitlab\)/);
    expect(
      JSON.parse(readFileSync(join(dir, "session.json"), "utf8")).detection.identity,
    ).toMatchObject({
      platform: "gitlab",
      repository: "group/app",
      jobId: "77",
    });

    const w = await run(["/bin/sh", "-c", "/bin/true cli-session-marker"]);
    expect(w.code).toBe(0);

    const stopped = await cli(["stop", "--dir", dir], gitlab);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain("\x1b[0Ksection_start:");
    expect(stopped.stdout).toMatch(/section_start:\d+:dpndncy_summary\[collapsed=true\]/);
    expect(stopped.stdout).toMatch(/section_end:\d+:dpndncy_summary/);
    const log = readLog(join(dir, "events.ndjson"));
    expect(log.events.at(-1)).toMatchObject({ kind: "agent", event: "stop", complete: true });
    expect(
      log.events.some(
        (e) => e.kind === "exec" && (e.argv as string[]).includes("cli-session-marker"),
      ),
    ).toBe(true);
    expect(readFileSync(join(dir, "summary.md"), "utf8")).toContain("## dpndncy runtime trace");

    // Sign and verify, as a later job (or the same after_script) does.
    const a = await cli(["attest", join(dir, "events.ndjson"), "--generate-key"]);
    expect(a.code, a.stderr).toBe(0);
    const v = await cli([
      "verify",
      join(dir, "events.ndjson.sigstore.json"),
      "--log",
      join(dir, "events.ndjson"),
      "--key",
      join(dir, "events.ndjson.pub.pem"),
    ]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it("--mode learn arms the agent (it records as in observe mode; the policy comes from the log)", async () => {
    const dir = join(tempDir("cli-learn"), "trace");
    const started = await cli(["start", "--dir", dir, "--agent", AGENT, "--mode", "learn"]);
    onCleanup(async () => {
      await run([AGENT, "stop", "--state-dir", join(dir, "state")]);
    });
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toMatch(/agent armed \(pid \d+, mode learn,/);
    const stopped = await cli(["stop", "--dir", dir]);
    expect(stopped.code, stopped.stderr).toBe(0);
    const log = readLog(join(dir, "events.ndjson"));
    expect(log.events[0]).toMatchObject({ kind: "agent", event: "start", mode: "observe" });
    expect(log.events.at(-1)).toMatchObject({ kind: "agent", event: "stop", complete: true });
  });

  it("refuses an agent whose checksum does not match, before running it", async () => {
    const dir = join(tempDir("cli-bad"), "trace");
    const r = await cli([
      "start",
      "--dir",
      dir,
      "--agent",
      AGENT,
      "--agent-sha256",
      "f".repeat(64),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/has SHA-256 [0-9a-f]{64}, expected f{64}: refusing to run it/);
    expect(existsSync(join(dir, "session.json"))).toBe(false);
  });

  it("stop without a session names the directory; bad options are usage errors", async () => {
    const dir = tempDir("cli-none");
    const r = await cli(["stop", "--dir", dir]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`no session at ${dir}/session.json`);
    expect((await cli(["start", "--bogus"])).code).toBe(2);
    expect((await cli(["start", "--agent-url", "http://127.0.0.1:9/x"])).stderr).toContain(
      "needs --agent-sha256",
    );
  });
});

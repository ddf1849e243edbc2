// `dpndncy daemon` as a process (dist/cli.js, what a service manager runs) with the stand-in
// agent as its --agent: real SIGTERM/SIGHUP to the CLI, the metrics address on stdout, exit
// statuses; `--check` in process.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Io } from "../../src/cli/io.js";
import { main } from "../../src/cli.js";
import { SAMPLES } from "../support/daemon-samples.js";

const ROOT = join(import.meta.dirname, "../..");
const STAND_IN = join(ROOT, "test/support/daemon-agent-stand-in.mjs");

let dir: string;
const children: ChildProcess[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dpndncy-daemon-cli-"));
  mkdirSync(join(dir, "policies"));
  writeFileSync(
    join(dir, "policies", "default.yml"),
    "version: 1\negress:\n  allow: [github.com]\n",
  );
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (s) => out.push(s), err: (s) => err.push(s), env: process.env };
  const code = await main(argv, io);
  return { code, out: out.join(""), err: err.join("") };
}

function daemonProcess(steps: unknown[], onTerm?: unknown[]) {
  writeFileSync(
    join(dir, "daemon.yml"),
    "jobsDir: jobs\npolicyDir: policies\nmetrics: {listen: '127.0.0.1:0'}\n",
  );
  const record = join(dir, "record.json");
  writeFileSync(
    join(dir, "scenario.json"),
    JSON.stringify({ record, steps, ...(onTerm ? { onTerm } : {}) }),
  );
  const child = spawn(
    process.execPath,
    [join(ROOT, "dist/cli.js"), "daemon", "--config", join(dir, "daemon.yml"), "--agent", STAND_IN],
    {
      env: { ...process.env, DPNDNCY_STAND_IN_SCENARIO: join(dir, "scenario.json") },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(child);
  const lines: string[] = [];
  let err = "";
  createInterface({ input: child.stdout as NonNullable<typeof child.stdout> }).on("line", (l) =>
    lines.push(l),
  );
  child.stderr?.on("data", (b: Buffer) => {
    err += b.toString();
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    child,
    lines,
    err: () => err,
    exited,
    record: () => JSON.parse(readFileSync(record, "utf8")) as { signals: string[] },
  };
}

async function until(cond: () => boolean, ms = 15_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("dpndncy daemon (process)", () => {
  it("prints the metrics address, reloads on SIGHUP, stops on SIGTERM with exit 0", async () => {
    const p = daemonProcess([{ print: SAMPLES["daemon-start"] }, { print: SAMPLES["job-start"] }]);
    await until(() => p.lines.length >= 2, 15_000, "metrics and job-start lines");
    const metrics = JSON.parse(p.lines[0] ?? "").metrics as string;
    expect(metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(JSON.parse(p.lines[1] ?? "")).toEqual(SAMPLES["job-start"]);
    const text = await (await fetch(metrics)).text();
    expect(text).toMatch(/^dpndncy_jobs_active 1$/m);

    p.child.kill("SIGHUP");
    await until(() => p.err().includes("agent loaded the policies"), 15_000, "the reload");
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(p.record().signals).toEqual(["SIGHUP", "SIGTERM"]);
    expect(p.err()).toMatch(/SIGHUP: 1 policies compiled; telling the agent/);
  });

  it("exits 1 when the agent dies", async () => {
    const p = daemonProcess([{ print: SAMPLES["daemon-start"] }, { sleep: 100 }, { exit: 2 }]);
    expect(await p.exited).toBe(1);
    expect(p.err()).toMatch(/THE AGENT DIED UNEXPECTEDLY \(exit status 2\)/);
  });

  it("--check validates and prints what would run, starting nothing", async () => {
    writeFileSync(
      join(dir, "daemon.yml"),
      "jobsDir: jobs\npolicyDir: policies\nmode: enforce\ncgroup: /sys/fs/cgroup/ci.slice\n",
    );
    const r = await cli([
      "daemon",
      "--config",
      join(dir, "daemon.yml"),
      "--check",
      "--agent",
      STAND_IN,
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const state = join(dir, "jobs", ".dpndncy-daemon");
    expect(r.out).toContain(
      `would run: ${STAND_IN} daemon --jobs-dir ${join(dir, "jobs")} --config ${join(state, "agent.conf")} --state-dir ${join(state, "agent")} --mode enforce --cgroup /sys/fs/cgroup/ci.slice --policy-dir ${join(state, "policies")} --job-idle 10\n`,
    );
    expect(r.out).toContain("  default.yml -> default.conf (1 allow entries)\n");
    expect(r.out).toContain("signing: NONE: job logs would NOT be signed\n");
    expect(r.out).toContain("  job-marker CI_JOB_ID gitlab\n");

    writeFileSync(join(dir, "policies", "default.yml"), "version: 1\negress:\n  allow: ['*']\n");
    const bad = await cli([
      "daemon",
      "--config",
      join(dir, "daemon.yml"),
      "--check",
      "--agent",
      STAND_IN,
    ]);
    expect(bad.code).toBe(3);
    expect(bad.err).toMatch(
      new RegExp(`^dpndncy daemon: ${join(dir, "policies", "default.yml")}:3:11: invalid endpoint`),
    );
  });

  it("--check reads the webhook secret and the signing material", async () => {
    writeFileSync(
      join(dir, "daemon.yml"),
      "jobsDir: jobs\nwebhook: {url: 'http://127.0.0.1:9/h', secretFile: secret}\n",
    );
    const check = () =>
      cli(["daemon", "--config", join(dir, "daemon.yml"), "--check", "--agent", STAND_IN]);
    const noSecret = await check();
    expect(noSecret.code).toBe(3);
    expect(noSecret.err).toBe(
      `dpndncy daemon: webhook.secretFile ${join(dir, "secret")}: cannot read: ENOENT\n`,
    );
    writeFileSync(
      join(dir, "daemon.yml"),
      "jobsDir: jobs\nsigning: {identityTokenFile: token, fulcioUrl: 'https://f.example', tsaUrl: 'https://t.example'}\n",
    );
    const noToken = await check();
    expect(noToken.code).toBe(0);
    expect(noToken.out).toContain(
      `signing: keyless (token ${join(dir, "token")}, Fulcio https://f.example)\n  WARNING: signing.identityTokenFile ${join(dir, "token")}: ENOENT: signing will fail until it can be read\n`,
    );
  });

  it("usage and configuration errors", async () => {
    expect((await cli(["daemon"])).code).toBe(2);
    writeFileSync(join(dir, "daemon.yml"), "jobsDir: jobs\nmode: enforce\n");
    const r = await cli(["daemon", "--config", join(dir, "daemon.yml"), "--agent", STAND_IN]);
    expect(r.code).toBe(3);
    expect(r.err).toBe(
      `dpndncy daemon: ${join(dir, "daemon.yml")}:1:1: mode enforce needs cgroup (the cgroup the jobs run under)\n`,
    );
    writeFileSync(join(dir, "daemon.yml"), "jobsDir: jobs\n");
    const noAgent = await cli([
      "daemon",
      "--config",
      join(dir, "daemon.yml"),
      "--agent",
      join(dir, "none"),
    ]);
    expect(noAgent.code).toBe(5);
    expect(noAgent.err).toBe(
      `dpndncy daemon: agent ${join(dir, "none")} is not an executable file\n`,
    );
  });
});

// The release path end to end, through the bundled action exactly as a user gets it: dist/ as
// committed (pre.js, post.js, …) with a release pin (dist/release.json) naming a local server
// that serves GitHub's release layout (/<owner>/<repo>/releases/download/v<version>/<file>).
// No agent-url or agent-sha256 input: the runner's architecture picks the file, the digest
// shipped in the action decides whether it may run.
import { createHash } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parse } from "yaml";
import { newJob } from "../support/action/runner.js";
import { AGENT, onCleanup, tempDir } from "../support/kernel/env.js";
import { readLog } from "../support/kernel/log.js";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";
import { snippet } from "../support/readme.js";

const VERSION = JSON.parse(readFileSync("package.json", "utf8")).version as string;
const LAYOUT = `/dpndncy/agent/releases/download/v${VERSION}`;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let server: Server;
let base = "";
/** what the release server serves, by file name */
const assets = new Map<string, Buffer>();
/** every path the server was asked for */
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const name = req.url?.startsWith(`${LAYOUT}/`) ? req.url.slice(LAYOUT.length + 1) : "";
    const body = assets.get(name);
    if (body) res.end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
});

/** A copy of the committed dist/ whose release pin names the local server and these digests. */
function actionWithPin(root: string, sha256: Record<string, string | null>): string {
  const dist = join(root, "action-dist");
  cpSync("dist", dist, { recursive: true });
  const committed = JSON.parse(readFileSync("dist/release.json", "utf8"));
  writeFileSync(
    join(dist, "release.json"),
    JSON.stringify({
      ...committed,
      baseUrl: `${base}${LAYOUT}`,
      sha256: { ...committed.sha256, ...sha256 },
    }),
  );
  return dist;
}

function githubEnv(root: string, runnerArch: string): NodeJS.ProcessEnv {
  const event = join(root, "event.json");
  writeFileSync(event, JSON.stringify({ repository: { full_name: "acme/app", private: false } }));
  return {
    GITHUB_REPOSITORY: "acme/app",
    GITHUB_RUN_ID: "77",
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_JOB: "build",
    GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567",
    GITHUB_EVENT_PATH: event,
    RUNNER_ARCH: runnerArch,
  };
}

/** A stand-in "agent" that leaves a marker when executed: proves a refused file never ran. */
function markerAgent(root: string): { bytes: Buffer; marker: string } {
  const marker = join(root, "the-refused-binary-ran");
  return { bytes: Buffer.from(`#!/bin/sh\ntouch ${marker}\n`), marker };
}

describeKernel("release download through dist/ (release layout server, pinned digests)", () => {
  it('README snippet("quickstart-github"), no inputs: an x64 runner downloads the amd64 release file, verifies it and runs it', async () => {
    // the one-liner as a reader pastes it: the step, and no `with:`
    const steps = parse(snippet("quickstart-github").body) as { uses: string; with?: unknown }[];
    expect(steps).toEqual([{ uses: "dpndncy/agent@v1" }]);
    const agent = readFileSync(AGENT);
    const decoy = markerAgent(tempDir("release-decoy"));
    assets.clear();
    assets.set("dpndncy-agent-linux-amd64", agent);
    assets.set("dpndncy-agent-linux-arm64", decoy.bytes);
    const root = tempDir("release-ok");
    const dist = actionWithPin(root, {
      "dpndncy-agent-linux-amd64": sha(agent),
      "dpndncy-agent-linux-arm64": sha(decoy.bytes),
    });
    requests.length = 0;
    const job = newJob(root, {}, githubEnv(root, "X64"), dist);
    const pre = await job.stage("pre");
    onCleanup(async () => {
      const s = job.state();
      if (s.agent && s.state_dir) await run([s.agent, "stop", "--state-dir", s.state_dir]);
    });
    expect(pre.code, pre.stdout + pre.stderr).toBe(0);
    expect(pre.stdout).toMatch(/dpndncy agent armed in \d+ ms \(pid \d+, downloaded binary/);
    expect(requests).toEqual([`${LAYOUT}/dpndncy-agent-linux-amd64`]);
    // the agent that runs is the release file, byte for byte, from the tool cache
    const state = job.state();
    expect(state.agent).toContain(join(root, "toolcache", "dpndncy-agent", VERSION, "amd64"));
    expect(sha(readFileSync(state.agent ?? ""))).toBe(sha(agent));
    await run(["/bin/true", "release-download-step"], { env: { ...job.env, GITHUB_ACTION: "s1" } });
    // post without signing or upload: neither is what this test is about (action-e2e.test.ts)
    job.env.INPUT_SIGN = "none";
    job.env["INPUT_UPLOAD-ARTIFACT"] = "false";
    const post = await job.stage("post");
    expect(post.code, post.stdout + post.stderr).toBe(0);
    const log = readLog(job.outputs().log ?? "");
    expect(
      log.events.some(
        (e) => e.kind === "exec" && (e.argv as string[])[1] === "release-download-step",
      ),
    ).toBe(true);
    expect(existsSync(decoy.marker)).toBe(false);
  });

  it("a release file that does not have the pinned digest fails pre before it is executed", async () => {
    const root = tempDir("release-bad");
    const evil = markerAgent(root);
    assets.clear();
    assets.set("dpndncy-agent-linux-arm64", evil.bytes);
    // the pin is of the genuine arm64 agent; the server (a compromised release) serves another
    const dist = actionWithPin(root, { "dpndncy-agent-linux-arm64": "e".repeat(64) });
    requests.length = 0;
    const job = newJob(root, { sign: "none" }, githubEnv(root, "ARM64"), dist);
    const pre = await job.stage("pre");
    expect(pre.code).not.toBe(0);
    expect(requests).toEqual([`${LAYOUT}/dpndncy-agent-linux-arm64`]);
    expect(pre.stdout).toMatch(
      new RegExp(
        `::error::dpndncy: could not start the agent: agent binary .* has SHA-256 ${sha(evil.bytes)}, expected ${"e".repeat(64)}: refusing to run it`,
      ),
    );
    expect(existsSync(evil.marker)).toBe(false);
    expect(existsSync(join(root, "toolcache", "dpndncy-agent"))).toBe(false);
    expect(job.state()).toEqual({});
  });

  it("an architecture without a release agent is a clear error, and nothing is downloaded", async () => {
    const root = tempDir("release-arch");
    assets.clear();
    const dist = actionWithPin(root, { "dpndncy-agent-linux-amd64": "a".repeat(64) });
    requests.length = 0;
    const job = newJob(root, { sign: "none" }, githubEnv(root, "ARM"), dist);
    const pre = await job.stage("pre");
    expect(pre.code).not.toBe(0);
    expect(pre.stdout).toMatch(
      /::error::dpndncy: could not start the agent: this runner's architecture is ARM \(RUNNER_ARCH\); dpndncy releases have an agent for Linux amd64 and arm64 only .*Set agent-url and agent-sha256/,
    );
    expect(requests).toEqual([]);
    expect(readdirSync(join(root, "temp")).filter((f) => f !== "dpndncy")).toEqual([]);
  });

  // dist/ as committed: a development commit pins nothing, a release commit pins every file
  const committed = JSON.parse(readFileSync("dist/release.json", "utf8")) as {
    sha256: Record<string, string | null>;
  };
  const pinned = Object.values(committed.sha256).every((d) => d !== null);

  it.runIf(pinned)("a release commit's dist/ pins every release file", () => {
    expect(Object.values(committed.sha256).every((d) => /^[0-9a-f]{64}$/.test(d ?? ""))).toBe(true);
  });

  it.runIf(!pinned)(
    "the committed dist/ of a development commit (nothing pinned) says to use a release",
    async () => {
      expect(Object.values(committed.sha256)).toEqual([null, null, null]);
      const root = tempDir("release-dev");
      requests.length = 0;
      const job = newJob(root, { sign: "none" }, githubEnv(root, "X64"));
      const pre = await job.stage("pre");
      expect(pre.code).not.toBe(0);
      expect(pre.stdout).toMatch(
        /no released agent pinned for amd64: it is a development commit, not a release\. Use a release \(uses: dpndncy\/agent@v1\) or set agent-url and agent-sha256/,
      );
      expect(requests).toEqual([]);
    },
  );
});

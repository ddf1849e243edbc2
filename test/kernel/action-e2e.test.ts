// The GitHub Action end to end, through the bundled dist/ entry points exactly as the runner
// runs them: pre (download + verify + start the real agent), two steps, post (stop,
// summarize, keyless signing through a local OIDC + Fulcio/Rekor stand-in, job summary,
// outputs, the trace artifact uploaded to a local artifact service stand-in), then
// `dpndncy verify` on what post wrote.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { newJob, startOidcStandIn } from "../support/action/runner.js";
import {
  type ArtifactStandIn,
  startArtifactStandIn,
} from "../support/artifact/artifact-stand-in.js";
import { readZip } from "../support/artifact/zip.js";
import { AGENT, onCleanup, tempDir } from "../support/kernel/env.js";
import { readLog } from "../support/kernel/log.js";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";
import {
  mintIdentityToken,
  type SigstoreStandIn,
  startSigstoreStandIn,
} from "../support/sigstore-stand-in.js";

const ISSUER = "https://token.actions.githubusercontent.com";
const WORKFLOW_REF = "acme/app/.github/workflows/ci.yml@refs/heads/main";
const IDENTITY = `https://github.com/${WORKFLOW_REF}`;

let sigstore: SigstoreStandIn;
let artifacts: ArtifactStandIn;
let oidc: Awaited<ReturnType<typeof startOidcStandIn>>;
let files: Server;
let filesUrl = "";
let agentSha = "";
let tcp: Server;
/** A stand-in of the REST jobs API: GET /repos/{repo}/actions/runs/{id}/attempts/{n}/jobs. */
const jobsApi = {
  url: "",
  steps: [] as unknown[],
  auth: [] as string[],
  server: undefined as Server | undefined,
};
let tcpPort = 0;

beforeAll(async () => {
  sigstore = await startSigstoreStandIn();
  artifacts = await startArtifactStandIn();
  oidc = await startOidcStandIn("req-token", (aud) =>
    mintIdentityToken({ iss: ISSUER, sub: IDENTITY, aud }),
  );
  const agentBytes = readFileSync(AGENT);
  agentSha = createHash("sha256").update(agentBytes).digest("hex");
  files = createServer((req, res) => {
    if (req.url === "/dpndncy-agent") res.end(agentBytes);
    else if (req.url === "/tampered") res.end(Buffer.concat([agentBytes, Buffer.from("x")]));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  jobsApi.server = createServer((req, res) => {
    jobsApi.auth.push(req.headers.authorization ?? "");
    if (req.url?.startsWith("/repos/acme/app/actions/runs/4242/attempts/1/jobs")) {
      const other = { name: "lint", status: "in_progress", runner_name: "runner-9", steps: [] };
      const self = {
        name: "build",
        status: "in_progress",
        runner_name: "runner-7",
        steps: jobsApi.steps,
      };
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ total_count: 2, jobs: [other, self] }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => jobsApi.server?.listen(0, "127.0.0.1", r));
  jobsApi.url = `http://127.0.0.1:${(jobsApi.server.address() as AddressInfo).port}`;
  tcp = createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  tcpPort = (tcp.address() as AddressInfo).port;
});
afterAll(async () => {
  await sigstore?.close();
  await artifacts?.close();
  await oidc?.close();
  await new Promise((r) => files?.close(r));
  await new Promise((r) => tcp?.close(r));
  await new Promise((r) => jobsApi.server?.close(r));
});

function githubEnv(root: string): NodeJS.ProcessEnv {
  const event = join(root, "event.json");
  writeFileSync(
    event,
    JSON.stringify({ repository: { full_name: "acme/app", private: false, visibility: "public" } }),
  );
  return {
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_REPOSITORY: "acme/app",
    GITHUB_RUN_ID: "4242",
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_JOB: "build",
    GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567",
    GITHUB_REF: "refs/heads/main",
    GITHUB_WORKFLOW_REF: WORKFLOW_REF,
    GITHUB_EVENT_PATH: event,
    ACTIONS_ID_TOKEN_REQUEST_URL: oidc.url,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: "req-token",
  };
}

/** A step as the runner starts it: its own shell, GITHUB_ACTION set to the step id. */
async function step(env: NodeJS.ProcessEnv, id: string, home: string, marker: string) {
  const script = [
    `/bin/true ${marker}`,
    `python3 -c 'import socket; s=socket.create_connection(("127.0.0.1", ${tcpPort})); s.close()'`,
    "getent ahosts localhost >/dev/null",
    'cat "$HOME/.aws/credentials" >/dev/null',
  ].join("; ");
  const r = await run(["/bin/sh", "-c", script], {
    env: { ...env, GITHUB_ACTION: id, HOME: home },
  });
  expect(r.code, r.stderr).toBe(0);
}

describeKernel("GitHub Action end to end (dist/ pre → steps → post)", () => {
  it("observes two steps, writes the summary and outputs, and signs a bundle that verifies", async () => {
    const root = tempDir("action");
    const home = join(root, "home");
    mkdirSync(join(home, ".aws"), { recursive: true });
    writeFileSync(join(home, ".aws/credentials"), "[default]\naws_access_key_id=AKIAFAKE\n");
    const job = newJob(
      root,
      {
        mode: "observe",
        sign: "keyless",
        "fulcio-url": sigstore.fulcioURL,
        "rekor-url": sigstore.rekorURL,
        "agent-url": `${filesUrl}/dpndncy-agent`,
        "agent-sha256": agentSha,
        "upload-artifact": "true",
      },
      {
        ...githubEnv(root),
        ACTIONS_RUNTIME_TOKEN: artifacts.token,
        ACTIONS_RESULTS_URL: artifacts.url,
        GITHUB_API_URL: jobsApi.url,
        RUNNER_NAME: "runner-7",
        "INPUT_GITHUB-TOKEN": "ghs_jobs_read",
        // what the runner sets for a step of dpndncy/agent@v1 (the summary pins our CLI)
        GITHUB_ACTION_REPOSITORY: "dpndncy/agent",
        GITHUB_ACTION_REF: "v1",
      },
    );
    const pre = await job.stage("pre");
    onCleanup(async () => {
      // Whatever happened, never leave the agent running.
      const s = job.state();
      if (s.agent && s.state_dir) await run([s.agent, "stop", "--state-dir", s.state_dir]);
    });
    expect(pre.code, pre.stdout + pre.stderr).toBe(0);
    expect(pre.stdout).toMatch(/dpndncy agent armed in \d+ ms/);
    console.log(`pre: ${/dpndncy agent armed in \d+ ms[^\n]*binary/.exec(pre.stdout)?.[0]}`);
    const main = await job.stage("main");
    expect(main.code).toBe(0);
    expect(main.stdout).not.toContain("pre stage did not run");

    // The jobs API reports whole seconds: keep the two steps in different seconds.
    const t0 = new Date();
    await step(job.env, "install", home, "m-install");
    const t1 = new Date();
    await new Promise((r) => setTimeout(r, 1100 - (Date.now() % 1000)));
    const t2 = new Date();
    await step(job.env, "__run_2", home, "m-run2");
    const t3 = new Date();
    const sec = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;
    jobsApi.steps = [
      { name: "Install dependencies", number: 2, started_at: sec(t0), completed_at: sec(t1) },
      { name: "Run the tests", number: 3, started_at: sec(t2), completed_at: sec(t3) },
      { name: "Post dpndncy", number: 4, started_at: sec(new Date()), completed_at: null },
    ];

    const post = await job.stage("post");
    expect(post.code, post.stdout + post.stderr).toBe(0);
    expect(post.stdout).not.toMatch(/::error::/);

    const out = job.outputs();
    expect(out.log).toBe(join(root, "temp/dpndncy/events.ndjson"));
    expect(out.statement).toBe(`${out.log}.intoto.json`);
    expect(out.bundle).toBe(`${out.log}.sigstore.json`);
    expect(out.blocked).toBe("0");
    const log = readLog(out.log ?? "");
    const counts = JSON.parse(out.events ?? "{}") as Record<string, number>;
    expect(counts.exec).toBe(log.events.filter((e) => e.kind === "exec").length);
    // Both steps' work is in the log.
    const execs = log.events
      .filter((e) => e.kind === "exec")
      .map((e) => (e.argv as string[]).join(" "));
    expect(execs).toContain("/bin/true m-install");
    expect(execs).toContain("/bin/true m-run2");

    // The artifact went through the service's protocol (Twirp + Azure block upload) and holds
    // exactly the three files, byte for byte.
    expect(post.stdout).toContain("dpndncy: uploaded artifact dpndncy-trace-build-attempt1");
    expect(artifacts.calls).toEqual([
      "CreateArtifact",
      "PUT block",
      "PUT blocklist",
      "FinalizeArtifact",
    ]);
    const zip = readZip(artifacts.content("dpndncy-trace-build-attempt1") ?? Buffer.alloc(0));
    expect([...zip.keys()].sort()).toEqual([
      "events.ndjson",
      "events.ndjson.intoto.json",
      "events.ndjson.sigstore.json",
    ]);
    for (const f of [out.log, out.statement, out.bundle]) {
      expect(zip.get(basename(f ?? ""))?.equals(readFileSync(f ?? ""))).toBe(true);
    }

    const summary = job.summary();
    expect(summary).toContain("## dpndncy runtime trace");
    expect(summary).not.toContain("incomplete");
    expect(summary).toContain(`| 127.0.0.1 | ${tcpPort} | tcp |`);
    expect(summary).toContain(`${home}/.aws/credentials`);
    expect(summary).toContain("aws-credentials");
    // Step attribution: each row names the steps (GITHUB_ACTION) that caused it.
    const row = (needle: string) => summary.split("\n").find((l) => l.includes(needle)) ?? "";
    for (const r of [row(`| 127.0.0.1 | ${tcpPort} | tcp |`), row(`${home}/.aws/credentials`)]) {
      // ids mapped to the names the user wrote, through the jobs API (a local stand-in)
      expect(r).toContain("Install dependencies (install)");
      expect(r).toContain("Run the tests (\\_\\_run\\_2)"); // __run_2, markdown-escaped
    }
    expect(jobsApi.auth).toEqual(["Bearer ghs_jobs_read"]);
    // the summary opens with the verdict, linking the artifact and the transparency-log entry
    const verdict = summary.split("\n")[2] ?? "";
    expect(verdict).toMatch(
      /^dpndncy: \*\*sensitive reads \d+\*\* · signed \(\[transparency log entry \d+\]\(http:\/\/127\.0\.0\.1:\d+\/api\/v1\/log\/entries\?logIndex=\d+\)\) · artifact \[dpndncy-trace-build-attempt1\]\(https:\/\/github\.com\/acme\/app\/actions\/runs\/4242\/artifacts\/\d+\)$/,
    );
    expect(out.artifact).toBe("dpndncy-trace-build-attempt1");
    // the verify commands: our CLI by digest, the identity the certificate holds
    const cliSha = createHash("sha256").update(readFileSync("dist/cli.js")).digest("hex");
    expect(summary).toContain(
      `curl -fsSLo cli.js https://github.com/dpndncy/agent/raw/v1/dist/cli.js\necho '${cliSha}  cli.js' | sha256sum -c\n`,
    );
    // signed by an instance other than public-good (the stand-in): its trusted root is named
    expect(summary).toContain(
      `node cli.js verify events.ndjson.sigstore.json --log events.ndjson \\\n  --certificate-identity '${IDENTITY}' \\\n  --certificate-oidc-issuer ${ISSUER} \\\n  --trusted-root trusted_root.json\n`,
    );
    expect(oidc.audiences).toEqual(["sigstore"]);
    expect(sigstore.requests.some((p) => p.includes("signingCert"))).toBe(true);

    const rootFile = join(root, "trusted-root.json");
    writeFileSync(rootFile, JSON.stringify(sigstore.trustedRoot));
    const verify = await run([
      process.execPath,
      "dist/cli.js",
      "verify",
      out.bundle ?? "",
      "--log",
      out.log ?? "",
      "--certificate-identity",
      IDENTITY,
      "--certificate-oidc-issuer",
      ISSUER,
      "--trusted-root",
      rootFile,
    ]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it("an artifact service that answers 500 leaves post green with a warning naming the files", async () => {
    const down = await startArtifactStandIn();
    onCleanup(() => down.close());
    down.failWith = 500;
    const root = tempDir("action-artifact-500");
    const job = newJob(
      root,
      { "agent-url": `${filesUrl}/dpndncy-agent`, "agent-sha256": agentSha, sign: "none" },
      { ...githubEnv(root), ACTIONS_RUNTIME_TOKEN: down.token, ACTIONS_RESULTS_URL: down.url },
    );
    const pre = await job.stage("pre");
    onCleanup(async () => {
      const s = job.state();
      if (s.agent && s.state_dir) await run([s.agent, "stop", "--state-dir", s.state_dir]);
    });
    expect(pre.code, pre.stdout + pre.stderr).toBe(0);
    const post = await job.stage("post"); // the client retries 5 times over ~30 s
    expect(post.code, post.stdout + post.stderr).toBe(0);
    const out = job.outputs();
    const warning = post.stdout.split("\n").find((l) => l.includes("could not upload")) ?? "";
    expect(warning).toMatch(
      /^::warning::dpndncy: could not upload the trace artifact dpndncy-trace-build-attempt1 \(.*500/,
    );
    expect(warning).toContain(`the files are at ${out.log}, ${out.statement}`);
    expect(existsSync(out.log ?? "")).toBe(true);
    expect(existsSync(out.statement ?? "")).toBe(true);
    expect(down.calls.filter((c) => c === "CreateArtifact")).toHaveLength(5);
    expect(down.artifacts).toEqual([]);
    expect(post.stdout).not.toMatch(/::error::/);
  });

  it("matrix legs (same GITHUB_JOB) each upload their own artifact", async () => {
    const service = await startArtifactStandIn();
    onCleanup(() => service.close());
    const names: string[] = [];
    for (const matrix of ['{"node":20,"os":"ubuntu-24.04"}', '{"node":22,"os":"ubuntu-24.04"}']) {
      const root = tempDir("action-matrix");
      const job = newJob(
        root,
        {
          "agent-url": `${filesUrl}/dpndncy-agent`,
          "agent-sha256": agentSha,
          sign: "none",
          matrix, // what the input's default ${{ toJSON(matrix) }} gives each leg
        },
        {
          ...githubEnv(root),
          ACTIONS_RUNTIME_TOKEN: service.token,
          ACTIONS_RESULTS_URL: service.url,
        },
      );
      const pre = await job.stage("pre");
      onCleanup(async () => {
        const s = job.state();
        if (s.agent && s.state_dir) await run([s.agent, "stop", "--state-dir", s.state_dir]);
      });
      expect(pre.code, pre.stdout + pre.stderr).toBe(0);
      const post = await job.stage("post");
      expect(post.code, post.stdout + post.stderr).toBe(0);
      expect(post.stdout).not.toContain("could not upload");
      names.push(job.outputs().artifact ?? "");
      expect(job.summary().split("\n")[2]).toContain("**not signed** (sign: none)");
    }
    expect(names[0]).toMatch(/^dpndncy-trace-build-20-ubuntu-24\.04-[0-9a-f]{8}-attempt1$/);
    expect(names[1]).toMatch(/^dpndncy-trace-build-22-ubuntu-24\.04-[0-9a-f]{8}-attempt1$/);
    for (const n of names) expect(readZip(service.content(n) ?? Buffer.alloc(0)).size).toBe(2);
  });

  it("a wrong agent-sha256 or a tampered download fails pre and never starts the agent", async () => {
    for (const [url, sha] of [
      [`${filesUrl}/dpndncy-agent`, "0".repeat(64)],
      [`${filesUrl}/tampered`, agentSha],
    ] as const) {
      const root = tempDir("action-bad");
      const job = newJob(
        root,
        { "agent-url": url, "agent-sha256": sha, sign: "none" },
        githubEnv(root),
      );
      const pre = await job.stage("pre");
      expect(pre.code).not.toBe(0);
      expect(pre.stdout).toMatch(
        /::error::dpndncy: could not start the agent: agent binary .* has SHA-256 [0-9a-f]{64}, expected [0-9a-f]{64}: refusing to run it/,
      );
      expect(job.state()).toEqual({});
      expect(existsSync(join(root, "temp/dpndncy/state"))).toBe(false);
      // post after the failed pre: says so, does not throw, fails nothing more.
      const post = await job.stage("post");
      expect(post.code).toBe(0);
      expect(post.stdout).toContain("::error::dpndncy: the agent was never started in this job");
    }
  });

  it("a malformed policy file fails pre with its file:line:col, before the agent starts", async () => {
    const root = tempDir("action-policy");
    writeFileSync(
      join(root, "policy.yml"),
      "version: 1\negress:\n  allow:\n    - registry.npmjs.org\n    - '*bad.example'\n",
    );
    const job = newJob(
      root,
      {
        policy: "policy.yml",
        "agent-url": `${filesUrl}/dpndncy-agent`,
        "agent-sha256": agentSha,
        sign: "none",
      },
      { ...githubEnv(root), GITHUB_WORKSPACE: root },
    );
    const pre = await job.stage("pre");
    expect(pre.code).not.toBe(0);
    expect(pre.stdout).toContain(
      `${join(root, "policy.yml")}:5:7: invalid endpoint "*bad.example"`,
    );
    expect(job.state()).toEqual({});
    expect(existsSync(join(root, "temp/dpndncy/state"))).toBe(false);
  });

  it("sign: keyless without id-token permission says exactly how to fix it, and still reports", async () => {
    const root = tempDir("action-noid");
    const env = githubEnv(root);
    delete env.ACTIONS_ID_TOKEN_REQUEST_URL;
    delete env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    const job = newJob(
      root,
      {
        sign: "keyless",
        "agent-url": `${filesUrl}/dpndncy-agent`,
        "agent-sha256": agentSha,
        "upload-artifact": "false",
      },
      env,
    );
    const pre = await job.stage("pre");
    onCleanup(async () => {
      const s = job.state();
      if (s.agent && s.state_dir) await run([s.agent, "stop", "--state-dir", s.state_dir]);
    });
    expect(pre.code, pre.stdout).toBe(0);
    const post = await job.stage("post");
    expect(post.code).toBe(0);
    expect(post.stdout).toContain("the trace will NOT be signed");
    expect(post.stdout).toContain("id-token: write");
    expect(job.outputs().bundle).toBe("");
    expect(job.summary()).toContain("## dpndncy runtime trace");
  });
});

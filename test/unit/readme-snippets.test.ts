// Every fenced block of README.md is run (or, for a GitHub workflow, checked against the
// action it uses) as a reader would copy it, through the bundles a user runs (dist/cli.js):
// editing a block so it no longer works fails here. Each block is named by a
// `<!-- snippet: ID -->` line; RUN_BY says which test file runs it, and that file must say so.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { artifactName } from "../../src/action/artifact-name.js";
import { parseInputs } from "../../src/action/inputs.js";
import { signKeyless, staticToken } from "../../src/attest/sign.js";
import { buildStatement, serializeStatement } from "../../src/attest/statement.js";
import { summarizeFile } from "../../src/trace/summarize.js";
import { run } from "../support/kernel/proc.js";
import { readmeSnippets, snippet } from "../support/readme.js";
import {
  mintIdentityToken,
  type SigstoreStandIn,
  startSigstoreStandIn,
} from "../support/sigstore-stand-in.js";
import { startTufStandIn, type TufStandIn } from "../support/tuf-stand-in.js";

const REPO = join(import.meta.dirname, "../..");
const FIXTURE = join(REPO, "test/fixtures/attack.ndjson");
const CLI = join(REPO, "dist/cli.js");
const NODE_DIR = dirname(process.execPath);

/** Which test runs each README block (the file must contain `snippet("ID")`). */
const RUN_BY: Record<string, string> = {
  "make-targets": "test/unit/readme-snippets.test.ts",
  "github-usage": "test/unit/readme-snippets.test.ts",
  "github-verify": "test/unit/readme-snippets.test.ts",
  cli: "test/unit/readme-snippets.test.ts",
  "gitlab-verify": "test/unit/readme-snippets.test.ts",
  "gitlab-include": "test/kernel/gitlab-component.test.ts",
  "gitlab-artifacts": "test/kernel/gitlab-component.test.ts",
  "gitlab-learn-cache": "test/kernel/gitlab-component.test.ts",
  "gitlab-sign": "test/kernel/gitlab-component.test.ts",
  "quickstart-github": "test/kernel/release-download.test.ts",
  "quickstart-gitlab": "test/unit/release-pin.test.ts",
  "verify-download": "test/kernel/release.test.ts",
};

describe("README.md: every block is named and has a test that runs it", () => {
  it("no unnamed block, no block without a test, no test claiming a block that is gone", () => {
    const blocks = readmeSnippets();
    const unnamed = blocks.filter((b) => b.id === null).map((b) => `README.md:${b.line}`);
    expect(unnamed, "add <!-- snippet: ID --> above each block and a test for it").toEqual([]);
    const ids = blocks.map((b) => b.id as string);
    expect(new Set(ids).size, "snippet names are unique").toBe(ids.length);
    expect(ids.sort()).toEqual(Object.keys(RUN_BY).sort());
    for (const [id, file] of Object.entries(RUN_BY)) {
      expect(readFileSync(join(REPO, file), "utf8"), `${file} runs ${id}`).toContain(
        `snippet("${id}")`,
      );
    }
  });
});

let dir: string;
let sigstore: SigstoreStandIn;
let tuf: TufStandIn;
let cliServer: Server;
let cliUrl: string;
const cliSha256 = () => createHash("sha256").update(readFileSync(CLI)).digest("hex");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dpndncy-readme-"));
  sigstore = await startSigstoreStandIn();
  tuf = await startTufStandIn(sigstore.trustedRoot, dir);
  // dist/cli.js where a release (or the action repository) would serve it
  cliServer = createServer((req, res) => {
    if (req.url !== "/dist/cli.js") return void res.writeHead(404).end();
    res.writeHead(200).end(readFileSync(CLI));
  });
  await new Promise<void>((r) => cliServer.listen(0, "127.0.0.1", r));
  cliUrl = `http://127.0.0.1:${(cliServer.address() as AddressInfo).port}/dist/cli.js`;
});
afterAll(async () => {
  await sigstore?.close();
  await tuf?.close();
  await new Promise((r) => cliServer?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs a shell script as a reader would paste it: bash -e, in cwd, with Node 24 first on PATH.
 * Asynchronously: the servers it talks to live in this process.
 */
async function sh(script: string, cwd: string, env: Record<string, string>) {
  const r = await run(["bash", "-e", "-c", script], {
    cwd,
    env: {
      PATH: `${NODE_DIR}:${process.env.PATH}`,
      HOME: join(dir, "home"),
      XDG_CACHE_HOME: join(dir, "cache"),
      ...env,
    },
    timeoutMs: 60_000,
  });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** A keyless bundle of the fixture log at `log`, signed as `identity` by the stand-in. */
async function signedTrace(log: string, identity: string, issuer: string): Promise<void> {
  mkdirSync(dirname(log), { recursive: true });
  copyFileSync(FIXTURE, log);
  const payload = serializeStatement(buildStatement(await summarizeFile(log, { ci: null })));
  const bundle = await signKeyless(payload, {
    endpoints: { fulcioURL: sigstore.fulcioURL, rekorURL: sigstore.rekorURL },
    identityProvider: staticToken(mintIdentityToken({ iss: issuer, sub: identity })),
  });
  writeFileSync(`${log}.sigstore.json`, JSON.stringify(bundle));
}

describe("README blocks, run", () => {
  it('snippet("make-targets"): both make targets exist (make -n; the demo test and `make test` run them)', () => {
    for (const line of snippet("make-targets").body.trim().split("\n")) {
      const target = /^make (\w+)/.exec(line)?.[1];
      expect(target, line).toBeDefined();
      const r = spawnSync("make", ["-n", "--no-print-directory", target as string], {
        cwd: REPO,
        encoding: "utf8",
        env: { ...process.env, MAKEFLAGS: "" },
      });
      expect(r.status, r.stderr).toBe(0);
      // what each target runs is itself run by a test: scripts/demo.sh by
      // test/kernel/demo.test.ts, vitest by `make test` (this suite)
      expect(r.stdout).toContain(target === "demo" ? "scripts/demo.sh" : "vitest run");
    }
  });

  it('snippet("github-usage"): permissions as the action needs them, inputs the action has and accepts', () => {
    const wf = parseYaml(snippet("github-usage").body) as {
      permissions: Record<string, string>;
      jobs: Record<string, { steps: { uses?: string; with?: Record<string, unknown> }[] }>;
    };
    expect(wf.permissions).toMatchObject({
      contents: "read",
      "id-token": "write",
      actions: "read",
    });
    const action = parseYaml(readFileSync(join(REPO, "action.yml"), "utf8")) as {
      inputs: Record<string, { default?: string }>;
    };
    const steps = Object.values(wf.jobs).flatMap((j) => j.steps);
    expect(steps[0]?.uses, "the agent is the first step").toMatch(/^dpndncy\/agent@/);
    for (const s of steps.filter((x) => x.uses?.startsWith("dpndncy/agent@"))) {
      const given = Object.fromEntries(
        Object.entries(s.with ?? {}).map(([k, v]) => [k, String(v)]),
      );
      for (const k of Object.keys(given)) expect(Object.keys(action.inputs)).toContain(k);
      const values = (n: string) =>
        given[n] ??
        (String(action.inputs[n]?.default ?? "").startsWith("${{")
          ? ""
          : String(action.inputs[n]?.default ?? ""));
      expect(() => parseInputs(values)).not.toThrow();
    }
  });

  it('snippet("github-verify"): the later job verifies every matrix leg\'s artifact, and fails on a changed log', async () => {
    const job = Object.values(
      parseYaml(snippet("github-verify").body) as Record<string, unknown>,
    )[0] as {
      steps: {
        uses?: string;
        with?: { pattern?: string; path?: string };
        run?: string;
        env?: Record<string, string>;
      }[];
    };
    const download = job.steps.find((s) => s.uses?.startsWith("actions/download-artifact@"));
    const verify = job.steps.find((s) => s.run !== undefined);
    expect(download?.with?.pattern).toBeDefined();
    expect(verify?.env).toHaveProperty("DPNDNCY_CLI_URL");
    expect(verify?.env).toHaveProperty("DPNDNCY_CLI_SHA256");
    // what the build job uploaded, one artifact per matrix leg, as download-artifact lays
    // them out (`path`/<artifact name>/ when several match the pattern)
    const work = join(dir, "github-verify");
    const pattern = new RegExp(
      `^${(download?.with?.pattern ?? "").replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`,
    );
    const identity = "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main";
    const env = { GITHUB_JOB: "build", GITHUB_RUN_ATTEMPT: "1" };
    for (const matrix of ['{"os":"ubuntu-24.04","node":20}', '{"os":"ubuntu-24.04","node":22}']) {
      const name = artifactName(undefined, matrix, env);
      expect(name).toMatch(pattern);
      await signedTrace(
        join(work, download?.with?.path ?? ".", name, "events.ndjson"),
        identity,
        "https://token.actions.githubusercontent.com",
      );
    }
    const runEnv = {
      ...verify?.env,
      // the placeholders: this repository's dist/cli.js, served on loopback
      DPNDNCY_CLI_URL: cliUrl,
      DPNDNCY_CLI_SHA256: cliSha256(),
      GITHUB_SERVER_URL: "https://github.com",
      GITHUB_WORKFLOW_REF: "acme/app/.github/workflows/ci.yml@refs/heads/main",
      // public-good's TUF repository cannot be reached from here: a local one, as a runner names it
      DPNDNCY_TUF_MIRROR: tuf.url,
      DPNDNCY_TUF_ROOT: tuf.rootPath,
    };
    const r = await sh(verify?.run ?? "", work, runEnv);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain("cli.js: OK");
    expect(r.out.match(/^OK .*events\.ndjson .*complete and untampered$/gm)).toHaveLength(2);
    expect(r.out).toContain(`trusted root: ${tuf.url} (TUF`);
    // a log changed after signing: the same step fails
    const leg = artifactName(undefined, '{"os":"ubuntu-24.04","node":22}', env);
    const log = join(work, download?.with?.path ?? ".", leg, "events.ndjson");
    writeFileSync(log, `${readFileSync(log, "utf8")}{"kind":"exec"}\n`);
    const bad = await sh(verify?.run ?? "", work, runEnv);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("FAILED LOG_DIGEST_MISMATCH");
    // a wrong CLI digest stops before anything runs
    const wrong = await sh(verify?.run ?? "", work, {
      ...runEnv,
      DPNDNCY_CLI_SHA256: "0".repeat(64),
    });
    expect(wrong.code).not.toBe(0);
    expect(wrong.out + wrong.err).toContain("cli.js: FAILED");
  });

  it('snippet("gitlab-verify"): the GitLab verify command accepts the job\'s bundle and no other identity', async () => {
    const work = join(dir, "gitlab-verify");
    const env = {
      CI_SERVER_FQDN: "gitlab.example.com",
      CI_SERVER_URL: "https://gitlab.example.com",
      CI_PROJECT_PATH: "acme/app",
      CI_COMMIT_BRANCH: "main",
      DPNDNCY_CLI_URL: cliUrl,
      DPNDNCY_CLI_SHA256: cliSha256(),
      DPNDNCY_TUF_MIRROR: tuf.url,
      DPNDNCY_TUF_ROOT: tuf.rootPath,
    };
    await signedTrace(
      join(work, ".dpndncy/events.ndjson"),
      "https://gitlab.example.com/acme/app//.gitlab-ci.yml@refs/heads/main",
      "https://gitlab.example.com",
    );
    const r = await sh(snippet("gitlab-verify").body, work, env);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/^OK \.dpndncy\/events\.ndjson /m);
    const other = await sh(snippet("gitlab-verify").body, work, {
      ...env,
      CI_PROJECT_PATH: "acme/other",
    });
    expect(other.code).toBe(1);
    expect(other.err).toContain("FAILED IDENTITY_MISMATCH");
  });

  it('snippet("cli"): the command-line walk-through runs as written', async () => {
    const work = join(dir, "cli");
    mkdirSync(work, { recursive: true });
    copyFileSync(FIXTURE, join(work, "events.ndjson"));
    const r = await sh(snippet("cli").body, work, {
      DPNDNCY_CLI_URL: cliUrl,
      DPNDNCY_CLI_SHA256: cliSha256(),
    });
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain("cli.js: OK");
    expect(r.out).toContain("integrity: agent stopped cleanly");
    expect(r.out).toMatch(/^OK events\.ndjson \(sha256 [0-9a-f]{64}\) is the attested log/m);
    expect(r.out).toMatch(/^policy\.yml: valid \(policy version [0-9a-f]{64}/m);
    expect(execFileSync("ls", [work], { encoding: "utf8" }).split("\n")).toEqual(
      expect.arrayContaining(["baseline.json", "events.ndjson.sigstore.json", "policy.yml"]),
    );
  });
});

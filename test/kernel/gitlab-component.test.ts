// The GitLab CI/CD component (templates/agent.yml, templates/sign.yml) in real pipelines:
// gitlab-ci-local with the shell executor runs the jobs as root on this machine; the
// before_script downloads the real agent and the bundled CLI from a release server on
// 127.0.0.1 and checks their SHA-256 before running anything; the agent traces the job; the
// after_script (a separate shell) stops it, prints the summary, signs keyless against the local
// Sigstore stand-in (SIGSTORE_ID_TOKEN passed as a variable: gitlab-ci-local mints no
// id_tokens) and leaves the files as artifacts; then `dpndncy verify` checks the bundle.
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  CLI,
  component,
  handOver,
  newProject,
  pathWithNode,
  pathWithoutNode,
  type Release,
  runPipeline,
  serveRelease,
} from "../support/gitlab/pipeline.js";
import { FIXTURES, PYTHON, tempDir } from "../support/kernel/env.js";
import { readLog } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";
import { snippet } from "../support/readme.js";
import {
  mintIdentityToken,
  type SigstoreStandIn,
  startSigstoreStandIn,
} from "../support/sigstore-stand-in.js";

const ISSUER = "https://gitlab.example.com";
// What Fulcio puts in the certificate for a GitLab job (ci_config_ref_uri); the stand-in's
// Fulcio takes the identity from `sub`.
const IDENTITY = "https://gitlab.example.com/dpndncy/agent//.gitlab-ci.yml@refs/heads/main";

let release: Release;
let sigstore: SigstoreStandIn;
let tcp: Server;
let tcpPort = 0;
let tcpHits = 0;

beforeAll(async () => {
  // gitlab-ci-local copies build directories and artifacts with rsync, always; the component
  // downloads with curl or wget.
  for (const [check, why] of [
    [
      "command -v rsync",
      "rsync is not installed: gitlab-ci-local needs it (apt-get install rsync)",
    ],
    [
      "command -v curl || command -v wget",
      "neither curl nor wget is installed: the component downloads with one",
    ],
  ] as const) {
    if ((await run(["sh", "-c", check])).code !== 0) throw new Error(why);
  }
  release = await serveRelease();
  sigstore = await startSigstoreStandIn();
  tcp = createServer((_req, res) => {
    tcpHits++;
    res.end("ok");
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  tcpPort = (tcp.address() as AddressInfo).port;
});
afterAll(async () => {
  await release?.close();
  await sigstore?.close();
  await new Promise((r) => tcp?.close(r));
});

/** The include of the agent component, with the release pinned and extra inputs. */
function includeAgent(inputs: Record<string, string | boolean> = {}): string {
  const all = {
    "agent-url": release.agentUrl,
    "agent-sha256": release.agentSha256,
    "cli-url": release.cliUrl,
    "cli-sha256": release.cliSha256,
    ...inputs,
  };
  return [
    "include:",
    `  - component: ${component("agent")}`,
    "    inputs:",
    ...Object.entries(all).map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`),
  ].join("\n");
}

const cli = (args: string[]) =>
  run([process.execPath, CLI, ...args], { env: { PATH: process.env.PATH } });

/**
 * A README block as a reader pastes it, with its placeholders filled for this test: the
 * component's address (`$CI_SERVER_FQDN/dpndncy/agent/<name>@1`) becomes this commit's, and the
 * `agent-url`/`agent-sha256`/`cli-url`/`cli-sha256` values (`…`, `<sha256 …>`) this release's.
 * An include without inputs gets them as the release's pinned defaults would give them (a
 * released component's defaults, scripts/release-pin.mjs; this commit's component pins none).
 */
function fromReadme(id: string): string {
  const value: Record<string, string> = {
    "agent-url": release.agentUrl,
    "agent-sha256": release.agentSha256,
    "cli-url": release.cliUrl,
    "cli-sha256": release.cliSha256,
  };
  const pinned: Record<string, string[]> = {
    agent: ["agent-url", "agent-sha256", "cli-url", "cli-sha256"],
    sign: ["cli-url", "cli-sha256"],
  };
  return snippet(id)
    .body.replace(
      /^(\s*)- component: \$CI_SERVER_FQDN\/dpndncy\/agent\/(\w+)@1([^\n]*)\n(?!\s+inputs:)/gm,
      (_, indent: string, name: string, rest: string) =>
        `${indent}- component: $CI_SERVER_FQDN/dpndncy/agent/${name}@1${rest}\n${indent}  inputs: { ${(pinned[name] ?? []).map((k) => `${k}: …`).join(", ")} }\n`,
    )
    .replace(/\$CI_SERVER_FQDN\/dpndncy\/agent\/(\w+)@1/g, (_, name: string) => component(name))
    .replace(
      /^(\s*)(agent-url|agent-sha256|cli-url|cli-sha256): .*$/gm,
      (_, indent: string, k: string) => `${indent}${k}: ${JSON.stringify(value[k])}`,
    )
    .replace(
      /(agent-url|agent-sha256|cli-url|cli-sha256): …/g,
      (_, k: string) => `${k}: ${JSON.stringify(value[k])}`,
    );
}

/** A project that `npm ci && npm test` works in, offline: no dependencies, a test that writes coverage/. */
const NPM_PROJECT = {
  "package.json": JSON.stringify({
    name: "app",
    version: "1.0.0",
    scripts: { test: "mkdir -p coverage && echo covered > coverage/lcov.info" },
  }),
  "package-lock.json": JSON.stringify({
    name: "app",
    version: "1.0.0",
    lockfileVersion: 3,
    requires: true,
    packages: { "": { name: "app", version: "1.0.0" } },
  }),
};
const NPM_OFFLINE = {
  NPM_CONFIG_OFFLINE: "true",
  NPM_CONFIG_AUDIT: "false",
  NPM_CONFIG_FUND: "false",
  NPM_CONFIG_UPDATE_NOTIFIER: "false",
};

/** The workload: an exec, a loopback connect, a name lookup, a credential read. */
const WORKLOAD = [
  "    - /bin/true gl-marker-exec",
  `    - python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()' "http://127.0.0.1:$TCP_PORT/"`,
  "    - getent ahostsv4 localhost >/dev/null",
  '    - cat "$HOME/.aws/credentials" >/dev/null',
];

/** A credential where a poisoned dependency would look for one, under the jobs' HOME. */
function fakeCredential(home: string): void {
  mkdirSync(join(home, ".aws"), { recursive: true });
  writeFileSync(join(home, ".aws/credentials"), "[default]\naws_secret_access_key=FAKE\n");
}

describeKernel("GitLab component (gitlab-ci-local, shell executor)", () => {
  it("traces a job, prints the summary, signs keyless in after_script; dpndncy verify accepts it", async () => {
    const ci = `${includeAgent({
      "fulcio-url": sigstore.fulcioURL,
      "rekor-url": sigstore.rekorURL,
    })}
traced:
  stage: test
  extends: .dpndncy
  script:
${WORKLOAD.join("\n")}
`;
    const p = newProject("keyless", ci);
    fakeCredential(p.home);
    const token = mintIdentityToken({ iss: ISSUER, sub: IDENTITY });
    const before = release.requests.length;

    const r = await runPipeline(p, {
      path: pathWithNode(),
      variables: { SIGSTORE_ID_TOKEN: token, TCP_PORT: String(tcpPort) },
    });
    const log = r.jobLog("traced");
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("PASS  traced");

    // before_script: both downloads from the release server, both checked.
    expect(release.requests.slice(before)).toEqual(["/dpndncy-agent", "/cli.js"]);
    expect(log).toContain("dpndncy-agent: OK");
    expect(log).toContain("dpndncy.mjs: OK");
    expect(log).toMatch(/dpndncy: agent armed \(pid \d+, mode observe, platform gitlab\)/);
    expect(tcpHits).toBeGreaterThan(0);

    // after_script: the collapsible summary section (gitlab-ci-local renders the section
    // markers as "<name>_started" / "<name> took"), signed, no warnings.
    expect(log).toContain("dpndncy_summary_started");
    expect(log).toMatch(/dpndncy_summary took/);
    expect(log).toContain("integrity: agent stopped cleanly");
    expect(log).toContain(`ci: gitlab (dpndncy/agent, run `);
    expect(log).toContain(`127.0.0.1`);
    expect(log).toContain(".aws/credentials");
    expect(log).toContain(`signer: certificate ${IDENTITY}`);
    expect(log).not.toContain("[dpndncy] WARNING");
    expect(log).not.toContain("dpndncy FAILED");

    // Artifacts, collected by gitlab-ci-local through the job's artifacts: paths only.
    const a = join(r.artifacts("traced"), ".dpndncy");
    for (const f of [
      "events.ndjson",
      "events.ndjson.sigstore.json",
      "statement.json",
      "summary.md",
      "job.env",
    ]) {
      expect(existsSync(join(a, f)), `artifact ${f}`).toBe(true);
    }
    expect(existsSync(join(a, "bin")), "the downloaded binaries are not artifacts").toBe(false);
    expect(existsSync(join(a, "session.json"))).toBe(false);

    // The log is complete and holds the workload.
    const trace = readLog(join(a, "events.ndjson"));
    expect(trace.events.at(-1)).toMatchObject({ kind: "agent", event: "stop", complete: true });
    const execs = trace.events
      .filter((e) => e.kind === "exec")
      .map((e) => (e.argv as string[]).join(" "));
    expect(execs).toContain("/bin/true gl-marker-exec");
    expect(
      trace.events.some(
        (e) => e.kind === "connect" && e.addr === "127.0.0.1" && e.port === tcpPort,
      ),
    ).toBe(true);
    expect(
      trace.events.some(
        (e) => e.kind === "file" && String(e.path).endsWith("/home/.aws/credentials"),
      ),
    ).toBe(true);
    expect(readFileSync(join(a, "summary.md"), "utf8")).toContain("## dpndncy runtime trace");

    // The statement is the one in the bundle, and names the GitLab job.
    const statement = JSON.parse(readFileSync(join(a, "statement.json"), "utf8"));
    expect(statement.predicateType).toBe("https://dpndncy.io/agent/runtime-trace/v1");
    expect(statement.predicate.ci).toMatchObject({
      platform: "gitlab",
      repository: "dpndncy/agent",
      jobName: "traced",
      commit: p.commit,
    });
    expect(statement.predicate.integrity.stopped_cleanly).toBe(true);
    // Private (gitlab-ci-local says "internal") with our own Fulcio and Rekor: those were used.
    expect(sigstore.requests.some((x) => x.includes("signingCert"))).toBe(true);

    const rootFile = join(tempDir("gitlab-root"), "trusted-root.json");
    writeFileSync(rootFile, JSON.stringify(sigstore.trustedRoot));
    const v = await cli([
      "verify",
      join(a, "events.ndjson.sigstore.json"),
      "--log",
      join(a, "events.ndjson"),
      "--certificate-identity",
      IDENTITY,
      "--certificate-oidc-issuer",
      ISSUER,
      "--trusted-root",
      rootFile,
      "--require-clean",
    ]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const wrong = await cli([
      "verify",
      join(a, "events.ndjson.sigstore.json"),
      "--log",
      join(a, "events.ndjson"),
      "--certificate-identity",
      "https://gitlab.example.com/other/project//.gitlab-ci.yml@refs/heads/main",
      "--certificate-oidc-issuer",
      ISSUER,
      "--trusted-root",
      rootFile,
    ]);
    expect(wrong.code).toBe(1);
  });

  it('README snippet("gitlab-include") and snippet("gitlab-artifacts"): the include traces the job; a job with its own artifacts:paths keeps the trace only by listing it', async () => {
    // the include block as written: the build job is traced and leaves the trace as artifacts
    const p = newProject("readme-include", fromReadme("gitlab-include"), NPM_PROJECT);
    const r = await runPipeline(p, { path: pathWithNode(), variables: NPM_OFFLINE });
    expect(r.code, r.out).toBe(0);
    const log = r.jobLog("build");
    expect(log).toMatch(/dpndncy: agent armed \(pid \d+, mode observe, platform gitlab\)/);
    expect(log).toContain("integrity: agent stopped cleanly");
    // an internal project with no Fulcio named: not signed, and loudly so (README: private projects)
    expect(log).toContain("[dpndncy] WARNING");
    expect(existsSync(join(r.artifacts("build"), ".dpndncy/events.ndjson"))).toBe(true);

    // the artifacts block, after the same include; and the pitfall it documents: a job whose
    // own paths do not list ours uploads its files and silently not the trace
    const include = fromReadme("gitlab-include").split("\n\nbuild:")[0] ?? "";
    const ci = `${include}
${fromReadme("gitlab-artifacts")}
naive:
  stage: deploy
  extends: .dpndncy
  script:
    - npm ci && npm test
  artifacts:
    paths: [coverage/]
`;
    const q = newProject("readme-artifacts", ci, NPM_PROJECT);
    const r2 = await runPipeline(q, { path: pathWithNode(), variables: NPM_OFFLINE });
    expect(r2.code, r2.out).toBe(0);
    const kept = r2.artifacts("build");
    expect(existsSync(join(kept, "coverage/lcov.info")), "the job's own artifact").toBe(true);
    for (const f of ["events.ndjson", "summary.md", "job.env"]) {
      expect(existsSync(join(kept, ".dpndncy", f)), `artifact .dpndncy/${f}`).toBe(true);
    }
    expect(readLog(join(kept, ".dpndncy/events.ndjson")).events.at(-1)).toMatchObject({
      kind: "agent",
      event: "stop",
      complete: true,
    });
    expect(existsSync(join(kept, ".dpndncy/bin")), "not the downloaded binaries").toBe(false);
    const lost = r2.artifacts("naive");
    expect(existsSync(join(lost, "coverage/lcov.info"))).toBe(true);
    expect(existsSync(join(lost, ".dpndncy/events.ndjson")), "what the README warns of").toBe(
      false,
    );
  });

  it('README snippet("gitlab-sign"): a job without Node is traced, a later job with Node signs it', async () => {
    // Placeholders filled as in fromReadme; and, since public-good Sigstore cannot be reached
    // from here, the signing job is pointed at the local stand-in (fulcio-url / rekor-url, as
    // a private project would name its own instance) with its OIDC token passed as a variable.
    // `image:` is ignored by a shell-executor runner, as here; gitlab-ci-local would start
    // Docker for it, so the lines go (the build job then gets a PATH without Node instead)
    const ci = fromReadme("gitlab-sign")
      .replace(/^\s*image: .*\n/gm, "")
      .replace(
        /(component: \S+\/sign@\S+\n\s+inputs: \{ )/,
        `$1fulcio-url: ${JSON.stringify(sigstore.fulcioURL)}, rekor-url: ${JSON.stringify(sigstore.rekorURL)}, `,
      );
    expect(ci).toContain("fulcio-url");
    const p = newProject("readme-sign", ci, { Makefile: "all:\n\t/bin/true gl-make-ran\n" });
    const token = mintIdentityToken({ iss: ISSUER, sub: IDENTITY });
    const built = await runPipeline(p, {
      jobs: ["build"],
      path: pathWithNode(),
      variables: { PATH: pathWithoutNode() }, // alpine:3: no Node in the image
    });
    expect(built.code, built.out).toBe(0);
    expect(built.jobLog("build")).toContain("no Node.js (>= 20) in this image");
    expect(built.jobLog("build")).toContain("UNSIGNED");
    handOver(p, "build");
    const signed = await runPipeline(p, {
      jobs: ["sign-build"],
      path: pathWithNode(),
      variables: { SIGSTORE_ID_TOKEN: token },
    });
    expect(signed.code, signed.out).toBe(0);
    const log = signed.jobLog("sign-build");
    expect(log).toContain("integrity: agent stopped cleanly");
    expect(log).toContain(`signer: certificate ${IDENTITY}`);
    const a = join(built.artifacts("build"), ".dpndncy"); // the log, as handed over
    const b = join(signed.artifacts("sign-build"), ".dpndncy"); // what the signing job adds
    expect(JSON.parse(readFileSync(join(b, "statement.json"), "utf8")).predicate.ci).toMatchObject({
      platform: "gitlab",
      jobName: "build",
    });
    const trace = readLog(join(a, "events.ndjson"));
    expect(
      trace.events.some(
        (e) => e.kind === "exec" && (e.argv as string[]).join(" ") === "/bin/true gl-make-ran",
      ),
    ).toBe(true);
    const rootFile = join(tempDir("gitlab-readme-root"), "trusted-root.json");
    writeFileSync(rootFile, JSON.stringify(sigstore.trustedRoot));
    const v = await cli([
      "verify",
      join(b, "events.ndjson.sigstore.json"),
      "--log",
      join(a, "events.ndjson"),
      "--certificate-identity",
      IDENTITY,
      "--certificate-oidc-issuer",
      ISSUER,
      "--trusted-root",
      rootFile,
    ]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it("a failing script still yields the trace; a refused signature is loud, not fatal", async () => {
    // No Fulcio named, and the project is not public (gitlab-ci-local: "internal"): signing
    // must be refused before any request, and say so; the job's own failure stays the status.
    const ci = `${includeAgent()}
failing:
  stage: test
  extends: .dpndncy
  script:
    - /bin/true gl-before-failure
    - exit 7
    - /bin/true gl-never-reached
`;
    const p = newProject("failing", ci);
    const before = sigstore.requests.length;
    const r = await runPipeline(p, {
      path: pathWithNode(),
      variables: { SIGSTORE_ID_TOKEN: mintIdentityToken({ iss: ISSUER, sub: IDENTITY }) },
    });
    const log = r.jobLog("failing");
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("FAIL  failing");
    expect(log).toContain("dpndncy_summary_started");
    expect(log).toContain("integrity: agent stopped cleanly");
    expect(log).toContain("ENDPOINT_REQUIRED");
    expect(log).toContain("NOT SIGNED");
    expect(log).toContain("dpndncy FAILED in this job");
    expect(sigstore.requests.length).toBe(before);

    const a = join(r.artifacts("failing"), ".dpndncy");
    expect(existsSync(join(a, "summary.md"))).toBe(true);
    expect(existsSync(join(a, "events.ndjson.sigstore.json"))).toBe(false);
    const trace = readLog(join(a, "events.ndjson"));
    expect(trace.events.at(-1)).toMatchObject({ kind: "agent", event: "stop", complete: true });
    const execs = trace.events
      .filter((e) => e.kind === "exec")
      .map((e) => (e.argv as string[]).join(" "));
    expect(execs).toContain("/bin/true gl-before-failure");
    expect(execs).not.toContain("/bin/true gl-never-reached");
  });

  it("a wrong checksum fails before_script: nothing runs, after_script says the job was not traced", async () => {
    const ci = `${includeAgent({ "agent-sha256": "0".repeat(64), sign: "none" })}
pinned-wrong:
  stage: test
  extends: .dpndncy
  script:
    - echo gl-script-ran
`;
    const p = newProject("badsum", ci);
    const before = release.requests.length;
    const r = await runPipeline(p, { path: pathWithNode() });
    const log = r.jobLog("pinned-wrong");
    expect(r.code).not.toBe(0);
    expect(release.requests.slice(before)).toContain("/dpndncy-agent");
    expect(log).toMatch(/dpndncy-agent: FAILED/);
    expect(log).toContain("does not have its pinned SHA-256");
    expect(log).not.toContain("gl-script-ran");
    expect(log).not.toContain("agent armed");
    expect(log).toContain("this job was NOT traced");
    const d = join(r.build, ".dpndncy");
    expect(existsSync(join(d, "bin/dpndncy-agent")), "the unverified download is deleted").toBe(
      false,
    );
    expect(existsSync(join(d, "session.json"))).toBe(false);
    expect(existsSync(join(d, "state"))).toBe(false);
  });

  it("the runner's architecture picks the agent: aarch64 fetches and verifies the -arm64 pair, never the x86_64 one; an aarch64 runner without it and an unknown architecture are refused", async () => {
    // `uname -m` answered as an aarch64 (or riscv64) runner's would: the only part of the
    // machine this x86_64 host cannot be. The download and its digest check are real.
    const shim = (machine: string) => {
      const d = tempDir(`uname-${machine}`);
      writeFileSync(
        join(d, "uname"),
        `#!/bin/sh\nif [ "$1" = -m ]; then echo ${machine}; else exec /usr/bin/uname "$@"; fi\n`,
      );
      chmodSync(join(d, "uname"), 0o755);
      return `${d}:${pathWithNode()}`;
    };
    const job =
      "archjob:\n  stage: test\n  extends: .dpndncy\n  script:\n    - echo gl-script-ran\n";
    const arm = newProject(
      "arch-arm64",
      `${includeAgent({ "agent-url-arm64": release.agentArm64Url, "agent-sha256-arm64": release.agentArm64Sha256, sign: "none" })}\n${job}`,
    );
    const before = release.requests.length;
    const r = await runPipeline(arm, { path: shim("aarch64") });
    const log = r.jobLog("archjob");
    const asked = release.requests.slice(before);
    expect(asked, log).toContain("/dpndncy-agent-arm64");
    expect(asked, log).not.toContain("/dpndncy-agent");
    expect(log).toMatch(/dpndncy-agent: OK/); // its own pinned digest
    // (that aarch64 binary cannot run on this x86_64 host: the job stops there, as it must)

    const none = newProject("arch-arm64-unpinned", `${includeAgent({ sign: "none" })}\n${job}`);
    const n = await runPipeline(none, { path: shim("aarch64") });
    expect(n.code).not.toBe(0);
    expect(n.jobLog("archjob")).toContain(
      "this runner is aarch64 and the agent-url-arm64 and agent-sha256-arm64 inputs are not set",
    );
    expect(n.jobLog("archjob")).not.toContain("gl-script-ran");

    const odd = newProject("arch-riscv", `${includeAgent({ sign: "none" })}\n${job}`);
    const o = await runPipeline(odd, { path: shim("riscv64") });
    expect(o.code).not.toBe(0);
    expect(o.jobLog("archjob")).toContain(
      "this runner's architecture (riscv64) has no dpndncy agent: x86_64 and aarch64 only",
    );
    expect(o.jobLog("archjob")).not.toContain("gl-script-ran");
  });

  it("unpinned release and invalid inputs: a clear refusal, GitLab's spec messages", async () => {
    // No agent-url / agent-sha256 (the component's defaults until a release is pinned).
    const unpinned = newProject(
      "unpinned",
      `include:\n  - component: ${component("agent")}\njob:\n  extends: .dpndncy\n  script: [echo gl-script-ran]\n`,
    );
    const r = await runPipeline(unpinned, { path: pathWithNode() });
    expect(r.code).not.toBe(0);
    const log = r.jobLog("job");
    expect(log).toContain("the agent-url and agent-sha256 inputs are not set");
    expect(log).not.toContain("gl-script-ran");

    for (const [inputs, message] of [
      [
        { mode: "spy" },
        "`mode` input: `spy` cannot be used because it is not in the list of allowed options",
      ],
      [{ "agent-sha256": "ABC" }, "`agent-sha256` input: `ABC` does not match required regex"],
      [
        { sign: "maybe" },
        "`sign` input: `maybe` cannot be used because it is not in the list of allowed options",
      ],
      [{ dir: "../out" }, "`dir` input: `../out` does not match required regex"],
      [
        { "allow-public-rekor": "yes" },
        "`allow-public-rekor` input: provided value is not a boolean",
      ],
      // the same limit as `dpndncy learn --jobs` (1-100), refused when the pipeline is made
      [{ "learn-jobs": "101" }, "`learn-jobs` input: `101` does not match required regex"],
    ] as const) {
      const p = newProject(
        "badinput",
        `${includeAgent(inputs)}\njob:\n  extends: .dpndncy\n  script: [echo gl-script-ran]\n`,
      );
      const bad = await runPipeline(p, { path: pathWithNode() });
      expect(bad.code, bad.out).not.toBe(0);
      expect(bad.out).toContain("This GitLab CI configuration is invalid");
      expect(bad.out).toContain(message);
      expect(bad.out).not.toContain("gl-script-ran");
    }
  });

  it("sign: key from a File-type variable; allowed-endpoints, sensitive-paths and DPNDNCY_STEP reach the job", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const ci = `${includeAgent({
      sign: "key",
      "signing-key": "TRACE_SIGNING_KEY",
      "allowed-endpoints": "127.0.0.1, *.example.com:443 [2001:db8::1]:443",
      "sensitive-paths": "~/.gl-fake/*.txt",
    })}
keyed:
  stage: test
  extends: .dpndncy
  script:
    - echo "step=$DPNDNCY_STEP"
    - cat "$HOME/.gl-fake/token.txt" >/dev/null
`;
    const p = newProject("key", ci);
    mkdirSync(join(p.home, ".gl-fake"));
    writeFileSync(join(p.home, ".gl-fake/token.txt"), "not a real token\n");
    // A shell glob of the pattern would match this (a directory named "~" in the build dir).
    mkdirSync(join(p.dir, "~/.gl-fake"), { recursive: true });
    writeFileSync(join(p.dir, "~/.gl-fake/decoy.txt"), "");
    const r = await runPipeline(p, {
      path: pathWithNode(),
      // A File-type CI/CD variable: the job sees a path to a file holding the PEM.
      variablesFile: `TRACE_SIGNING_KEY:\n  type: file\n  values:\n    "*": |\n${pem
        .trim()
        .split("\n")
        .map((l) => `      ${l}`)
        .join("\n")}\n`,
    });
    const log = r.jobLog("keyed");
    expect(r.code, r.out).toBe(0);
    expect(log).toContain("step=script");
    expect(log).toContain("signer: key ");
    expect(log).not.toContain("[dpndncy] WARNING");
    expect(readFileSync(join(r.build, ".dpndncy/agent.conf"), "utf8")).toContain(
      "file custom ~/.gl-fake/*.txt\n",
    );
    expect(readFileSync(join(r.build, ".dpndncy/policy.yml"), "utf8")).toBe(
      'version: 1\negress:\n  allow:\n    - "127.0.0.1"\n    - "*.example.com:443"\n    - "[2001:db8::1]:443"\n',
    );
    const a = join(r.artifacts("keyed"), ".dpndncy");
    expect(readFileSync(join(a, "events.ndjson.pub.pem"), "utf8")).toBe(
      publicKey.export({ format: "pem", type: "spki" }).toString(),
    );
    const trace = readLog(join(a, "events.ndjson"));
    expect(
      trace.events.some((e) => e.kind === "file" && String(e.path).endsWith("/.gl-fake/token.txt")),
    ).toBe(true);
    const v = await cli([
      "verify",
      join(a, "events.ndjson.sigstore.json"),
      "--log",
      join(a, "events.ndjson"),
      "--key",
      join(a, "events.ndjson.pub.pem"),
      "--require-clean",
    ]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it("an agent left running by a job whose after_script never ran is stopped by the next job", async () => {
    // A job timeout skips after_script; a job that replaces after_script does the same to ours.
    const ci = `${includeAgent({ sign: "none" })}
again:
  stage: test
  extends: .dpndncy
  script: [/bin/true gl-again]
  after_script: ["echo not the dpndncy after_script"]
`;
    const p = newProject("stale", ci);
    const first = await runPipeline(p, { path: pathWithNode() });
    expect(first.code, first.out).toBe(0);
    const state = join(p.dir, ".dpndncy/state");
    const status = await run([
      join(p.dir, ".dpndncy/bin/dpndncy-agent"),
      "status",
      "--state-dir",
      state,
    ]);
    expect(status.stdout).toContain('"running":true');

    // Same build directory (shell executor), now with the component's after_script.
    writeFileSync(join(p.dir, ".gitlab-ci.yml"), ci.replace(/ {2}after_script: .*\n/, ""));
    const second = await runPipeline(p, { path: pathWithNode() });
    const log = second.jobLog("again");
    expect(second.code, second.out).toBe(0);
    expect(log).toContain("the agent of an earlier job is still running");
    expect(log).toContain("agent armed");
    expect(log).toContain("integrity: agent stopped cleanly");
  });

  it("learn mode: the baseline in <dir>/learn/ carries over to the next run (as the job cache would carry it); the second run names its new destination and the policy holds both", async () => {
    const work = await Netns.create();
    await work.vethTo(await Netns.create(), ["192.0.2.2/24"], ["192.0.2.10/24", "192.0.2.11/24"]);
    const ci = `${includeAgent({ mode: "learn", sign: "none", "learn-jobs": "3" })}
learning:
  stage: test
  extends: .dpndncy
  cache: ${JSON.stringify((parseYaml(snippet("gitlab-learn-cache").body) as { build: { cache: unknown } }).build.cache)}
  script:
    - ${work.exec(PYTHON, join(FIXTURES, "enforce_client.py")).join(" ")} $DESTS
`;
    const p = newProject("learn", ci);
    const first = await runPipeline(p, {
      path: pathWithNode(),
      variables: { DESTS: "tcp:192.0.2.10:80" },
    });
    expect(first.code, first.out).toBe(0);
    expect(first.jobLog("learning")).toContain(
      "learn: the egress policy enforce would need is .dpndncy/learn/policy.yml",
    );
    // the next run starts from a clean checkout; GitLab's cache brings <dir>/learn/ back.
    // gitlab-ci-local's shell executor restores no cache (only with --shell-isolation, which
    // these tests cannot use), so the test puts back what the cache would: the first run's
    // <dir>/learn/ (its artifacts), and nothing else
    handOver(p, "learning");
    rmSync(join(p.dir, ".dpndncy/events.ndjson"), { force: true });
    const second = await runPipeline(p, {
      path: pathWithNode(),
      variables: { DESTS: "tcp:192.0.2.10:80 tcp:192.0.2.11:80" },
    });
    expect(second.code, second.out).toBe(0);
    const log = second.jobLog("learning");
    // learn-jobs reached dpndncy learn: the window is 3 jobs
    expect(log).toMatch(/needs 3 in a row; 2 jobs learned/);
    expect(log).toMatch(/new egress \([^)]*\): 192\.0\.2\.11:80\/tcp/);
    expect(log).not.toMatch(/new egress \([^)]*\): 192\.0\.2\.10:80/);
    const policy = readFileSync(
      join(p.dir, ".gitlab-ci-local/artifacts/learning/.dpndncy/learn/policy.yml"),
      "utf8",
    );
    expect(policy).toMatch(/192\.0\.2\.10/);
    expect(policy).toMatch(/192\.0\.2\.11/);
    const baseline = JSON.parse(
      readFileSync(
        join(p.dir, ".gitlab-ci-local/artifacts/learning/.dpndncy/learn/baseline.json"),
        "utf8",
      ),
    ) as { total_jobs: number };
    expect(baseline.total_jobs).toBe(2);
  });

  it("no Node in the image: the agent runs alone, a later job signs the artifacts", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const nonode = pathWithoutNode();
    const ci = `${includeAgent({ sign: "keyless" })}
  - component: ${component("sign")}
    inputs:
      sign: key
      cli-url: ${JSON.stringify(release.cliUrl)}
      cli-sha256: ${JSON.stringify(release.cliSha256)}
traced-nonode:
  stage: test
  extends: .dpndncy
  variables:
    PATH: ${nonode}
  script:
    - if command -v node; then echo "node is here"; exit 1; fi
${WORKLOAD.join("\n")}
sign-trace:
  stage: deploy
  extends: .dpndncy-sign
  needs: [traced-nonode]
`;
    const p = newProject("nonode", ci);
    fakeCredential(p.home);
    const before = release.requests.length;
    const r = await runPipeline(p, {
      jobs: ["traced-nonode"],
      path: pathWithNode(),
      variables: { TCP_PORT: String(tcpPort) },
    });
    expect(r.code, r.out).toBe(0);
    const traced = r.jobLog("traced-nonode");
    // The traced job fetched only the agent (no Node, so no CLI), and said what happens next.
    expect(release.requests.slice(before)).toEqual(["/dpndncy-agent"]);
    expect(traced).toContain("dpndncy-agent: OK");
    expect(traced).not.toContain("dpndncy.mjs");
    expect(traced).toContain("no Node.js (>= 20) in this image");
    expect(traced).toContain("agent stopped:");
    expect(traced).toContain("UNSIGNED");
    expect(traced).not.toContain("[dpndncy] WARNING");

    const a = join(r.artifacts("traced-nonode"), ".dpndncy");
    const trace = readLog(join(a, "events.ndjson"));
    expect(trace.events.at(-1)).toMatchObject({ kind: "agent", event: "stop", complete: true });
    expect(
      trace.events.some(
        (e) => e.kind === "exec" && (e.argv as string[]).join(" ") === "/bin/true gl-marker-exec",
      ),
    ).toBe(true);
    expect(existsSync(join(a, "events.ndjson.sigstore.json"))).toBe(false);

    // The later job (this machine's Node on its PATH) gets a clean checkout plus the artifacts.
    handOver(p, "traced-nonode");
    const r2 = await runPipeline(p, {
      jobs: ["sign-trace"],
      path: pathWithNode(),
      variablesFile: `DPNDNCY_SIGNING_KEY: |\n${pem
        .trim()
        .split("\n")
        .map((l) => `  ${l}`)
        .join("\n")}\n`,
    });
    expect(r2.code, r2.out).toBe(0);
    expect(release.requests.slice(before)).toEqual(["/dpndncy-agent", "/cli.js"]);

    // The signing job got the log through artifacts, summarized and signed it, naming the
    // traced job in the predicate.
    const signLog = r2.jobLog("sign-trace");
    expect(signLog).toContain("dpndncy.mjs: OK");
    expect(signLog).toContain("signing the trace of job");
    expect(signLog).toContain("dpndncy_summary_started");
    expect(signLog).toContain("integrity: agent stopped cleanly");
    const s = join(r2.artifacts("sign-trace"), ".dpndncy");
    const statement = JSON.parse(readFileSync(join(s, "statement.json"), "utf8"));
    expect(statement.predicate.ci).toMatchObject({ platform: "gitlab", jobName: "traced-nonode" });
    expect(readFileSync(join(s, "events.ndjson.pub.pem"), "utf8")).toBe(
      publicKey.export({ format: "pem", type: "spki" }).toString(),
    );
    const v = await cli([
      "verify",
      join(s, "events.ndjson.sigstore.json"),
      "--log",
      join(a, "events.ndjson"),
      "--key",
      join(s, "events.ndjson.pub.pem"),
      "--require-clean",
    ]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });
});

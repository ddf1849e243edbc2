// What a reader of the job summary meets: the verdict first, the verify commands with the
// identity the certificate holds, the artifact, and one artifact name per matrix leg.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { artifactName } from "../../src/action/artifact-name.js";
import { verifyCommand } from "../../src/action/sign-choice.js";
import { bundleInfo, rekorEntryUrl } from "../../src/attest/bundle-info.js";
import { PUBLIC_GOOD, signKeyless, staticToken } from "../../src/attest/sign.js";
import { renderSummary, verdictLine } from "../../src/report/markdown.js";
import { summarizeFile } from "../../src/trace/summarize.js";
import { mintIdentityToken, startSigstoreStandIn } from "../support/sigstore-stand-in.js";

const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");

describe("artifact names", () => {
  const env = { GITHUB_JOB: "test", GITHUB_RUN_ATTEMPT: "1" };
  it("are unique per matrix leg (values and a hash of the matrix), stable for the same leg", () => {
    const a = artifactName(undefined, '{"os":"ubuntu-24.04","node":20}', env);
    const b = artifactName(undefined, '{"os":"ubuntu-24.04","node":22}', env);
    expect(a).toMatch(/^dpndncy-trace-test-20-ubuntu-24\.04-[0-9a-f]{8}-attempt1$/);
    expect(b).not.toBe(a);
    // key order in the JSON does not matter; the same leg gets the same name on every run
    expect(artifactName(undefined, '{"node":20,"os":"ubuntu-24.04"}', env)).toBe(a);
    // object values (matrix include: of objects) still differ by the hash
    const c = artifactName(undefined, '{"cfg":{"x":1}}', env);
    const d = artifactName(undefined, '{"cfg":{"x":2}}', env);
    expect(c).not.toBe(d);
  });

  it("no matrix: dpndncy-trace-<job>-attempt<n>; a given name is kept, with -attempt<n> on re-runs", () => {
    expect(artifactName(undefined, "null", env)).toBe("dpndncy-trace-test-attempt1");
    expect(artifactName(undefined, "", { ...env, GITHUB_RUN_ATTEMPT: "2" })).toBe(
      "dpndncy-trace-test-attempt2",
    );
    expect(artifactName("mine", "null", env)).toBe("mine");
    expect(artifactName("mine", "null", { ...env, GITHUB_RUN_ATTEMPT: "3" })).toBe("mine-attempt3");
  });
});

describe("the job summary", () => {
  it("opens with the verdict: blocked and sensitive reads, signed with the log entry, the artifact", async () => {
    const p = await summarizeFile(FIXTURE, { ci: null });
    const md = renderSummary(p, {
      signed: {
        kind: "keyless",
        tlog: { index: "42", url: rekorEntryUrl(PUBLIC_GOOD.rekorURL, "42") },
      },
      artifact: {
        name: "dpndncy-trace-build-attempt1",
        url: "https://github.com/a/b/actions/runs/1/artifacts/7",
      },
    });
    const [title, , verdict] = md.split("\n");
    expect(title).toBe("## dpndncy runtime trace");
    expect(verdict).toMatch(
      /^dpndncy: \*\*blocked \d+\*\* · \*\*sensitive reads \d+\*\* · signed \(\[transparency log entry 42\]\(https:\/\/search\.sigstore\.dev\/\?logIndex=42\)\) · artifact \[dpndncy-trace-build-attempt1\]\(https:\/\/github\.com\/a\/b\/actions\/runs\/1\/artifacts\/7\)$/,
    );
  });

  it("says clean, or not signed and why, and folds long tables", async () => {
    const p = await summarizeFile(FIXTURE, { ci: null });
    const clean = { ...p, egress: [], files: [] };
    expect(verdictLine(clean, { signed: { kind: "none", why: "sign: none" } })).toBe(
      "dpndncy: **clean** · **not signed** (sign: none)",
    );
    const broken = { ...clean, integrity: { ...clean.integrity, stopped_cleanly: false } };
    expect(verdictLine(broken)).toBe("dpndncy: **trace incomplete or tampered**");
    const many = {
      ...p,
      dns: Array.from({ length: 30 }, (_, i) => ({
        name: `n${i}.example`,
        count: 1,
        failed: 0,
        steps: [],
      })),
    };
    const md = renderSummary(many as typeof p);
    expect(md).toContain("<details><summary>30 names</summary>");
    expect(renderSummary(p)).not.toContain("<details><summary>"); // short tables stay open
  });

  it("the verify command carries the certificate's identity (a reusable workflow's, not the caller's) and the CLI by digest", async () => {
    const standIn = await startSigstoreStandIn();
    try {
      // Fulcio names the job_workflow_ref: a reusable workflow called from ci.yml
      const reusable = "https://github.com/acme/shared/.github/workflows/build.yml@refs/heads/main";
      const bundle = await signKeyless(readFileSync(FIXTURE), {
        endpoints: { fulcioURL: standIn.fulcioURL, rekorURL: standIn.rekorURL },
        identityProvider: staticToken(
          mintIdentityToken({ iss: "https://token.actions.githubusercontent.com", sub: reusable }),
        ),
      });
      const info = bundleInfo(bundle);
      expect(info).toEqual({
        identity: reusable,
        issuer: "https://token.actions.githubusercontent.com",
        tlogIndex: expect.stringMatching(/^\d+$/),
      });
      const cmd = verifyCommand({
        sign: { kind: "keyless", token: "t", endpoints: { ...PUBLIC_GOOD } },
        info,
        artifact: "dpndncy-trace-build-attempt1",
        cli: {
          url: "https://github.com/dpndncy/agent/raw/v1/dist/cli.js",
          sha256: "ab".repeat(32),
        },
      });
      expect(cmd).toBe(
        [
          "# files: artifact dpndncy-trace-build-attempt1 (actions/download-artifact)",
          "curl -fsSLo cli.js https://github.com/dpndncy/agent/raw/v1/dist/cli.js",
          `echo '${"ab".repeat(32)}  cli.js' | sha256sum -c`,
          "node cli.js verify events.ndjson.sigstore.json --log events.ndjson \\",
          `  --certificate-identity '${reusable}' \\`,
          "  --certificate-oidc-issuer https://token.actions.githubusercontent.com",
        ].join("\n"),
      );
      // GitHub's private instance: the reader needs that instance's trusted root
      const priv = verifyCommand({
        sign: {
          kind: "keyless",
          token: "t",
          endpoints: {
            fulcioURL: "https://fulcio.githubapp.com",
            tsaURL: "https://timestamp.githubapp.com",
          },
        },
        info,
      });
      expect(priv).toContain("# signed by fulcio.githubapp.com: give its trusted root");
      expect(priv).toContain("--trusted-root trusted_root.json");
      // the caller's GITHUB_WORKFLOW_REF does not match, and verify says why
      const { verifyAttestation } = await import("../../src/attest/verify.js");
      const { createHash } = await import("node:crypto");
      expect(() =>
        verifyAttestation({
          bundle,
          logSha256: createHash("sha256").update("x").digest("hex"),
          trustedRoot: standIn.trustedRoot,
          policy: {
            identity: "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main",
            issuer: "https://token.actions.githubusercontent.com",
          },
        }),
      ).toThrow(
        /IDENTITY_MISMATCH: .*in a reusable workflow the certificate names the called workflow file/,
      );
    } finally {
      await standIn.close();
    }
  });
});

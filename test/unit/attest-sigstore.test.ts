// Keyless and key signing end to end through the real @sigstore/sign client against the local
// stand-in (test/support/sigstore-stand-in.ts), verified with @sigstore/verify against the
// stand-in's trusted root; then each way a bundle can fail, with its exact code.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SerializedBundle } from "@sigstore/bundle";
import { DSSEBundleBuilder } from "@sigstore/sign";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError, SignError, VerifyError } from "../../src/attest/errors.js";
import {
  generateSigningKey,
  keySigner,
  PUBLIC_GOOD,
  resolveEndpoints,
  signKeyless,
  signWithKey,
  staticToken,
} from "../../src/attest/sign.js";
import { buildStatement, serializeStatement } from "../../src/attest/statement.js";
import { sha256File, type VerifyInput, verifyAttestation } from "../../src/attest/verify.js";
import { summarizeFile } from "../../src/trace/summarize.js";
import {
  mintIdentityToken,
  type SigstoreStandIn,
  startSigstoreStandIn,
} from "../support/sigstore-stand-in.js";

const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");
const IDENTITY = "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";
const token = mintIdentityToken({ iss: ISSUER, sub: IDENTITY });
const policy = { identity: IDENTITY, issuer: ISSUER };
const dir = mkdtempSync(join(tmpdir(), "dpndncy-attest-"));

let standIn: SigstoreStandIn;
let statement: Buffer;
let logSha256: string;
let keyless: SerializedBundle;

async function statementFor(path: string): Promise<Buffer> {
  return serializeStatement(buildStatement(await summarizeFile(path)));
}

function expectVerifyError(input: VerifyInput, code: VerifyError["code"]): VerifyError {
  let caught: unknown;
  try {
    verifyAttestation(input);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(VerifyError);
  expect((caught as VerifyError).code, (caught as Error).message).toBe(code);
  return caught as VerifyError;
}

const withPayload = (b: SerializedBundle, payload: Buffer): SerializedBundle => {
  const copy = structuredClone(b);
  if (!copy.dsseEnvelope) throw new Error("not a DSSE bundle");
  copy.dsseEnvelope.payload = payload.toString("base64");
  return copy;
};

beforeAll(async () => {
  standIn = await startSigstoreStandIn();
  statement = await statementFor(FIXTURE);
  logSha256 = await sha256File(FIXTURE);
  keyless = await signKeyless(statement, {
    endpoints: { fulcioURL: standIn.fulcioURL, rekorURL: standIn.rekorURL, tsaURL: standIn.tsaURL },
    identityProvider: staticToken(token),
  });
});
afterAll(async () => {
  await standIn.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("keyless (Fulcio + Rekor + TSA stand-in)", () => {
  it("produces a v0.3 DSSE bundle with a certificate, a tlog entry with proof, and a timestamp", () => {
    expect(keyless.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
    expect(keyless.dsseEnvelope?.payloadType).toBe("application/vnd.in-toto+json");
    expect(keyless.verificationMaterial.certificate?.rawBytes).toBeTruthy();
    expect(keyless.verificationMaterial.tlogEntries).toHaveLength(1);
    expect(keyless.verificationMaterial.tlogEntries[0]?.inclusionProof?.checkpoint).toBeTruthy();
    expect(keyless.verificationMaterial.tlogEntries[0]?.kindVersion?.kind).toBe("dsse");
    expect(keyless.verificationMaterial.timestampVerificationData?.rfc3161Timestamps).toHaveLength(
      1,
    );
    expect(standIn.requests).toEqual(
      expect.arrayContaining([
        "POST /api/v2/signingCert",
        "POST /api/v1/log/entries",
        "POST /api/v1/timestamp",
      ]),
    );
  });

  it("verifies against the stand-in's trusted root", () => {
    const v = verifyAttestation({
      bundle: keyless,
      logSha256,
      trustedRoot: standIn.trustedRoot,
      policy,
    });
    expect(v.signer).toEqual({ type: "certificate", identity: IDENTITY, issuer: ISSUER });
    expect(v.tlogEntries).toBe(1);
    expect(v.timestamps.map((t) => t.source).sort()).toEqual([
      "timestamp-authority",
      "transparency-log",
    ]);
    expect(v.predicateType).toBe("https://dpndncy.io/agent/runtime-trace/v1");
    expect(v.subject[0]).toEqual({ name: "attack.ndjson", digest: { sha256: logSha256 } });
  });

  it("accepts an identity regexp (unanchored, like cosign)", () => {
    const v = verifyAttestation({
      bundle: keyless,
      logSha256,
      trustedRoot: standIn.trustedRoot,
      policy: { identityRegExp: "^https://github\\.com/acme/app/", issuer: ISSUER },
    });
    expect(v.signer.type).toBe("certificate");
  });

  it("verifies a TSA-only bundle (GitHub private-instance shape: no Rekor) when a tlog is not required", async () => {
    const b = await signKeyless(statement, {
      endpoints: { fulcioURL: standIn.fulcioURL, tsaURL: standIn.tsaURL },
      identityProvider: staticToken(token),
    });
    expect(b.verificationMaterial.tlogEntries ?? []).toHaveLength(0);
    const input = { bundle: b, logSha256, trustedRoot: standIn.trustedRoot, policy };
    expect(verifyAttestation({ ...input, requireTlog: false }).timestamps).toHaveLength(1);
    // by default a root that lists a tlog requires an entry in it
    expectVerifyError(input, "TLOG_INVALID");
  });

  it("names the failure when the signing service is unreachable", async () => {
    const err = await signKeyless(statement, {
      endpoints: { fulcioURL: `${standIn.url}/nowhere`, rekorURL: standIn.rekorURL },
      identityProvider: staticToken(token),
      retries: 0,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignError);
    expect((err as SignError).code).toBe("SIGNING_FAILED");
  });
});

describe("local key", () => {
  const { privateKeyPem, publicKeyPem } = generateSigningKey();

  it("signs offline and verifies with the public key", async () => {
    const b = await signWithKey(statement, { privateKeyPem });
    expect(b.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
    expect(b.verificationMaterial.publicKey?.hint).toMatch(/^[0-9a-f]{64}$/);
    const v = verifyAttestation({ bundle: b, logSha256, publicKeyPem });
    expect(v.signer).toEqual({ type: "key", fingerprint: b.verificationMaterial.publicKey?.hint });
    expect(v.witnessesChecked).toBe(true);
  });

  it("signs with a Rekor witness, verified against the trusted root", async () => {
    const b = await signWithKey(statement, { privateKeyPem, rekorURL: standIn.rekorURL });
    expect(b.verificationMaterial.tlogEntries).toHaveLength(1);
    const v = verifyAttestation({
      bundle: b,
      logSha256,
      publicKeyPem,
      trustedRoot: standIn.trustedRoot,
    });
    expect(v.tlogEntries).toBe(1);
    // without a root the entry cannot be checked, and the result says so
    expect(verifyAttestation({ bundle: b, logSha256, publicKeyPem }).witnessesChecked).toBe(false);
  });

  it("refuses keys that are not P-256", () => {
    expect(() =>
      keySigner("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    ).toThrow(InputError);
  });
});

describe("negative cases, each with its exact error", () => {
  const { privateKeyPem, publicKeyPem } = generateSigningKey();
  let keyBundle: SerializedBundle;
  beforeAll(async () => {
    keyBundle = await signWithKey(statement, { privateKeyPem });
  });
  const root = () => standIn.trustedRoot;

  it("log changed by one byte: LOG_DIGEST_MISMATCH", async () => {
    const bytes = readFileSync(FIXTURE);
    bytes[100] = (bytes[100] as number) ^ 0x01;
    const path = join(dir, "attack.ndjson");
    writeFileSync(path, bytes);
    const changed = await sha256File(path);
    expectVerifyError(
      { bundle: keyless, logSha256: changed, trustedRoot: root(), policy },
      "LOG_DIGEST_MISMATCH",
    );
    expectVerifyError(
      { bundle: keyBundle, logSha256: changed, publicKeyPem },
      "LOG_DIGEST_MISMATCH",
    );
  });

  it("bundle from another log: LOG_DIGEST_MISMATCH", async () => {
    const other = join(dir, "other.ndjson");
    writeFileSync(other, readFileSync(FIXTURE, "utf8").split("\n").slice(0, 10).join("\n"));
    const otherBundle = await signKeyless(await statementFor(other), {
      endpoints: { fulcioURL: standIn.fulcioURL, rekorURL: standIn.rekorURL },
      identityProvider: staticToken(token),
    });
    const e = expectVerifyError(
      { bundle: otherBundle, logSha256, trustedRoot: root(), policy },
      "LOG_DIGEST_MISMATCH",
    );
    expect(e.message).toContain(await sha256File(other));
  });

  it("payload swapped: SIGNATURE_INVALID", async () => {
    const other = join(dir, "swap.ndjson");
    writeFileSync(other, readFileSync(FIXTURE, "utf8").replace("203.0.113.66", "203.0.113.67"));
    const swapped = await statementFor(other);
    // the swapped payload names the tampered log, so a digest check alone would pass for it
    const otherSha = await sha256File(other);
    expectVerifyError(
      { bundle: withPayload(keyless, swapped), logSha256: otherSha, trustedRoot: root(), policy },
      "SIGNATURE_INVALID",
    );
    expectVerifyError(
      { bundle: withPayload(keyBundle, swapped), logSha256: otherSha, publicKeyPem },
      "SIGNATURE_INVALID",
    );
  });

  it("wrong identity: IDENTITY_MISMATCH", () => {
    const base = { bundle: keyless, logSha256, trustedRoot: root() };
    expectVerifyError(
      { ...base, policy: { identity: `${IDENTITY}x`, issuer: ISSUER } },
      "IDENTITY_MISMATCH",
    );
    expectVerifyError(
      {
        ...base,
        policy: {
          identity: "https://github.com/acme/other/.github/workflows/ci.yml@refs/heads/main",
          issuer: ISSUER,
        },
      },
      "IDENTITY_MISMATCH",
    );
    expectVerifyError(
      { ...base, policy: { identityRegExp: "^https://gitlab\\.com/", issuer: ISSUER } },
      "IDENTITY_MISMATCH",
    );
  });

  it("wrong issuer: ISSUER_MISMATCH", () => {
    expectVerifyError(
      {
        bundle: keyless,
        logSha256,
        trustedRoot: root(),
        policy: { identity: IDENTITY, issuer: "https://gitlab.com" },
      },
      "ISSUER_MISMATCH",
    );
  });

  it("key mismatch: KEY_MISMATCH (other key, or a keyless bundle checked with --key)", () => {
    const other = generateSigningKey().publicKeyPem;
    const e = expectVerifyError(
      { bundle: keyBundle, logSha256, publicKeyPem: other },
      "KEY_MISMATCH",
    );
    expect(e.message).toContain(keyBundle.verificationMaterial.publicKey?.hint);
    // without a hint the signature check itself catches it
    const noHint = structuredClone(keyBundle);
    if (noHint.verificationMaterial.publicKey) noHint.verificationMaterial.publicKey.hint = "";
    expectVerifyError({ bundle: noHint, logSha256, publicKeyPem: other }, "SIGNATURE_INVALID");
    expectVerifyError({ bundle: keyless, logSha256, publicKeyPem }, "KEY_MISMATCH");
    expectVerifyError(
      { bundle: keyBundle, logSha256, trustedRoot: root(), policy },
      "KEY_REQUIRED",
    );
  });

  it("certificate outside its validity: CERT_EXPIRED", async () => {
    // Fulcio's clock an hour behind: the 10-minute certificate expired before Rekor and the
    // TSA (on the real clock) saw the signature.
    const stale = await startSigstoreStandIn({ caClock: new Date(Date.now() - 3_600_000) });
    try {
      const b = await signKeyless(statement, {
        endpoints: { fulcioURL: stale.fulcioURL, rekorURL: stale.rekorURL, tsaURL: stale.tsaURL },
        identityProvider: staticToken(token),
      });
      const e = expectVerifyError(
        { bundle: b, logSha256, trustedRoot: stale.trustedRoot, policy },
        "CERT_EXPIRED",
      );
      expect(e.message).toMatch(/certificate valid .*, signed at /);
    } finally {
      await stale.close();
    }
  });

  it("certificate from another CA: CERT_UNTRUSTED; timestamps from another TSA: TIMESTAMP_INVALID", async () => {
    const elsewhere = await startSigstoreStandIn();
    await elsewhere.close();
    const ours = standIn.trustedRoot as Record<string, unknown>;
    const theirs = elsewhere.trustedRoot as Record<string, unknown>;
    const otherCa = {
      ...ours,
      certificateAuthorities: theirs.certificateAuthorities,
      ctlogs: theirs.ctlogs,
    };
    expectVerifyError(
      { bundle: keyless, logSha256, trustedRoot: otherCa, policy },
      "CERT_UNTRUSTED",
    );
    expectVerifyError(
      { bundle: keyless, logSha256, trustedRoot: theirs, policy },
      "TIMESTAMP_INVALID",
    );
  });

  it("not in-toto: PAYLOAD_TYPE, NOT_A_STATEMENT, WRONG_PREDICATE", async () => {
    const signed = async (type: string, data: Buffer) =>
      (await import("@sigstore/bundle")).bundleToJSON(
        await new DSSEBundleBuilder({ signer: keySigner(privateKeyPem), witnesses: [] }).create({
          data,
          type,
        }),
      );
    const base = { logSha256, publicKeyPem };
    expectVerifyError({ ...base, bundle: await signed("text/plain", statement) }, "PAYLOAD_TYPE");
    const intoto = "application/vnd.in-toto+json";
    expectVerifyError(
      { ...base, bundle: await signed(intoto, Buffer.from("[1,2]")) },
      "NOT_A_STATEMENT",
    );
    const st = JSON.parse(statement.toString()) as Record<string, unknown>;
    expectVerifyError(
      {
        ...base,
        bundle: await signed(
          intoto,
          Buffer.from(JSON.stringify({ ...st, _type: "https://in-toto.io/Statement/v0.1" })),
        ),
      },
      "NOT_A_STATEMENT",
    );
    expectVerifyError(
      {
        ...base,
        bundle: await signed(
          intoto,
          Buffer.from(JSON.stringify({ ...st, predicateType: "https://slsa.dev/provenance/v1" })),
        ),
      },
      "WRONG_PREDICATE",
    );
  });

  it("garbage bundle: BUNDLE_INVALID", () => {
    expectVerifyError({ bundle: { mediaType: "x" }, logSha256, publicKeyPem }, "BUNDLE_INVALID");
  });
});

describe("endpoint choice and the private-repository rule", () => {
  it("public repositories default to public-good Fulcio and Rekor", () => {
    expect(resolveEndpoints({ private: false })).toEqual({ ...PUBLIC_GOOD, tsaURL: undefined });
    expect(resolveEndpoints({ private: false, tsaURL: "https://tsa.example/" })).toEqual({
      fulcioURL: PUBLIC_GOOD.fulcioURL,
      rekorURL: undefined,
      tsaURL: "https://tsa.example",
    });
  });

  it("private GitHub repositories use GitHub's instance, like @actions/attest: Fulcio + TSA, no Rekor", () => {
    expect(resolveEndpoints({ private: true, platform: "github" })).toEqual({
      fulcioURL: "https://fulcio.githubapp.com",
      rekorURL: undefined,
      tsaURL: "https://timestamp.githubapp.com",
    });
    // GHE.com (data residency): the tenant's own instance, derived from GITHUB_SERVER_URL
    expect(
      resolveEndpoints({ private: true, platform: "github", serverUrl: "https://acme.ghe.com" }),
    ).toEqual({
      fulcioURL: "https://fulcio.acme.ghe.com",
      rekorURL: undefined,
      tsaURL: "https://timestamp.acme.ghe.com",
    });
    expect(
      resolveEndpoints({ private: true, platform: "github", serverUrl: "https://github.com/" }),
    ).toMatchObject({ fulcioURL: "https://fulcio.githubapp.com" });
  });

  it("private repositories never reach the public Rekor unless explicitly allowed", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as SignError).code;
      }
      return "no error";
    };
    expect(
      code(() =>
        resolveEndpoints({ private: true, platform: "github", rekorURL: PUBLIC_GOOD.rekorURL }),
      ),
    ).toBe("PUBLIC_REKOR_REFUSED");
    expect(
      code(() =>
        resolveEndpoints({
          private: true,
          fulcioURL: PUBLIC_GOOD.fulcioURL,
          rekorURL: `${PUBLIC_GOOD.rekorURL}/`,
        }),
      ),
    ).toBe("PUBLIC_REKOR_REFUSED");
    expect(code(() => resolveEndpoints({ private: true, platform: "gitlab" }))).toBe(
      "ENDPOINT_REQUIRED",
    );
    expect(
      resolveEndpoints({
        private: true,
        platform: "github",
        rekorURL: PUBLIC_GOOD.rekorURL,
        allowPublicRekor: true,
      }).rekorURL,
    ).toBe(PUBLIC_GOOD.rekorURL);
    expect(
      resolveEndpoints({ private: true, fulcioURL: "https://f.corp", tsaURL: "https://t.corp" }),
    ).toEqual({
      fulcioURL: "https://f.corp",
      rekorURL: undefined,
      tsaURL: "https://t.corp",
    });
  });
});

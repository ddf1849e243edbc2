// Verifying a runtime-trace bundle. @sigstore/verify does the cryptography (signature over
// PAE, certificate chain, SCTs, tlog inclusion proof and SET, RFC 3161 timestamps) against a
// trusted root we are given; we add the policy (identity, issuer, key), the in-toto checks, and
// the binding to the log file, and we turn each failure into one named code.
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { createReadStream } from "node:fs";
import { type Bundle, bundleFromJSON } from "@sigstore/bundle";
import type { X509Certificate } from "@sigstore/core";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import {
  type SignedEntity,
  type Signer,
  type TrustMaterial,
  toSignedEntity,
  toTrustMaterial,
  VerificationError,
  Verifier,
} from "@sigstore/verify";
import { preAuthEncoding } from "./dsse.js";
import { InputError, VerifyError } from "./errors.js";
import { keyFingerprint, loadPublicKey } from "./sign.js";
import {
  INTOTO_PAYLOAD_TYPE,
  PREDICATE_TYPE,
  type ResourceDescriptor,
  STANDARD_PREDICATE_TYPE,
  STATEMENT_TYPE,
} from "./statement.js";

export interface IdentityPolicy {
  /** Exact certificate SAN (e.g. https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main). */
  identity?: string;
  /** Unanchored regular expression over the SAN, as cosign's --certificate-identity-regexp. */
  identityRegExp?: string;
  /** Exact OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8), e.g. https://token.actions.githubusercontent.com */
  issuer?: string;
}

export interface VerifyInput {
  /** The bundle as parsed JSON. */
  bundle: unknown;
  /** SHA-256 (hex) of the log file as it is now; see sha256File. */
  logSha256: string;
  /** Trusted root (protobuf-specs JSON): required for certificates, optional with a key. */
  trustedRoot?: unknown;
  /** PEM public key: verify a key-signed bundle. */
  publicKeyPem?: string;
  policy?: IdentityPolicy;
  /** Require a transparency-log entry (keyless default: when the trusted root lists a tlog). */
  requireTlog?: boolean;
  /** Only our predicate, not also the standard runtime-trace v0.2. */
  onlyOurPredicate?: boolean;
}

export interface Verified {
  signer:
    | { type: "certificate"; identity: string | null; issuer: string | null }
    | { type: "key"; fingerprint: string };
  /** Verified signing times. */
  timestamps: { source: "transparency-log" | "timestamp-authority"; time: string }[];
  tlogEntries: number;
  /** False when a key-signed bundle's tlog entries/timestamps were ignored (no trusted root). */
  witnessesChecked: boolean;
  predicateType: string;
  subject: ResourceDescriptor[];
  predicate: unknown;
  logSha256: string;
}

export function verifyAttestation(input: VerifyInput): Verified {
  // Operator inputs first: a bad trusted root or key is a configuration error (exit 3) whatever
  // the bundle holds.
  const givenRoot =
    input.trustedRoot === undefined ? undefined : parseTrustedRoot(input.trustedRoot);
  const givenKey = input.publicKeyPem === undefined ? undefined : loadPublicKey(input.publicKeyPem);
  const bundle = parseBundle(input.bundle);
  const envelope = dsseEnvelope(bundle);
  const keyMode = givenKey !== undefined;
  const material = bundle.verificationMaterial.content;
  if (keyMode && material.$case !== "publicKey") {
    throw new VerifyError(
      "KEY_MISMATCH",
      "--key given, but the bundle is signed with a certificate (keyless); verify it with --certificate-identity and --certificate-oidc-issuer",
    );
  }
  if (!keyMode && material.$case === "publicKey") {
    throw new VerifyError(
      "KEY_REQUIRED",
      "the bundle is signed with a key; give its public key with --key",
    );
  }

  let entity: SignedEntity;
  try {
    entity = toSignedEntity(bundle);
  } catch (e) {
    throw new VerifyError(
      "BUNDLE_INVALID",
      `unreadable verification material: ${(e as Error).message}`,
    );
  }
  let trust: TrustMaterial;
  let thresholds: { tlogThreshold: number; ctlogThreshold: number; timestampThreshold: number };
  let witnessesChecked = true;
  let fingerprint = "";
  if (givenKey) {
    const key = givenKey;
    fingerprint = keyFingerprint(key);
    const hint = material.$case === "publicKey" ? material.publicKey.hint : "";
    if (hint && hint !== fingerprint) {
      throw new VerifyError(
        "KEY_MISMATCH",
        `bundle was signed by key ${hint}, the given key is ${fingerprint}`,
      );
    }
    const root =
      input.trustedRoot === undefined ? emptyRoot() : parseTrustedRoot(input.trustedRoot);
    trust = toTrustMaterial(root, () => ({ publicKey: key, validFor: () => true }));
    if (input.trustedRoot === undefined) {
      // Nothing to check witnesses against: the key alone is the trust anchor.
      witnessesChecked = entity.tlogEntries.length + entity.timestamps.length === 0;
      entity = { ...entity, tlogEntries: [], timestamps: [] };
    }
    thresholds = { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 };
  } else {
    if (givenRoot === undefined) {
      throw new InputError(
        "TRUSTED_ROOT_REQUIRED",
        "a certificate-signed bundle needs --trusted-root (the Sigstore instance's trusted_root.json)",
      );
    }
    const policy = input.policy ?? {};
    if ((!policy.identity && !policy.identityRegExp) || !policy.issuer) {
      throw new InputError(
        "POLICY_REQUIRED",
        "a certificate-signed bundle needs an expected identity (exact or regexp) and OIDC issuer",
      );
    }
    const root = givenRoot;
    trust = toTrustMaterial(root);
    thresholds = {
      tlogThreshold: (input.requireTlog ?? root.tlogs.length > 0) ? 1 : 0,
      ctlogThreshold: root.ctlogs.length > 0 ? 1 : 0,
      // A certificate lives ten minutes: without a verified signing time it proves nothing.
      timestampThreshold: 1,
    };
  }

  let signer: Signer;
  try {
    signer = new Verifier(trust, thresholds).verify(entity);
  } catch (e) {
    throw diagnose(e, entity, envelope);
  }

  let signerInfo: Verified["signer"];
  if (keyMode) {
    signerInfo = { type: "key", fingerprint };
  } else {
    const identity = signer.identity?.subjectAlternativeName ?? null;
    const issuer = signer.identity?.extensions?.issuer ?? null;
    checkIdentity(input.policy ?? {}, identity, issuer);
    signerInfo = { type: "certificate", identity, issuer };
  }

  const statement = parseStatement(envelope, input.onlyOurPredicate ?? false);
  const subject = statement.subject;
  if (!subject.some((s) => s.digest?.sha256?.toLowerCase() === input.logSha256.toLowerCase())) {
    const attested = subject
      .map((s) => s.digest?.sha256)
      .filter((d): d is string => typeof d === "string");
    throw new VerifyError(
      "LOG_DIGEST_MISMATCH",
      `log SHA-256 ${input.logSha256} is not the attested ${attested.join(", ") || "(none)"}`,
    );
  }
  return {
    signer: signerInfo,
    timestamps: entity.timestamps.map((t) => ({
      source: t.$case,
      time: timestampOf(t).toISOString(),
    })),
    tlogEntries: entity.tlogEntries.length,
    witnessesChecked,
    predicateType: statement.predicateType,
    subject,
    predicate: statement.predicate,
    logSha256: input.logSha256,
  };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

// ---- pieces ----

function parseBundle(json: unknown): Bundle {
  try {
    return bundleFromJSON(json);
  } catch (e) {
    throw new VerifyError("BUNDLE_INVALID", `not a Sigstore bundle: ${(e as Error).message}`);
  }
}

type Envelope = Extract<Bundle["content"], { $case: "dsseEnvelope" }>["dsseEnvelope"];

function dsseEnvelope(bundle: Bundle): Envelope {
  if (bundle.content.$case !== "dsseEnvelope") {
    throw new VerifyError(
      "BUNDLE_INVALID",
      "bundle holds a message signature, not a DSSE envelope",
    );
  }
  return bundle.content.dsseEnvelope;
}

export function parseTrustedRoot(json: unknown): TrustedRoot {
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (typeof mediaType !== "string" || !mediaType.includes("trustedroot")) {
    throw new InputError("TRUSTED_ROOT_INVALID", "not a Sigstore trusted root (mediaType)");
  }
  try {
    const root = TrustedRoot.fromJSON(json);
    toTrustMaterial(root); // parses every key and certificate now, not mid-verification
    return root;
  } catch (e) {
    throw new InputError("TRUSTED_ROOT_INVALID", (e as Error).message);
  }
}

function emptyRoot(): TrustedRoot {
  return {
    mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  };
}

function timestampOf(t: SignedEntity["timestamps"][number]): Date {
  return t.$case === "transparency-log"
    ? new Date(Number(t.tlogEntry.integratedTime) * 1000)
    : t.timestamp.signingTime;
}

/** Turns @sigstore/verify's error into our code, looking closer where its code is too coarse. */
function diagnose(e: unknown, entity: SignedEntity, envelope: Envelope): Error {
  if (e instanceof VerifyError || e instanceof InputError) return e;
  if (!(e instanceof VerificationError)) {
    // A parse failure inside the library (malformed certificate, timestamp, proof).
    return new VerifyError("BUNDLE_INVALID", (e as Error).message ?? String(e), { cause: e });
  }
  const msg = e.message;
  switch (e.code) {
    case "SIGNATURE_ERROR":
      return new VerifyError("SIGNATURE_INVALID", "the signature does not cover this envelope", {
        cause: e,
      });
    case "TLOG_BODY_ERROR":
      // The log entry is checked before the signature; a swapped payload lands here first.
      return entity.key.$case === "certificate" &&
        !signatureCovers(envelope, certKey(entity.key.certificate))
        ? new VerifyError("SIGNATURE_INVALID", "the signature does not cover this envelope", {
            cause: e,
          })
        : new VerifyError("TLOG_MISMATCH", `transparency-log entry is for other content: ${msg}`, {
            cause: e,
          });
    case "CERTIFICATE_ERROR": {
      if (entity.key.$case === "certificate") {
        const cert = entity.key.certificate;
        const bad = entity.timestamps.map(timestampOf).find((t) => !cert.validForDate(t));
        if (bad) {
          return new VerifyError(
            "CERT_EXPIRED",
            `certificate valid ${cert.notBefore.toISOString()}..${cert.notAfter.toISOString()}, signed at ${bad.toISOString()}`,
            { cause: e },
          );
        }
      }
      return new VerifyError("CERT_UNTRUSTED", `${msg}${causeText(e)}`, { cause: e });
    }
    case "PUBLIC_KEY_ERROR":
      return new VerifyError("KEY_MISMATCH", msg, { cause: e });
    case "TIMESTAMP_ERROR":
      return new VerifyError("TIMESTAMP_INVALID", `${msg}${causeText(e)}`, { cause: e });
    case "TLOG_ERROR":
    case "TLOG_INCLUSION_PROOF_ERROR":
    case "TLOG_INCLUSION_PROMISE_ERROR":
    case "TLOG_MISSING_INCLUSION_ERROR":
      return new VerifyError("TLOG_INVALID", `${msg}${causeText(e)}`, { cause: e });
    default:
      return new VerifyError("SIGNATURE_INVALID", msg, { cause: e });
  }
}

function causeText(e: { cause?: unknown }): string {
  return e.cause instanceof Error ? ` (${e.cause.message})` : "";
}

function certKey(cert: X509Certificate): KeyObject {
  return createPublicKey({ key: cert.publicKey, format: "der", type: "spki" });
}

/** Our own PAE, used only to tell a broken signature from a mismatched log entry. */
function signatureCovers(envelope: Envelope, key: KeyObject): boolean {
  const pae = preAuthEncoding(envelope.payloadType, envelope.payload);
  return envelope.signatures.some((s) => cryptoVerify("sha256", pae, key, s.sig));
}

/** GitHub certificates name the workflow file that ran the job, which in a reusable workflow is not the caller. */
function reusableHint(expected: string, actual: string | null): string {
  const wf = /\/\.github\/workflows\/[^@]+@/;
  return actual && wf.test(expected) && wf.test(actual)
    ? " (in a reusable workflow the certificate names the called workflow file, its job_workflow_ref, not the caller's GITHUB_WORKFLOW_REF)"
    : "";
}

function checkIdentity(p: IdentityPolicy, identity: string | null, issuer: string | null): void {
  if (p.identity !== undefined && identity !== p.identity) {
    throw new VerifyError(
      "IDENTITY_MISMATCH",
      `expected identity ${p.identity}, certificate has ${identity ?? "(none)"}${reusableHint(p.identity, identity)}`,
    );
  }
  if (
    p.identityRegExp !== undefined &&
    (identity === null || !new RegExp(p.identityRegExp).test(identity))
  ) {
    throw new VerifyError(
      "IDENTITY_MISMATCH",
      `identity ${identity ?? "(none)"} does not match /${p.identityRegExp}/`,
    );
  }
  if (p.issuer !== undefined && issuer !== p.issuer) {
    throw new VerifyError(
      "ISSUER_MISMATCH",
      `expected issuer ${p.issuer}, certificate has ${issuer ?? "(none)"}`,
    );
  }
}

interface ParsedStatement {
  subject: ResourceDescriptor[];
  predicateType: string;
  predicate: unknown;
}

function parseStatement(envelope: Envelope, onlyOurs: boolean): ParsedStatement {
  if (envelope.payloadType !== INTOTO_PAYLOAD_TYPE) {
    throw new VerifyError(
      "PAYLOAD_TYPE",
      `payloadType is ${JSON.stringify(envelope.payloadType)}, expected ${INTOTO_PAYLOAD_TYPE}`,
    );
  }
  let s: unknown;
  try {
    s = JSON.parse(envelope.payload.toString("utf8"));
  } catch {
    throw new VerifyError("NOT_A_STATEMENT", "payload is not JSON");
  }
  if (typeof s !== "object" || s === null || Array.isArray(s)) {
    throw new VerifyError("NOT_A_STATEMENT", "payload is not a JSON object");
  }
  const st = s as Record<string, unknown>;
  if (st._type !== STATEMENT_TYPE) {
    throw new VerifyError(
      "NOT_A_STATEMENT",
      `_type is ${JSON.stringify(st._type)}, expected ${STATEMENT_TYPE}`,
    );
  }
  if (!Array.isArray(st.subject) || st.subject.some((x) => typeof x !== "object" || x === null)) {
    throw new VerifyError("NOT_A_STATEMENT", "subject is not a list of resource descriptors");
  }
  const accepted = onlyOurs ? [PREDICATE_TYPE] : [PREDICATE_TYPE, STANDARD_PREDICATE_TYPE];
  if (typeof st.predicateType !== "string" || !accepted.includes(st.predicateType)) {
    throw new VerifyError(
      "WRONG_PREDICATE",
      `predicateType is ${JSON.stringify(st.predicateType)}, expected ${accepted.join(" or ")}`,
    );
  }
  return {
    subject: st.subject as ResourceDescriptor[],
    predicateType: st.predicateType,
    predicate: st.predicate,
  };
}

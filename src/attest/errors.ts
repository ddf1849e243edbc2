// Named, coded errors for signing and verification. The CLI maps `exitCode` straight to the
// process exit status; tests assert `code`, so every failure a user can meet has its own.

export type VerifyErrorCode =
  | "BUNDLE_INVALID" // not a Sigstore bundle, or not a DSSE one
  | "LOG_DIGEST_MISMATCH" // the log's SHA-256 is not a subject digest
  | "IDENTITY_MISMATCH" // certificate SAN differs from --certificate-identity(-regexp)
  | "ISSUER_MISMATCH" // certificate OIDC issuer differs from --certificate-oidc-issuer
  | "SIGNATURE_INVALID" // signature does not cover this envelope
  | "PAYLOAD_TYPE" // DSSE payloadType is not application/vnd.in-toto+json
  | "NOT_A_STATEMENT" // payload is not an in-toto v1 Statement
  | "WRONG_PREDICATE" // predicateType is not ours (or the standard runtime-trace)
  | "CERT_EXPIRED" // certificate not valid at the signing time (tlog/TSA timestamp)
  | "CERT_UNTRUSTED" // certificate does not chain to the trusted root, or lacks SCTs
  | "KEY_MISMATCH" // bundle signed by another key, or by a certificate when --key was given
  | "KEY_REQUIRED" // bundle signed by a key and no --key given
  | "TLOG_INVALID" // transparency-log entry or inclusion proof does not verify
  | "TLOG_MISMATCH" // transparency-log entry is for different content
  | "TIMESTAMP_INVALID" // no verifiable timestamp (tlog integrated time or TSA)
  | "TRACE_NOT_CLEAN" // signature fine, but --require-clean and the trace reports problems
  | "TRACE_TAMPERED" // --require-complete: the trace says it was tampered with (integrity.untampered false)
  | "TRACE_INCOMPLETE"; // --require-complete: the agent did not run to the end (integrity.complete not true)

export type InputErrorCode =
  | "BUNDLE_UNREADABLE" // the bundle file is not JSON (truncated download?)
  | "TRUSTED_ROOT_REQUIRED"
  | "POLICY_REQUIRED"
  | "TRUSTED_ROOT_INVALID"
  | "KEY_INVALID"
  | "UNREADABLE";

export type SignErrorCode =
  | "PUBLIC_REKOR_REFUSED" // private repository and the public Rekor without --allow-public-rekor
  | "ENDPOINT_REQUIRED" // private repository off GitHub: no safe default instance
  | "NO_IDENTITY_TOKEN"
  | "SIGNING_FAILED"; // Fulcio/Rekor/TSA error

/** Verification said no: exit 1. */
export class VerifyError extends Error {
  readonly code: VerifyErrorCode;
  readonly exitCode = 1;
  constructor(code: VerifyErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = "VerifyError";
    this.code = code;
  }
}

/** An input could not be read or parsed (key, trusted root, file): exit 3. */
export class InputError extends Error {
  readonly code: InputErrorCode;
  readonly exitCode = 3;
  constructor(code: InputErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = "InputError";
    this.code = code;
  }
}

export type ServiceErrorCode = "TRUSTED_ROOT_UNAVAILABLE"; // the TUF repository cannot be reached

/** A service we need could not be reached: exit 4 (the message names the URL and the cause). */
export class ServiceError extends Error {
  readonly code: ServiceErrorCode;
  readonly exitCode = 4;
  constructor(code: ServiceErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = "ServiceError";
    this.code = code;
  }
}

/** Signing refused or failed: exit 2 for refusals (configuration), 4 for service failures. */
export class SignError extends Error {
  readonly code: SignErrorCode;
  readonly exitCode: number;
  constructor(code: SignErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = "SignError";
    this.code = code;
    this.exitCode = code === "SIGNING_FAILED" || code === "NO_IDENTITY_TOKEN" ? 4 : 2;
  }
}

// What a bundle we just signed says about itself, for the job summary: the identity and
// issuer Fulcio wrote into the certificate (what a verifier must pass, and in a reusable
// workflow not what GITHUB_WORKFLOW_REF says), and the transparency-log entry. Read, not
// verified: this is our own fresh bundle; `dpndncy verify` is what checks it.
import { bundleFromJSON } from "@sigstore/bundle";
import { X509Certificate } from "@sigstore/core";

export interface BundleInfo {
  /** Certificate SAN (GitHub: https://github.com/<job_workflow_ref>); null for key bundles. */
  identity: string | null;
  /** Fulcio's OIDC issuer extension. */
  issuer: string | null;
  /** Index of the first transparency-log entry, when there is one. */
  tlogIndex: string | null;
}

const OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8";
const OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1";

export function bundleInfo(json: unknown): BundleInfo {
  const bundle = bundleFromJSON(json);
  const m = bundle.verificationMaterial;
  const raw =
    m.content.$case === "certificate"
      ? m.content.certificate.rawBytes
      : m.content.$case === "x509CertificateChain"
        ? m.content.x509CertificateChain.certificates[0]?.rawBytes
        : undefined;
  let identity: string | null = null;
  let issuer: string | null = null;
  if (raw) {
    const cert = X509Certificate.parse(Buffer.from(raw));
    identity = cert.subjectAltName ?? null;
    const v2 = cert.extension(OID_ISSUER_V2)?.valueObj.subs?.[0]?.value;
    issuer = v2
      ? Buffer.from(v2).toString("utf8")
      : (cert.extension(OID_ISSUER_V1)?.value.toString("ascii") ?? null);
  }
  const entry = m.tlogEntries[0];
  return { identity, issuer, tlogIndex: entry ? String(entry.logIndex) : null };
}

/** A link to a Rekor entry: the public-good search UI, or the log's own API elsewhere. */
export function rekorEntryUrl(rekorURL: string, logIndex: string): string {
  const base = rekorURL.replace(/\/+$/, "");
  return base === "https://rekor.sigstore.dev"
    ? `https://search.sigstore.dev/?logIndex=${logIndex}`
    : `${base}/api/v1/log/entries?logIndex=${logIndex}`;
}

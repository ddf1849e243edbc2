/**
 * Turns the `sign` input into a concrete signing choice for this job. Keyless on GitHub takes
 * the job's OIDC token; without `id-token: write` there is none, and the error says exactly
 * how to fix the workflow.
 */
import { readFileSync } from "node:fs";
import * as core from "@actions/core";
import type { BundleInfo } from "../attest/bundle-info.js";
import { PUBLIC_GOOD, resolveEndpoints } from "../attest/sign.js";
import { repositoryVisibility } from "../attest/visibility.js";
import type { SignChoice } from "../job/finish.js";
import type { CiIdentity } from "../platform/detect.js";
import type { ActionInputs } from "./inputs.js";

export const MISSING_ID_TOKEN =
  "sign: keyless needs an OIDC token, and this job has none. Add to the job (or workflow):\n" +
  "  permissions:\n    id-token: write\n    contents: read\n" +
  "or set `sign: key` (with `signing-key`) or `sign: none`. Pull requests from forks never get a token.";

export async function signChoice(inputs: ActionInputs, ci: CiIdentity): Promise<SignChoice> {
  if (inputs.sign === "none") return { kind: "none" };
  if (inputs.sign === "key") {
    return { kind: "key", privateKeyPem: inputs.signingKey ?? "" };
  }
  if (!process.env.ACTIONS_ID_TOKEN_REQUEST_URL || !process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    throw new Error(MISSING_ID_TOKEN);
  }
  const token = await core.getIDToken("sigstore");
  const endpoints = resolveEndpoints({
    private: repositoryVisibility(ci, process.env, (f) => readFileSync(f, "utf8")) !== "public",
    platform: ci.platform,
    ...(ci.serverUrl ? { serverUrl: ci.serverUrl } : {}),
    ...(inputs.fulcioUrl ? { fulcioURL: inputs.fulcioUrl } : {}),
    ...(inputs.rekorUrl ? { rekorURL: inputs.rekorUrl } : {}),
    ...(inputs.tsaUrl ? { tsaURL: inputs.tsaUrl } : {}),
  });
  return { kind: "keyless", token, endpoints };
}

export interface VerifyHint {
  sign: SignChoice;
  /** What the signed bundle's certificate says (bundle-info.ts); null when unsigned. */
  info: BundleInfo | null;
  /** The artifact holding the files, when uploaded. */
  artifact?: string | undefined;
  /** dist/cli.js of this action, and its SHA-256: the CLI that verifies, pinned. */
  cli?: { url: string; sha256: string } | undefined;
}

const sq = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/**
 * The exact commands a reader runs to verify this job's attestation: fetch the CLI this job
 * used by its digest, then verify with the identity and issuer the certificate holds. The
 * identity is read from the certificate, not from GITHUB_WORKFLOW_REF: in a reusable
 * workflow Fulcio names the called workflow (job_workflow_ref), not the caller.
 */
export function verifyCommand(h: VerifyHint): string | undefined {
  if (h.sign.kind === "none") return undefined;
  const lines: string[] = [];
  if (h.artifact) lines.push(`# files: artifact ${h.artifact} (actions/download-artifact)`);
  if (h.cli) {
    lines.push(`curl -fsSLo cli.js ${h.cli.url}`);
    lines.push(`echo '${h.cli.sha256}  cli.js' | sha256sum -c`);
  }
  const files = "events.ndjson.sigstore.json --log events.ndjson";
  if (h.sign.kind === "key") {
    lines.push(`node cli.js verify ${files} --key signing-key.pub.pem   # your public key`);
    return lines.join("\n");
  }
  const identity = h.info?.identity ?? "<the certificate identity>";
  const issuer = h.info?.issuer ?? "https://token.actions.githubusercontent.com";
  const publicGood = h.sign.endpoints.fulcioURL === PUBLIC_GOOD.fulcioURL;
  if (!publicGood) {
    lines.push(
      `# signed by ${new URL(h.sign.endpoints.fulcioURL).hostname}: give its trusted root (--trusted-root FILE, or --tuf-mirror URL --tuf-root FILE)`,
    );
  }
  lines.push(
    `node cli.js verify ${files} \\\n  --certificate-identity ${sq(identity)} \\\n  --certificate-oidc-issuer ${issuer}${publicGood ? "" : " \\\n  --trusted-root trusted_root.json"}`,
  );
  return lines.join("\n");
}

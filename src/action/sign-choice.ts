/**
 * Turns the `sign` input into a concrete signing choice for this job. Keyless on GitHub takes
 * the job's OIDC token; without `id-token: write` there is none, and the error says exactly
 * how to fix the workflow.
 */
import { readFileSync } from "node:fs";
import * as core from "@actions/core";
import { resolveEndpoints } from "../attest/sign.js";
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

/** The exact command a reader runs to verify this job's attestation. */
export function verifyCommand(sign: SignChoice, env: NodeJS.ProcessEnv): string | undefined {
  const files = "events.ndjson.sigstore.json --log events.ndjson";
  if (sign.kind === "key") return `npx dpndncy verify ${files} --key signing-key.pub.pem`;
  if (sign.kind !== "keyless") return undefined;
  const server = env.GITHUB_SERVER_URL ?? "https://github.com";
  const identity = env.GITHUB_WORKFLOW_REF
    ? `${server}/${env.GITHUB_WORKFLOW_REF}`
    : "<workflow identity>";
  return `npx dpndncy verify ${files} \\\n  --certificate-identity '${identity}' \\\n  --certificate-oidc-issuer https://token.actions.githubusercontent.com`;
}

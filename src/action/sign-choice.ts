/**
 * Turns the `sign` input into a concrete signing choice for this job. Keyless on GitHub takes
 * the job's OIDC token; without `id-token: write` there is none, and the error says exactly
 * how to fix the workflow.
 */
import { readFileSync } from "node:fs";
import * as core from "@actions/core";
import { resolveEndpoints } from "../attest/sign.js";
import type { SignChoice } from "../job/finish.js";
import type { CiIdentity } from "../platform/detect.js";
import type { ActionInputs } from "./inputs.js";

export const MISSING_ID_TOKEN =
  "sign: keyless needs an OIDC token, and this job has none. Add to the job (or workflow):\n" +
  "  permissions:\n    id-token: write\n    contents: read\n" +
  "or set `sign: key` (with `signing-key`) or `sign: none`. Pull requests from forks never get a token.";

/** Repository visibility from the event payload; unknown counts as private (the safe side). */
export function repositoryIsPrivate(eventPath: string | undefined): boolean {
  if (!eventPath) return true;
  try {
    const event = JSON.parse(readFileSync(eventPath, "utf8")) as {
      repository?: { private?: boolean; visibility?: string };
    };
    const repo = event.repository;
    if (repo?.visibility) return repo.visibility !== "public";
    return repo?.private !== false;
  } catch {
    return true;
  }
}

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
    private: repositoryIsPrivate(process.env.GITHUB_EVENT_PATH),
    platform: ci.platform,
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

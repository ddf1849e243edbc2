/**
 * Egress that a GitHub-hosted job needs for itself in enforce mode, allowed by default
 * (input `allow-github-endpoints: false` turns it off). Runner.Worker is exempt from the
 * verdicts, but the steps it spawns are not: `actions/checkout` clones from github.com,
 * `actions/cache` and `actions/upload-artifact` talk to the results service and its blob
 * storage, and our own post step asks for an OIDC token and signs with Sigstore.
 */
import { githubPrivateEndpoints } from "../attest/sign.js";
import { type Endpoint, parseEndpoint } from "../policy/endpoint.js";
import type { SignMode } from "./inputs.js";

export const GITHUB_JOB_ENDPOINTS: readonly string[] = [
  "github.com:443", // git over HTTPS (actions/checkout)
  "api.github.com:443", // REST API used by checkout and most actions
  "codeload.github.com:443", // archive downloads (checkout without git, `uses:` of actions)
  "objects.githubusercontent.com:443", // release assets and LFS objects
  "*.actions.githubusercontent.com:443", // results service (cache v2, artifacts v4), OIDC token, pipelines
  "*.blob.core.windows.net:443", // storage behind cache and artifact signed URLs
];

/** What our own post step needs to sign keylessly (public-good and GitHub's instance). */
export const SIGSTORE_ENDPOINTS: readonly string[] = [
  "fulcio.sigstore.dev:443",
  "rekor.sigstore.dev:443",
  "fulcio.githubapp.com:443",
  "timestamp.githubapp.com:443",
];

/** SIGSTORE_ENDPOINTS, with GitHub's instance for this server (a GHE.com tenant has its own). */
export function sigstoreEndpoints(serverUrl: string | undefined): string[] {
  const gh = githubPrivateEndpoints(serverUrl);
  const hosts = [gh.fulcioURL, gh.tsaURL].map((u) => `${new URL(u).hostname}:443`);
  return [...new Set([...SIGSTORE_ENDPOINTS, ...hosts])];
}

export function defaultGithubAllow(
  sign: SignMode,
  custom: (string | undefined)[],
  serverUrl: string | undefined = process.env.GITHUB_SERVER_URL,
): Endpoint[] {
  const extra = custom
    .filter((u): u is string => u !== undefined)
    .map((u) => {
      const url = new URL(u);
      return `${url.hostname}${url.port ? `:${url.port}` : url.protocol === "https:" ? ":443" : ":80"}`;
    });
  const list = [
    ...GITHUB_JOB_ENDPOINTS,
    ...(sign === "keyless" ? sigstoreEndpoints(serverUrl) : []),
    ...extra,
  ];
  return list.map((e) => parseEndpoint(e, "built-in GitHub endpoint list"));
}

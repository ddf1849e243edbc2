/**
 * The agent binary this version of the action runs, pinned by SHA-256 inside the action's
 * own bundle so that a swapped release asset is refused before it is ever executed.
 * The release workflow rewrites `sha256` when it publishes the binary; until a release
 * exists it is null and the action needs `agent-url` + `agent-sha256` (a mirror or a build
 * of your own), and says so.
 */
export const AGENT_RELEASE: { version: string; url: string; sha256: string | null } = {
  version: "0.1.0",
  url: "https://github.com/dpndncy/agent/releases/download/v0.1.0/dpndncy-agent-linux-x86_64",
  sha256: null,
};

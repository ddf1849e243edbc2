/**
 * Gets the agent binary for the action: tool cache first, else download; in both cases the
 * file's SHA-256 is checked against the pinned digest BEFORE it is made executable or run.
 * The cached copy is re-verified on every use: on self-hosted runners the tool cache outlives
 * jobs, and an earlier job could have replaced it.
 */
import { chmod } from "node:fs/promises";
import * as tc from "@actions/tool-cache";
import { AGENT_RELEASE } from "./release.js";
import { assertSha256 } from "./verify-binary.js";

export interface AgentSource {
  url: string;
  sha256: string;
  version: string;
}

export class NoPinnedAgentError extends Error {
  constructor() {
    super(
      "this build of the action has no published agent binary pinned; set `agent-url` and `agent-sha256` (a mirror or your own build of build/dpndncy-agent)",
    );
    this.name = "NoPinnedAgentError";
  }
}

/** Chooses where the agent comes from: explicit inputs win, else the pinned release. */
export function agentSource(agentUrl?: string, agentSha256?: string): AgentSource {
  if (agentUrl && !agentSha256) {
    throw new Error("input agent-url needs agent-sha256: dpndncy never runs an unverified binary");
  }
  if (agentSha256) {
    return {
      url: agentUrl ?? AGENT_RELEASE.url,
      sha256: agentSha256,
      version: `${AGENT_RELEASE.version}-${agentSha256.slice(0, 12)}`,
    };
  }
  if (!AGENT_RELEASE.sha256) throw new NoPinnedAgentError();
  return { url: AGENT_RELEASE.url, sha256: AGENT_RELEASE.sha256, version: AGENT_RELEASE.version };
}

const TOOL = "dpndncy-agent";

export async function acquireAgent(src: AgentSource): Promise<{ path: string; cached: boolean }> {
  const cachedDir = tc.find(TOOL, src.version);
  if (cachedDir) {
    const path = `${cachedDir}/${TOOL}`;
    await assertSha256(path, src.sha256);
    return { path, cached: true };
  }
  const downloaded = await tc.downloadTool(src.url);
  await assertSha256(downloaded, src.sha256); // throws before anything is executable
  const dir = await tc.cacheFile(downloaded, TOOL, TOOL, src.version);
  const path = `${dir}/${TOOL}`;
  await assertSha256(path, src.sha256);
  await chmod(path, 0o755);
  return { path, cached: false };
}

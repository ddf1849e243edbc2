/**
 * Gets the agent binary for the action: tool cache first, else download; in both cases the
 * file's SHA-256 is checked against the pinned digest BEFORE it is made executable or run.
 * The cached copy is re-verified on every use: on self-hosted runners the tool cache outlives
 * jobs, and an earlier job could have replaced it.
 */
import { chmod } from "node:fs/promises";
import * as tc from "@actions/tool-cache";
import { type AgentArch, agentArch, agentFile, type ReleasePin } from "./release.js";
import { assertSha256 } from "./verify-binary.js";

export interface AgentSource {
  url: string;
  sha256: string;
  /** tool-cache key: the release version, or the override's digest */
  version: string;
  /** the architecture the file is for, or "custom" for an agent-url override */
  arch: AgentArch | "custom";
}

export class NoPinnedAgentError extends Error {
  constructor(version: string, arch: AgentArch) {
    super(
      `this copy of the action (${version}) has no released agent pinned for ${arch}: it is a development commit, not a release. Use a release (uses: dpndncy/agent@v1) or set agent-url and agent-sha256 (a mirror or your own build of build/dpndncy-agent)`,
    );
    this.name = "NoPinnedAgentError";
  }
}

export interface AgentChoice {
  agentUrl?: string | undefined;
  agentSha256?: string | undefined;
  /** RUNNER_ARCH, when the runner sets it */
  runnerArch?: string | undefined;
  /** process.arch */
  nodeArch: string;
}

/**
 * Where the agent comes from. `agent-url` + `agent-sha256` win (a mirror, an air-gapped
 * runner, your own build: any architecture, your digest). Otherwise the runner's architecture
 * picks the release file, and the digest is the one this action was released with.
 */
export function agentSource(pin: ReleasePin, c: AgentChoice): AgentSource {
  if (c.agentUrl && !c.agentSha256) {
    throw new Error("input agent-url needs agent-sha256: dpndncy never runs an unverified binary");
  }
  if (c.agentUrl && c.agentSha256) {
    return {
      url: c.agentUrl,
      sha256: c.agentSha256,
      version: `${pin.version}-${c.agentSha256.slice(0, 12)}`,
      arch: "custom",
    };
  }
  const arch = agentArch(c.runnerArch, c.nodeArch);
  const file = agentFile(arch);
  const url = `${pin.baseUrl}/${file}`;
  if (c.agentSha256) {
    // the release's file with a digest the user vouches for (e.g. a re-published asset)
    return {
      url,
      sha256: c.agentSha256,
      version: `${pin.version}-${c.agentSha256.slice(0, 12)}`,
      arch,
    };
  }
  const sha256 = pin.sha256[file];
  if (!sha256) throw new NoPinnedAgentError(pin.version, arch);
  return { url, sha256, version: pin.version, arch };
}

const TOOL = "dpndncy-agent";

export async function acquireAgent(src: AgentSource): Promise<{ path: string; cached: boolean }> {
  const cachedDir = tc.find(TOOL, src.version, src.arch);
  if (cachedDir) {
    const path = `${cachedDir}/${TOOL}`;
    await assertSha256(path, src.sha256);
    return { path, cached: true };
  }
  const downloaded = await tc.downloadTool(src.url);
  await assertSha256(downloaded, src.sha256); // throws before anything is executable
  const dir = await tc.cacheFile(downloaded, TOOL, TOOL, src.version, src.arch);
  const path = `${dir}/${TOOL}`;
  await assertSha256(path, src.sha256);
  await chmod(path, 0o755);
  return { path, cached: false };
}
